"""How long the ASE-NAS tuner takes to start, as NNI's dispatcher meets it.

NNI's manager gives the dispatcher process (``python -m nni``: imports nni, imports and constructs the tuner, then
connects) 10 s before it declares "Tuner did not connect"; the first proposal comes after the connection. This
script measures, each in a fresh interpreter:

* ``python -X importtime -c "import <module>"``: the module's cumulative import time, and torch's share of it;
* the phases of a start: ``import nni`` (paid by the dispatcher whatever the tuner), importing the tuner module,
  constructing the tuner (all before the connection), then ``update_search_space`` and the first
  ``generate_parameters`` (after it), and whether torch was imported by each point.

    python benchmarks/tuner_startup.py [--repeats 5] [--module nni_asenas.adapters.tuner] [--output FILE.json]

Times vary with the machine's load; the report gives the median and the range over the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SEARCH_SPACE = ROOT / "search_spaces" / "nasbench201.json"


def child(module: str) -> dict[str, Any]:
    """One start-up, timed phase by phase (runs in a fresh interpreter)."""
    import importlib

    marks: dict[str, Any] = {}
    t0 = time.perf_counter()
    import nni  # noqa: F401  (the dispatcher has imported it before it imports the tuner)

    marks["import_nni_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    tuner_class = importlib.import_module(module).AseNasTuner
    marks["import_tuner_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    tuner = tuner_class(seed=0)
    marks["construct_s"] = time.perf_counter() - t2
    marks["torch_before_connect"] = "torch" in sys.modules
    marks["before_connect_s"] = time.perf_counter() - t0
    t3 = time.perf_counter()
    tuner.update_search_space(json.loads(SEARCH_SPACE.read_text()))
    marks["update_search_space_s"] = time.perf_counter() - t3
    t4 = time.perf_counter()
    tuner.generate_parameters(0)
    marks["first_generate_parameters_s"] = time.perf_counter() - t4
    marks["torch_after_first_proposal"] = "torch" in sys.modules
    marks["to_first_proposal_s"] = time.perf_counter() - t0
    return marks


def importtime(module: str) -> dict[str, float]:
    """Cumulative seconds of ``module`` and of torch under ``python -X importtime``."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True,
                          text=True, check=True, cwd=ROOT)
    cumulative: dict[str, float] = {}  # every module appears once, at the depth where it was first imported
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            _, cum, name = line[len("import time:"):].split("|")
            cumulative[name.strip()] = int(cum) / 1e6
    return {"module_s": cumulative.get(module, float("nan")), "torch_s": cumulative.get("torch", 0.0)}


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--module", default="nni_asenas.adapters.tuner")
    parser.add_argument("--output", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.module)))
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    runs, imports = [], []
    for _ in range(args.repeats):
        imports.append(importtime(args.module))
        done = subprocess.run([sys.executable, __file__, "--child", "--module", args.module], capture_output=True,
                              text=True, check=True, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    report: dict[str, Any] = {
        "module": args.module,
        "repeats": args.repeats,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "importtime_module_s": summary([i["module_s"] for i in imports]),
        "importtime_torch_s": summary([i["torch_s"] for i in imports]),
        **{key: summary([r[key] for r in runs]) for key in runs[0] if key.endswith("_s")},
        "torch_before_connect": any(r["torch_before_connect"] for r in runs),
        "torch_after_first_proposal": all(r["torch_after_first_proposal"] for r in runs),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
