"""Does ASE-NAS's default configuration also win off NAS-Bench-201? A search space of another shape.

The package defaults (a random start of 12, K 3 candidates, one-edit draws ranked by a fitted GP's expected improvement,
restarts) were chosen on NAS-Bench-201 seeds 0-49 (6 decisions x 5 options). This script searches the 45 three-way decisions of the MobileNet-like ImageNet space
(:func:`nni_asenas.imagenet.space.decisions`: per stage a depth, per block a kernel size and an expand ratio) with
a synthetic but rugged score: a chain NK landscape (:class:`~nni_asenas.comparison.synthetic.NKLandscape`, each
decision interacting with the next ``--interactions``), a new landscape per seed, whose exact optimum is known.
Every strategy gets the same number of queries; repeats are answered from a cache at no cost. Reported per
strategy: regret (optimum minus the best score found, in units of the landscape's score) with a 95 % interval,
the share of runs that found the optimum, and a Welch test of the regret against ``asenas``.

    python benchmarks/generality.py --seeds 0-19 --queries 300 --json OUT.json --markdown OUT.md
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any, Callable

import numpy as np

from nni_asenas.comparison.harness import compare, describe_stats
from nni_asenas.comparison.local_search import local_search
from nni_asenas.comparison.synthetic import NKLandscape
from nni_asenas.core.searcher import AseNasSearcher
from nni_asenas.imagenet.space import decisions as mobilenet_decisions

Arch = tuple[int, ...]
STRATEGIES = ("asenas", "asenas-paper", "local-search", "random", "optuna-tpe-mv", "optuna-gp")


def run_asenas(landscape: NKLandscape, decisions: dict[str, list[Any]], seed: int, queries: int, preset: str) -> list[float]:
    searcher = AseNasSearcher(decisions, preset, seed=seed)
    scores: list[float] = []
    while len(scores) < queries:
        proposal = searcher.ask()
        if proposal is None:
            break
        value = landscape.score_arch(proposal.arch, decisions)
        scores.append(value)
        searcher.tell(proposal.id, value)
    return scores


def run_local_search(landscape: NKLandscape, seed: int, queries: int) -> list[float]:
    scores: list[float] = []

    def query(code: Arch) -> float:
        scores.append(landscape.score(code))
        return scores[-1]

    local_search(landscape.sizes, query, np.random.default_rng(seed), lambda: len(scores) >= queries)
    return scores


def run_random(landscape: NKLandscape, seed: int, queries: int) -> list[float]:
    rng = np.random.default_rng(seed)
    seen: set[Arch] = set()
    scores: list[float] = []
    while len(scores) < queries:
        code = tuple(int(rng.integers(n)) for n in landscape.sizes)
        if code not in seen:
            seen.add(code)
            scores.append(landscape.score(code))
    return scores


def run_optuna(landscape: NKLandscape, decisions: dict[str, list[Any]], seed: int, queries: int,
               strategy: str) -> list[float]:
    """Optuna's sampler ``strategy`` (as ``nni-asenas bench`` runs it); repeats answered from a cache."""
    import optuna

    from nni_asenas.comparison.peers import optuna_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna_sampler(strategy, seed)[0])
    cache: dict[tuple[Any, ...], float] = {}
    scores: list[float] = []
    asks = 0
    while len(scores) < queries and asks < 20 * queries:
        asks += 1
        trial = study.ask()
        arch = {label: trial.suggest_categorical(label, options) for label, options in decisions.items()}
        key = tuple(arch.values())
        if key not in cache:
            cache[key] = landscape.score_arch(arch, decisions)
            scores.append(cache[key])
        study.tell(trial, cache[key])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-19", help="first-last (default: %(default)s)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--interactions", type=int, default=2)
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--json", help="write every run's numbers here")
    parser.add_argument("--markdown", help="write the summary table here")
    args = parser.parse_args()
    first, _, last = args.seeds.partition("-")
    seeds = list(range(int(first), int(last or first) + 1))
    decisions = mobilenet_decisions()
    runners: dict[str, Callable[[NKLandscape, int], list[float]]] = {
        "asenas": lambda land, seed: run_asenas(land, decisions, seed, args.queries, "default"),
        "asenas-paper": lambda land, seed: run_asenas(land, decisions, seed, args.queries, "paper"),
        "local-search": lambda land, seed: run_local_search(land, seed, args.queries),
        "random": lambda land, seed: run_random(land, seed, args.queries),
        "optuna-tpe-mv": lambda land, seed: run_optuna(land, decisions, seed, args.queries, "optuna-tpe-mv"),
        "optuna-gp": lambda land, seed: run_optuna(land, decisions, seed, args.queries, "optuna-gp"),
    }
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in strategies}
    for seed in seeds:
        landscape = NKLandscape([len(o) for o in decisions.values()], interactions=args.interactions, seed=seed)
        _, optimum = landscape.optimum()
        for strategy in strategies:
            tick = time.perf_counter()
            scores = runners[strategy](landscape, seed)
            regret = max(optimum - max(scores), 0.0)
            runs[strategy].append({"seed": seed, "regret": regret, "found": float(regret <= 1e-9),
                                   "queries": len(scores), "seconds": time.perf_counter() - tick})
        print(f"seed {seed}: " + ", ".join(f"{s} {runs[s][-1]['regret']:.4f}" for s in strategies), flush=True)
    lines = [f"NK landscape on the MobileNet-like space ({len(decisions)} decisions x 3 options, K = "
             f"{args.interactions}), {args.queries} queries, seeds {args.seeds}", "",
             "| strategy | regret mean [95 % CI] | found | vs asenas: Δ regret (Welch p) | s/run |",
             "|---|---|---|---|---|"]
    summary: dict[str, Any] = {}
    for strategy in strategies:
        regrets = [r["regret"] for r in runs[strategy]]
        stats = describe_stats(regrets)
        versus = compare(regrets, [r["regret"] for r in runs["asenas"]]) if "asenas" in runs and strategy != "asenas" else None
        summary[strategy] = {"regret": stats, "found": float(np.mean([r["found"] for r in runs[strategy]])),
                             "vs_asenas": versus, "runs": runs[strategy]}
        ci = f"[{stats['ci95'][0]:.4f}, {stats['ci95'][1]:.4f}]" if stats["ci95"] else ""
        delta = "-" if not versus else f"{versus['delta']:+.4f} (p={versus['p']:.2g})"
        seconds = float(np.mean([r["seconds"] for r in runs[strategy]]))
        lines.append(f"| {strategy} | {stats['mean']:.4f} {ci} | {100 * summary[strategy]['found']:.0f} % | {delta} "
                     f"| {seconds:.1f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"settings": vars(args), "results": summary}, stream, indent=1, default=lambda x: None
                      if isinstance(x, float) and math.isnan(x) else x)
    if args.markdown:
        with open(args.markdown, "w") as stream:
            stream.write(text)


if __name__ == "__main__":
    main()
