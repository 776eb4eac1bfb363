"""``nni-asenas search``: one simulated ASE-NAS search on the embedded NAS-Bench-201 table."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from nni_asenas.cli import predictor as predictor_cli
from nni_asenas.cli.options import add_method_options, method_config
from nni_asenas.cli.outputs import prepare_output_dir, write_result
from nni_asenas.config import check_seed
from nni_asenas.errors import UsageError
from nni_asenas.nasbench.nb201 import BUDGET_SECONDS, DATASETS, normalize_dataset


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "search",
        help="run ASE-NAS on the embedded NAS-Bench-201 table (simulated training)",
        description="Run one ASE-NAS search on NAS-Bench-201 under the NATS-Bench protocol: signal = 12-epoch "
        "validation accuracy, cost = 12/200 of the 200-epoch training time, reported = 200-epoch test accuracy.",
    )
    parser.add_argument("--space", default="nasbench201", choices=["nasbench201", "mobilenet"], help="search space (default: %(default)s)")
    parser.add_argument("--dataset", default="cifar10", help=f"one of {', '.join(DATASETS)} (default: %(default)s)")
    parser.add_argument("--budget-seconds", type=float, metavar="S",
                        help="simulated-time budget (default: the protocol's " +
                        ", ".join(f"{d} {int(b)}" for d, b in BUDGET_SECONDS.items()) + ")")
    parser.add_argument("--max-queries", type=int, metavar="N", help="stop after N queries as well")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything random (default: %(default)s)")
    parser.add_argument("--init", nargs="+", default=[], metavar="ARCH_OR_RESULT_JSON",
                        help="ASE-NAS+: start from these architectures or from the final candidates of a result.json")
    parser.add_argument("--output", type=Path, metavar="DIR", help="write DIR/result.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_method_options(parser)
    predictor_cli.add_search_arguments(parser)  # --space mobilenet --predictor FILE: nni_asenas/cli/predictor.py
    parser.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    try:
        args.dataset = normalize_dataset(args.dataset)
    except ValueError as exc:
        raise UsageError(f"--dataset: {exc}") from None
    if args.budget_seconds is not None and not (args.budget_seconds > 0 and math.isfinite(args.budget_seconds)):
        raise UsageError(f"--budget-seconds must be a positive number, got {args.budget_seconds:g}")
    if args.max_queries is not None and args.max_queries < 1:
        raise UsageError(f"--max-queries must be >= 1, got {args.max_queries}")
    args.seed = check_seed(args.seed, "--seed")
    args.config = method_config(args)
    if args.output is not None:
        prepare_output_dir(args.output)  # before the search: its result must have a place to go


def run(args: argparse.Namespace) -> int:
    if args.predictor is not None:  # the MobileNet-like space scored by an accuracy predictor: cli/predictor.py
        return predictor_cli.run_search(args)
    if args.space == "mobilenet":  # the supernet-scored route is not part of this branch
        raise UsageError("--space mobilenet needs --predictor FILE")
    _check(args)
    from nni_asenas.nasbench.simulator import (  # imports torch: after the argument checks
        read_initial_architectures,
        run_asenas,
    )

    try:
        initial = read_initial_architectures(args.init)
    except ValueError as exc:
        raise UsageError(f"--init: {exc}") from None
    budget = BUDGET_SECONDS[args.dataset] if args.budget_seconds is None else args.budget_seconds
    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        progress = tqdm(total=round(budget), unit="sim-s", desc="best -", file=sys.stderr, leave=False,
                        bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} sim-s [{elapsed}<{remaining}]")

    def on_query(benchmark: Any) -> None:
        assert progress is not None
        last = benchmark.trajectory[-1]
        progress.set_description(f"query {last['query']} best {last['best_signal']:.2f}", refresh=False)
        progress.update(min(round(benchmark.simulated_seconds), progress.total) - progress.n)

    try:
        result = run_asenas(args.dataset, seed=args.seed, budget_seconds=args.budget_seconds,
                            max_queries=args.max_queries, initial_architectures=initial, config=args.config,
                            on_query=on_query if progress else None)
    finally:
        if progress is not None:
            progress.close()
    print(summary_table(result))
    if args.output is not None:
        write_result(args.output / "result.json", json.dumps(result, indent=1) + "\n")
        print(f"\nwrote {args.output / 'result.json'}")
    return 0


def summary_table(result: dict[str, Any]) -> str:
    best, optimum = result["best"], result["optimum"]
    rows = [
        ("strategy", f"{result['strategy']} (seed {result['seed']})"),
        ("dataset", result["dataset"]),
        ("chosen architecture", best["arch"] if best else "-"),
        ("its signal (12-epoch val acc)", f"{best['signal']:.4f}" if best else "-"),
        ("its test accuracy (200 epochs)", f"{best['test_accuracy']:.4f}" if best else "-"),
        ("benchmark optimum (test)", f"{optimum['test_accuracy']:.4f}  {optimum['arch']}"),
        ("gap to the optimum", f"{best['gap_to_optimum']:.4f}" if best else "-"),
        ("queries", str(result["queries"])),
        ("simulated seconds", f"{result['simulated_seconds']:.0f} of {result['budget_seconds']:.0f}"),
        ("wall seconds", f"{result['wall_seconds']:.2f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
