"""The accuracy predictor: quality on a synthetic score with known truth, and queries per second.

1. Quality: pairs (architecture, score) where the score is known (a random weight per (slot, choice) summed over
   the 20 slots, plus mild curvature), the authors' recipe on a seeded 90/10 split; held-out Kendall tau and MAE,
   and tau on fresh architectures the predictor never saw.
2. Speed: predictions per second in batches and one at a time, and whole-search queries per second
   (``search_with_predictor``: ASE-NAS + the 600 M MAdds check + the predictor), with the machine's load.

    python benchmarks/predictor_speed.py [--pairs 600 2000] [--epochs 120] [--queries 1000] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from nni_asenas.imagenet.predictor import (
    PredictorTraining,
    encode_many,
    kendall_tau,
    sample_architectures,
    train_predictor,
)
from nni_asenas.imagenet.predictor_search import search_with_predictor


def known_score(seed: int = 1):
    weights = np.random.default_rng(seed).normal(0.0, 1.0, (20, 10))

    def score(archs) -> np.ndarray:
        totals = (encode_many(archs).reshape(len(archs), 20, 10) * weights).sum(axis=(1, 2))
        return 75.0 + 0.4 * totals + 0.01 * totals ** 2

    return score


def _rate(work, count: int) -> dict[str, float]:
    """``count`` items done by ``work()``, per wall second and per CPU second of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return {"wall": round(count / (time.perf_counter() - wall), 1), "cpu": round(count / (time.process_time() - cpu), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[600, 2000])
    parser.add_argument("--epochs", type=int, default=120)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--json", help="write the numbers here")
    args = parser.parse_args()
    score = known_score()
    stream = sample_architectures(seed=0)
    pool = [next(stream) for _ in range(max(args.pairs) + 1000)]
    fresh, pool = pool[-1000:], pool[:-1000]
    truth, fresh_truth = score(pool), score(fresh)
    report: dict = {"machine": platform.processor() or platform.machine(), "load_before": os.getloadavg()[0],
                    "quality": []}
    predictor = None
    for n in args.pairs:
        start = time.perf_counter()
        result = train_predictor(list(zip(pool[:n], truth[:n])), training=PredictorTraining(epochs=args.epochs), seed=0)
        predictor = result.predictor
        fresh_tau = kendall_tau(predictor.predict(fresh), fresh_truth)
        row = {**result.metrics(), "fresh_kendall_tau": fresh_tau, "target_std": float(np.std(truth[:n])),
               "epochs": args.epochs, "train_seconds": round(time.perf_counter() - start, 2)}
        report["quality"].append(row)
        print(f"{n} pairs: held-out tau {row['kendall_tau']:.3f}, MAE {row['mae']:.3f} (target std "
              f"{row['target_std']:.2f}); fresh tau {fresh_tau:.3f}; trained in {row['train_seconds']} s")
    assert predictor is not None
    many = pool * max(1, 20000 // len(pool))
    batched = _rate(lambda: predictor.predict(many), len(many))
    single = _rate(lambda: [predictor.score(arch) for arch in pool[:500]], 500)
    timing: dict = {}

    def run_search() -> None:
        timing.update(search_with_predictor(predictor, max_queries=args.queries, seed=0, max_madds=600e6))

    search = _rate(run_search, args.queries)
    report.update(batched_per_second=batched, single_per_second=single, search_queries_per_second=search,
                  load_after=os.getloadavg()[0])
    print(f"per wall second (per CPU second): predictions {batched['wall']:.0f} ({batched['cpu']:.0f}) batched, "
          f"{single['wall']:.0f} ({single['cpu']:.0f}) one at a time; search {search['wall']:.1f} ({search['cpu']:.1f}) "
          f"queries ({timing['queries']} queries, MAdds <= 600 M); load {report['load_before']:.1f} -> "
          f"{report['load_after']:.1f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
