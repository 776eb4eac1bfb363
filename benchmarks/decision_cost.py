"""What one proposal costs: ASE-NAS's decision time beside Optuna's GPSampler's, and how it grows with the results.

On the 45 three-way decisions of the MobileNet-like space (a chain NK landscape as the score, so a query itself
costs nothing), every proposal is timed from ``ask`` to the end of ``tell`` (ASE-NAS updates its policy and its
model in ``tell``; Optuna's GPSampler fits its model and optimises its acquisition when a trial asks for its
parameters). Reported: median and 95th percentile over the last 50 proposals before 150, 1000 and 3000 results
(GPSampler at 150 only: its cost grows with the cube of the results).

    python benchmarks/decision_cost.py [--seed 0] [--queries 150,1000,3000] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from typing import Any

import numpy as np

from nni_asenas.comparison.synthetic import NKLandscape
from nni_asenas.core.searcher import AseNasSearcher
from nni_asenas.imagenet.space import decisions as mobilenet_decisions

WINDOW = 50


def asenas_times(landscape: NKLandscape, decisions: dict[str, list[Any]], seed: int, queries: int,
                 preset: str) -> list[float]:
    """Seconds per proposal (ask + tell) of a ``queries``-long ASE-NAS search."""
    searcher = AseNasSearcher(decisions, preset, seed=seed)
    times: list[float] = []
    while len(times) < queries:
        tick = time.perf_counter()
        proposal = searcher.ask()
        if proposal is None:
            break
        ask_seconds = time.perf_counter() - tick
        value = landscape.score_arch(proposal.arch, decisions)
        tick = time.perf_counter()
        searcher.tell(proposal.id, value)
        times.append(ask_seconds + time.perf_counter() - tick)
    return times


def gp_times(landscape: NKLandscape, decisions: dict[str, list[Any]], seed: int, queries: int) -> list[float]:
    """Seconds per proposal (ask, suggest, tell) of Optuna's GPSampler with its defaults."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.GPSampler(seed=seed))
    times: list[float] = []
    while len(times) < queries:
        tick = time.perf_counter()
        trial = study.ask()
        arch = {label: trial.suggest_categorical(label, options) for label, options in decisions.items()}
        ask_seconds = time.perf_counter() - tick
        value = landscape.score_arch(arch, decisions)
        tick = time.perf_counter()
        study.tell(trial, value)
        times.append(ask_seconds + time.perf_counter() - tick)
    return times


def window(times: list[float], end: int) -> dict[str, float]:
    """Median and 95th percentile (ms) of the proposals ``end - WINDOW + 1 .. end``."""
    part = np.array(times[max(0, end - WINDOW):end]) * 1e3
    return {"median_ms": round(float(np.median(part)), 2), "p95_ms": round(float(np.percentile(part, 95)), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--queries", default="150,1000,3000", help="result counts to report at (comma-separated)")
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    points = sorted(int(q) for q in args.queries.split(","))
    decisions = mobilenet_decisions()
    landscape = NKLandscape([len(o) for o in decisions.values()], interactions=2, seed=args.seed)
    report: dict[str, Any] = {"decisions": len(decisions), "seed": args.seed, "window": WINDOW}
    gp = gp_times(landscape, decisions, args.seed, points[0])
    report["optuna-gp"] = {str(points[0]): window(gp, points[0])}
    print(f"optuna-gp       at {points[0]:5d}: {report['optuna-gp'][str(points[0])]}", flush=True)
    for preset in ("default", "paper"):
        times = asenas_times(landscape, decisions, args.seed, points[-1], preset)
        name = "asenas" if preset == "default" else "asenas-paper"
        report[name] = {str(q): window(times, q) for q in points}
        for q in points:
            print(f"{name:15s} at {q:5d}: {report[name][str(q)]}", flush=True)
    ratio = report["optuna-gp"][str(points[0])]["median_ms"] / report["asenas"][str(points[0])]["median_ms"]
    report["gp_over_asenas_at_first"] = round(ratio, 1)
    print(f"GPSampler / ASE-NAS median at {points[0]}: {ratio:.1f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
