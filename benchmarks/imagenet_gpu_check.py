"""End-to-end check of the ImageNet trial module on a GPU, on a generated ImageFolder (seconds, not a benchmark).

Runs ``nni_asenas.trials.imagenet`` for two epochs in each of: bf16 + channels_last (the GPU default), fp16 with
its gradient scaler in NCHW, and, with ``--compile``, bf16 + torch.compile; checks every run's files and reports
and prints the trial's own log lines (throughput included). CI has no GPU, so this is run by hand on a GPU machine:

    PYTHONPATH=. python3 benchmarks/imagenet_gpu_check.py [--compile] [--workdir /tmp/imagenet-gpu-check]

Where NNI is not installed (a bare GPU image), its three trial functions are replaced by stand-ins that record the
reports, which is all the trial uses of it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import types
from pathlib import Path

import torch


def make_image_folder(root: Path, classes: int = 4, train: int = 64, val: int = 16) -> None:
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", train), ("val", val)):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                noise = torch.randint(0, 60, (40, 48, 3), generator=generator, dtype=torch.uint8)
                Image.fromarray((noise + 60 * label).numpy()).save(folder / f"{index}.jpeg")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="/tmp/imagenet-gpu-check")
    parser.add_argument("--compile", action="store_true", help="also run with torch.compile (about a minute more)")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: a dry run of this script")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("imagenet_gpu_check: no CUDA device", file=sys.stderr)
        return 2
    reports: list[tuple[str, object]] = []
    try:
        import nni
    except ImportError:
        nni = types.ModuleType("nni")
        sys.modules["nni"] = nni
    nni.report_intermediate_result = lambda value: reports.append(("intermediate", value))
    nni.report_final_result = lambda value: reports.append(("final", value))
    nni.get_next_parameter = lambda: None

    from nni_asenas.imagenet.space import decisions
    from nni_asenas.trials import imagenet

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    small = args.device == "cpu"  # a dry run of this script: CPUs are slow, float16 on them very slow
    make_image_folder(work / "data", train=8 if small else 64, val=4 if small else 16)
    arch = work / "arch.json"
    arch.write_text(json.dumps({label: options[1] for label, options in decisions().items()}))
    runs = {"bf16-channels-last": ["--amp", "bf16", "--channels-last"],
            "fp16-nchw": ["--amp", "fp16", "--no-channels-last"]}
    if args.compile:
        runs["bf16-compile"] = ["--amp", "bf16", "--compile"]
    failures = 0
    for name, extra in runs.items():
        reports.clear()
        output = work / name
        code = imagenet.main(["--data", str(work / "data"), "--arch", str(arch), "--output", str(output),
                              "--epochs", "2", "--batch-size", "8" if small else "32",
                              "--img-size", "32" if small else "64", "--workers", "4",
                              "--device", args.device, "--log-interval", "4", *extra])
        finals = [value for kind, value in reports if kind == "final"]
        ok = (code == 0 and len(finals) == 1 and (output / "last.pth").exists()
              and sum(kind == "intermediate" for kind, _ in reports) == 2)
        failures += not ok
        print(f"{name}: {'ok' if ok else 'FAILED'} (exit {code}), final {finals[0] if finals else None}", flush=True)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"{device}: {len(runs) - failures}/{len(runs)} runs ok")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
