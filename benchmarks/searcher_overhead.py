"""Per-proposal overhead of the ASE-NAS searcher (choose + learn, no evaluation) on NAS-Bench-201.

Times ``ask()`` + ``tell()`` around table lookups (which are not counted) over full-budget searches, and prints
mean / median / p95 wall milliseconds per proposal, the same for the policy's proposals alone (the random start
costs next to nothing and would pull the median down), the mean CPU milliseconds (process time, which other load on
the machine barely changes) and the machine's load. Target: under 5 ms on CPU.

    python benchmarks/searcher_overhead.py [--dataset cifar10] [--seeds 5] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch

from nni_asenas.config import PRESETS
from nni_asenas.core.searcher import AseNasSearcher
from nni_asenas.nasbench.nb201 import BUDGET_SECONDS, load_table


def time_search(dataset: str, seed: int, preset: str = "default") -> tuple[list[float], list[float], float, list[str]]:
    """Wall seconds of every ask and every tell, the CPU seconds of all of them together, and every proposal's kind."""
    table = load_table()
    signal, cost = table.signal_array(dataset), table.cost_array(dataset)
    searcher = AseNasSearcher(table.decisions(), preset, seed=seed)
    asks, tells, kinds, cpu, spent = [], [], [], 0.0, 0.0
    while spent < BUDGET_SECONDS[dataset]:
        cpu_start, start = time.process_time(), time.perf_counter()
        proposal = searcher.ask()
        asks.append(time.perf_counter() - start)
        cpu += time.process_time() - cpu_start
        kinds.append(proposal.kind)
        index = table.index(proposal.arch)
        spent += cost[index]
        cpu_start, start = time.process_time(), time.perf_counter()
        searcher.tell(proposal.id, signal[index] / 100)
        tells.append(time.perf_counter() - start)
        cpu += time.process_time() - cpu_start
    return asks, tells, cpu, kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS), help="method settings (default: %(default)s)")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()
    time_search(args.dataset, seed=10_000, preset=args.preset)  # warm-up: imports, allocator, first-call costs
    asks, tells, kinds, cpu = [], [], [], 0.0
    for seed in range(args.seeds):
        a, t, c, k = time_search(args.dataset, seed, args.preset)
        asks += a
        tells += t
        kinds += k
        cpu += c
    per_proposal = 1000 * (np.array(asks) + np.array(tells))
    policy_steps = per_proposal[np.isin(kinds, ["search", "fallback", "restart"])]
    numbers = {
        "dataset": args.dataset,
        "preset": args.preset,
        "seeds": args.seeds,
        "proposals": len(per_proposal),
        "ask_ms_mean": 1000 * float(np.mean(asks)),
        "tell_ms_mean": 1000 * float(np.mean(tells)),
        "per_proposal_ms_mean": float(per_proposal.mean()),
        "per_proposal_ms_median": float(np.median(per_proposal)),
        "per_proposal_ms_p95": float(np.percentile(per_proposal, 95)),
        "policy_proposals": len(policy_steps),
        "policy_proposal_ms_median": float(np.median(policy_steps)),
        "policy_proposal_ms_p95": float(np.percentile(policy_steps, 95)),
        "per_proposal_cpu_ms_mean": 1000 * cpu / len(per_proposal),
        "load_average_1min": os.getloadavg()[0],
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
    }
    for name, value in numbers.items():
        print(f"{name:<24} {value:.3f}" if isinstance(value, float) else f"{name:<24} {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(numbers, f, indent=1)


if __name__ == "__main__":
    main()
