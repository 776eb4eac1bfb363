"""``nni-asenas bench``: ASE-NAS and NNI's own strategies on the embedded NAS-Bench-201 table, side by side.

Writes ``DIR/summary.json``, ``DIR/summary.md``, ``DIR/curves.png`` and ``DIR/DATASET/STRATEGY/seed-N/result.json``;
finished runs are skipped when the command is run again (``DIR/settings.json`` holds the settings every run shares,
``DIR/invocations.jsonl`` the time each invocation took). The harness is :mod:`nni_asenas.comparison.harness`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from nni_asenas.cli.outputs import prepare_output_dir, write_output
from nni_asenas.config import check_seed
from nni_asenas.errors import UsageError
from nni_asenas.nasbench.nb201 import DATASETS, normalize_dataset

# The names of nni_asenas.comparison.harness.STRATEGIES, repeated so that building the parser imports neither torch nor nni.
STRATEGY_NAMES = ("asenas", "asenas-paper", "asenas+", "random", "evolution", "evolution-nats", "tpe", "optuna-tpe",
                  "optuna-tpe-mv", "optuna-gp", "local-search", "rl")
SIGNAL_NAMES = ("val12", "val200")
#: Seeds one invocation may run (each is one run per strategy and dataset): larger lists are a typo, and planning
#: them would allocate gigabytes before the first run. Split bigger studies into several invocations of one DIR.
MAX_SEEDS = 10_000


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="benchmark ASE-NAS against NNI's strategies on NAS-Bench-201 (simulated, many seeds)",
        description="Run ASE-NAS (package defaults and the 'paper' preset), ASE-NAS+, NNI's Random, "
        "RegularizedEvolution, TPE, local search, and, with the 'peers' extra, Optuna's TPESampler and NNI's "
        "PolicyBasedRL on the embedded NAS-Bench-201 table under the NATS-Bench protocol, with the same seeds and "
        "budgets; write per-run result.json files, summary.json (signal regret, found rate, test accuracy), "
        "summary.md and curves.png to DIR.",
    )
    parser.add_argument("--space", default="nasbench201", choices=["nasbench201"], help="search space (default: %(default)s)")
    parser.add_argument("--dataset", default="all",
                        help=f"'all', or one or more (comma-separated) of {', '.join(DATASETS)} (default: %(default)s)")
    parser.add_argument("--strategies", default=",".join(STRATEGY_NAMES),
                        help="comma-separated, from: %(default)s (default: all; rl only where its extra is installed)")
    parser.add_argument("--seeds", default="0-49", help="seeds, e.g. 0-49 or 0,3,7-9 (default: %(default)s)")
    parser.add_argument("--seeds-for", action="append", default=[], metavar="STRATEGY=SEEDS",
                        help="other seeds for one strategy, e.g. optuna-gp=0-19 for a slow peer (repeatable)")
    parser.add_argument("--signal", default="val12", choices=SIGNAL_NAMES,
                        help="what a query returns: the 12-epoch validation accuracy (the protocol), or the 200-epoch "
                        "one at the same cost (an ablation) (default: %(default)s)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--budget-seconds", type=float, metavar="S",
                        help="simulated-time budget of every run (default: each dataset's protocol budget)")
    budget.add_argument("--max-queries", type=int, metavar="N",
                        help="stop every run after N queries (or at the protocol budget, if that comes first)")
    parser.add_argument("--output", type=Path, required=True, metavar="DIR", help="where results go (resumable)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="parallel runs (default: the number of cores, %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def parse_seeds(text: str) -> list[int]:
    """``"0-49"``, ``"3"``, ``"0,3,7-9"`` -> sorted distinct seeds; :class:`UsageError` naming the bad part, a seed
    outside 0 .. 2**32 - 1, or more than :data:`MAX_SEEDS` seeds (counted before any list is built)."""
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise UsageError(f"--seeds: {part!r} is not a seed or a range like 0-49") from None
        for seed in (first, last):
            check_seed(seed, "--seeds: a seed")
        if first > last:
            raise UsageError(f"--seeds: range {part!r} is empty (start > end)")
        ranges.append((first, last))
    count, reach = 0, -1
    for first, last in sorted(ranges):  # distinct seeds of overlapping ranges, without listing them
        if last > reach:
            count += last - max(first, reach + 1) + 1
            reach = last
    if count > MAX_SEEDS:
        raise UsageError(f"--seeds {text}: {count} seeds, more than the {MAX_SEEDS} one invocation runs (split them "
                         "over several invocations with the same --output)")
    return sorted({seed for first, last in ranges for seed in range(first, last + 1)})


def parse_datasets(text: str) -> list[str]:
    if text.strip().lower() == "all":
        return list(DATASETS)
    datasets: list[str] = []
    for part in text.split(","):
        try:
            name = normalize_dataset(part.strip())
        except ValueError as exc:
            raise UsageError(f"--dataset: {exc} or 'all'") from None
        if name not in datasets:
            datasets.append(name)
    return datasets


def parse_strategies(text: str) -> list[str]:
    strategies: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if name not in STRATEGY_NAMES:
            raise UsageError(f"--strategies: unknown strategy {part.strip()!r} (valid: {', '.join(STRATEGY_NAMES)})")
        if name not in strategies:
            strategies.append(name)
    return strategies


def parse_seeds_for(items: list[str], strategies: list[str]) -> dict[str, list[int]]:
    """``["optuna-gp=0-19", ...]`` -> strategy -> seeds; :class:`UsageError` naming the bad item."""
    seeds_of: dict[str, list[int]] = {}
    for item in items:
        name, sep, seeds = item.partition("=")
        name = name.strip().lower()
        if not sep:
            raise UsageError(f"--seeds-for: {item!r} is not STRATEGY=SEEDS (e.g. optuna-gp=0-19)")
        if name not in strategies:
            raise UsageError(f"--seeds-for: {name!r} is not one of the strategies run ({', '.join(strategies)})")
        try:
            seeds_of[name] = parse_seeds(seeds)
        except UsageError as exc:
            raise UsageError(f"--seeds-for {name}: {str(exc).removeprefix('--seeds: ')}") from None
    return seeds_of


def _check(args: argparse.Namespace) -> None:
    args.datasets = parse_datasets(args.dataset)
    args.strategy_list = parse_strategies(args.strategies)
    args.seed_list = parse_seeds(args.seeds)
    args.seeds_of = parse_seeds_for(args.seeds_for, args.strategy_list)
    if args.budget_seconds is not None and not (args.budget_seconds > 0 and math.isfinite(args.budget_seconds)):
        raise UsageError(f"--budget-seconds must be a positive number, got {args.budget_seconds:g}")
    if args.max_queries is not None and args.max_queries < 1:
        raise UsageError(f"--max-queries must be >= 1, got {args.max_queries}")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    prepare_output_dir(args.output)  # before the first run: every run writes its result there


def run(args: argparse.Namespace) -> int:
    _check(args)
    from nni_asenas.comparison import harness as bench  # imports torch and nni: after the argument checks
    from nni_asenas.comparison.peers import optuna_unavailable, rl_unavailable

    skipped: dict[str, str] = {}
    for name, unavailable in (("optuna-tpe", optuna_unavailable), ("optuna-tpe-mv", optuna_unavailable),
                              ("optuna-gp", optuna_unavailable), ("rl", rl_unavailable)):
        if name in args.strategy_list:
            reason = unavailable()
            if reason is not None:
                print(f"{name} skipped: {reason}", file=sys.stderr)
                skipped[name] = reason
                args.strategy_list.remove(name)
    if not args.strategy_list:
        raise UsageError("--strategies: nothing left to run")
    settings = bench.BenchSettings(signal=args.signal, budget_seconds=args.budget_seconds, max_queries=args.max_queries)
    runs = bench.plan_runs(args.strategy_list, args.datasets, args.seed_list, args.seeds_of)
    started, load_before, executed = time.perf_counter(), _load(), []
    try:
        failures = bench.run_benchmark(args.output, runs, settings, jobs=args.jobs, progress=not args.no_progress,
                                       on_done=lambda run, outcome: executed.append(run))
    except ValueError as exc:
        raise UsageError(f"--output: {exc}") from None
    elapsed = time.perf_counter() - started
    invocations = _record_invocation(args.output, {
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wall_seconds": round(elapsed, 1), "jobs": args.jobs,
        "runs_planned": len(runs), "runs_executed": len(executed), "cores": os.cpu_count(), "code": _code_version(),
        "load_average_before": load_before, "load_average_after": _load()})
    results = bench.load_results(args.output, runs)
    command = "nni-asenas bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["bench"] else None
    notes = [f"{name} skipped: {reason}" for name, reason in skipped.items()]
    notes += [f"{len(runs) - len(results)} of {len(runs)} runs failed or are missing"] if len(results) < len(runs) else []
    summary = bench.summarize(results)
    document = {
        "settings": {"space": args.space, "strategies": args.strategy_list, "datasets": args.datasets,
                     "seeds": args.seeds, "seeds_for": {name: args.seeds_of[name] for name in args.seeds_of
                                                         if name in args.strategy_list}, **vars(settings)},
        "command": command,
        "skipped": skipped,
        "failures": [{"strategy": r.strategy, "dataset": r.dataset, "seed": r.seed, "error": e} for r, e in failures.items()],
        "invocations": invocations,
        "reference": {"published": {label: {d: {"mean": m, "std": s} for d, (m, s) in numbers.items()}
                                    for label, numbers in bench.PUBLISHED.items()}},
        "results": summary,
    }
    write_output(args.output / "summary.json", document)
    markdown = bench.summary_markdown(summary, settings=settings, command=command, notes=notes)
    write_output(args.output / "summary.md", markdown)
    if results:
        bench.plot_curves(results, args.output / "curves.png")
    print(markdown.split(f"\n## {next(iter(summary))}\n")[0].rstrip() if summary else markdown.rstrip())
    print(f"\n{len(results)} runs in {args.output} ({elapsed:.0f} s this time); see summary.md, curves.png")
    for run_spec, error in failures.items():
        print(f"failed: {run_spec.strategy} {run_spec.dataset} seed {run_spec.seed}: {error}", file=sys.stderr)
    return 1 if failures else 0


def _record_invocation(output: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Append ``record`` to ``output/invocations.jsonl`` (one line per run of the command: a resumed benchmark's
    time is the sum) and return every record so far."""
    path = output / "invocations.jsonl"
    with path.open("a") as stream:
        stream.write(json.dumps(record) + "\n")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _code_version() -> str:
    """The package version, and where the package is a git checkout, its commit (``+dirty`` when the package's
    files differ from it): which searcher produced the results."""
    import subprocess

    from nni_asenas import __version__

    package = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(package), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(package), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__} (git {commit}{'+dirty' if dirty else ''})"


def _load() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None
