"""Training throughput of a ~600 M-MAdds MobileNet-like architecture on one GPU: bf16 + channels_last vs fp32.

Each mode builds the same network, then times ``--steps`` training steps (after ``--warmup`` untimed ones) of the
trial module's step: forward, label-smoothed cross-entropy, backward, SGD-Nesterov update, at batch 256 and 224 px.
The data are synthetic and already on the device, so this measures the model, not JPEG decoding. Modes:

    fp32                 float32, TF32 off
    tf32                 float32 with TF32 matmuls/convolutions (the trial's ``--amp off`` on a GPU)
    bf16                 bf16 autocast, NCHW
    bf16+channels_last   bf16 autocast, NHWC (the trial's default on a GPU)

    python benchmarks/imagenet_throughput.py [--json OUT.json] [--batch-size 256] [--steps 30] [--modes fp32,bf16]

It prints a table (images/s, ms per step, peak memory, speed-up over fp32) and, with ``--json``, writes it.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from typing import Any

import torch
from torch import nn

from nni_asenas.imagenet.space import MobileNetLike, count_madds, count_params, decisions, within_madds

MODES: dict[str, dict[str, Any]] = {
    "fp32": {"amp": None, "channels_last": False, "tf32": False},
    "tf32": {"amp": None, "channels_last": False, "tf32": True},
    "bf16": {"amp": torch.bfloat16, "channels_last": False, "tf32": True},
    "bf16+channels_last": {"amp": torch.bfloat16, "channels_last": True, "tf32": True},
}


def pick_architecture(max_madds: float, seed: int, samples: int) -> dict[str, int]:
    """The architecture with the most MAdds under ``max_madds`` among ``samples`` seeded random ones."""
    rng = random.Random(seed)
    space = decisions()
    best, best_madds = None, -1
    for _ in range(samples):
        arch = {label: rng.choice(options) for label, options in space.items()}
        madds = count_madds(arch)
        if madds <= max_madds and madds > best_madds:
            best, best_madds = arch, madds
    assert best is not None and within_madds(best, max_madds)
    return best


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_mode(arch: dict[str, int], mode: str, *, device: torch.device, batch_size: int, resolution: int,
              warmup: int, steps: int, compile_model: bool) -> dict[str, Any]:
    settings = MODES[mode]
    if device.type == "cuda":
        torch.cuda.empty_cache()  # what the previous mode left (after an out-of-memory error too)
    torch.backends.cuda.matmul.allow_tf32 = settings["tf32"]
    torch.backends.cudnn.allow_tf32 = settings["tf32"]
    memory_format = torch.channels_last if settings["channels_last"] else torch.contiguous_format
    torch.manual_seed(0)
    model = MobileNetLike(arch).to(device, memory_format=memory_format).train()
    step_model = torch.compile(model) if compile_model else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-5)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    images = torch.randn(batch_size, 3, resolution, resolution, device=device).to(memory_format=memory_format)
    targets = torch.randint(0, 1000, (batch_size,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        with torch.autocast(device.type, dtype=settings["amp"], enabled=settings["amp"] is not None):
            loss = criterion(step_model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    try:
        for _ in range(warmup):
            step()
        _synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _synchronize(device)
        seconds = time.perf_counter() - start
    except torch.cuda.OutOfMemoryError:
        return {"mode": mode, "error": "out of memory"}
    finally:
        optimizer.state.clear()  # free the momentum buffers before the next mode
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None
    return {"mode": mode, "images_per_s": steps * batch_size / seconds, "ms_per_step": 1000 * seconds / steps,
            "peak_memory_gib": peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--max-madds", type=float, default=600e6)
    parser.add_argument("--seed", type=int, default=0, help="seed of the architecture pick")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model in every mode")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or not modes:
        parser.error(f"--modes: unknown mode {unknown[0] if unknown else '(none)'}; choose from {', '.join(MODES)}")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    arch = pick_architecture(args.max_madds, args.seed, samples=4000)
    madds, params = count_madds(arch), count_params(arch)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"{name}, torch {torch.__version__}; architecture of {madds / 1e6:.1f} M MAdds at 224 px, "
          f"{params / 1e6:.2f} M parameters; batch {args.batch_size} at {args.resolution} px, "
          f"{args.warmup} warm-up + {args.steps} timed steps per mode", flush=True)
    rows = []
    for mode in modes:
        rows.append(time_mode(arch, mode, device=device, batch_size=args.batch_size, resolution=args.resolution,
                              warmup=args.warmup, steps=args.steps, compile_model=args.compile))
        print(f"  {mode}: {rows[-1].get('images_per_s', 0):.0f} images/s", flush=True)
    reference = next((row["images_per_s"] for row in rows if row["mode"] == "fp32" and "images_per_s" in row), None)
    print("\n| mode | images/s | ms/step | peak GiB | vs fp32 |\n|---|---:|---:|---:|---:|")
    for row in rows:
        if "error" in row:
            print(f"| {row['mode']} | {row['error']} | | | |")
            continue
        row["speedup_vs_fp32"] = row["images_per_s"] / reference if reference else None
        peak = f"{row['peak_memory_gib']:.1f}" if row["peak_memory_gib"] is not None else "-"
        speedup = f"{row['speedup_vs_fp32']:.2f}x" if reference else "-"
        print(f"| {row['mode']} | {row['images_per_s']:.0f} | {row['ms_per_step']:.1f} | {peak} | {speedup} |")
    if args.json:
        result = {"device": name, "torch": str(torch.__version__), "cuda": torch.version.cuda, "arch": arch,
                  "madds": madds, "params": params, "batch_size": args.batch_size, "resolution": args.resolution,
                  "warmup": args.warmup, "steps": args.steps, "compile": args.compile, "modes": rows}
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
