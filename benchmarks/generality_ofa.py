"""A second real space: OFA's released accuracy predictor over the MobileNet-like space, under 600 M MAdds.

The package defaults were tuned on NAS-Bench-201 only. Here the objective is OFA's own accuracy predictor
(``acc_predictor.pth`` from OFA's model zoo, read from the folder ``--ofa-files`` names; nothing is downloaded) at
224 px over the 45 decisions of the MobileNet-like space, with the exact MAdds limit of the paper (600 M) as a
constraint: an architecture over it is rejected before it is scored and costs nothing, for every strategy.
Decisions of blocks beyond a stage's depth do not change the network, so every strategy's repeats of one network
are answered from a cache at no cost. Regret: the best predicted top-1 (percent) any run found at that budget minus
the run's best.

Optuna's samplers propose first and meet the limit after: TPE is told an over-limit trial failed; GPSampler, which
leaves failed trials out of its model and would propose the same region again, is told the worst score seen so far.
Neither costs a query. GPSampler's runs take minutes each: ``--runs DIR`` keeps them and reads them back.

    python benchmarks/generality_ofa.py --ofa-files DIR --seeds 0-9 --queries 100,300 --json OUT.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable

import numpy as np

from nni_asenas.comparison.harness import _init_worker, compare, describe_stats
from nni_asenas.comparison.local_search import local_search
from nni_asenas.core.searcher import AseNasSearcher
from nni_asenas.imagenet.limits import latency_constraint, madds_constraint
from nni_asenas.imagenet.ofa_latency import OfaLatencyTable
from nni_asenas.imagenet.ofa_predictor import OfaAccuracyPredictor
from nni_asenas.imagenet.space import canonical_arch
from nni_asenas.imagenet.space import decisions as mobilenet_decisions
from nni_asenas.search import write_text

STRATEGIES = ("asenas", "asenas-paper", "ofa-evolution", "optuna-tpe-mv", "optuna-gp", "local-search", "random")
MAX_MADDS = 600e6
# The slow peer, whose runs are kept under --runs and read back (hours of GPSampler asks, spread over sessions); the
# others rerun in minutes, and ASE-NAS must rerun after any change to the method.
KEPT_STRATEGIES = ("optuna-gp",)


class Objective:
    """Predicted top-1 (percent) of distinct networks within the limits, counted once each, up to ``queries``."""

    def __init__(self, predictor: OfaAccuracyPredictor, queries: int, within: Callable[[dict[str, Any]], bool]) -> None:
        self.predictor, self.queries = predictor, queries
        self.within = within
        self.cache: dict[tuple[int, ...], float] = {}
        self.scores: list[float] = []

    @property
    def done(self) -> bool:
        return len(self.scores) >= self.queries

    def __call__(self, arch: dict[str, Any]) -> float:
        key = tuple(canonical_arch(arch).values())
        if key not in self.cache:
            value = 100.0 * self.predictor.predict_one(arch)
            if self.done:  # past the budget: neither counted nor remembered
                return value
            self.cache[key] = value
            self.scores.append(value)
        return self.cache[key]


def run_asenas(objective: Objective, decisions: dict[str, list[int]], seed: int, preset: str) -> None:
    # the canonical form, as `nni-asenas search --space mobilenet` gives it: one network, one proposal
    searcher = AseNasSearcher(decisions, preset, seed=seed, constraint=objective.within, canonical=canonical_arch)
    asks = 0
    while not objective.done and asks < 50 * objective.queries:
        asks += 1
        proposal = searcher.ask()
        if proposal is None:
            break
        searcher.tell(proposal.id, objective(proposal.arch))


def run_random(objective: Objective, decisions: dict[str, list[int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    while not objective.done:
        arch = {label: options[int(rng.integers(len(options)))] for label, options in decisions.items()}
        if objective.within(arch):
            objective(arch)


def run_local_search(objective: Objective, decisions: dict[str, list[int]], seed: int) -> None:
    """Best-improvement local search over one-edit neighbours with random restarts (White et al. 2021), moving only
    within the limits."""
    labels, options = list(decisions), list(decisions.values())

    def arch(code: tuple[int, ...]) -> dict[str, int]:
        return {label: values[i] for label, values, i in zip(labels, options, code)}

    local_search([len(values) for values in options], lambda code: objective(arch(code)), np.random.default_rng(seed),
                 lambda: objective.done, admits=lambda code: objective.within(arch(code)))


def run_ofa_evolution(objective: Objective, decisions: dict[str, list[int]], seed: int) -> None:
    """OFA's evolutionary finder, written from its published algorithm and settings: a population of 100 feasible
    random architectures; each generation keeps the best 25 % as parents and breeds the rest of the population,
    half by mutation (each block's kernel and expand ratio together, and each stage's depth, resampled with
    probability 0.1) and half by crossover (every decision from one of two random parents), redrawing children over
    the limit."""
    rng = np.random.default_rng(seed)
    population_size, parents_share, mutation_share, mutate_probability = 100, 0.25, 0.5, 0.1
    labels = list(decisions)
    stages = sorted({label.split("_")[0] for label in labels})

    def feasible(draw: Callable[[], dict[str, int]]) -> dict[str, int]:
        for _ in range(10_000):
            arch = draw()
            if objective.within(arch):
                return arch
        raise RuntimeError("no feasible architecture in 10000 draws")

    def random_arch() -> dict[str, int]:
        return {label: options[int(rng.integers(len(options)))] for label, options in decisions.items()}

    def mutate(parent: dict[str, int]) -> dict[str, int]:
        child = dict(parent)
        for label in labels:
            if label.endswith("_kernel") and rng.random() < mutate_probability:  # kernel and expand together
                block = label.removesuffix("_kernel")
                for part in ("kernel", "expand"):
                    options = decisions[f"{block}_{part}"]
                    child[f"{block}_{part}"] = options[int(rng.integers(len(options)))]
        for stage in stages:
            if rng.random() < mutate_probability:
                options = decisions[f"{stage}_depth"]
                child[f"{stage}_depth"] = options[int(rng.integers(len(options)))]
        return child

    def crossover(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
        return {label: (a if rng.random() < 0.5 else b)[label] for label in labels}

    population = [feasible(random_arch) for _ in range(population_size)]
    scores = [objective(arch) for arch in population]
    n_parents, n_mutated = int(population_size * parents_share), int(population_size * mutation_share)
    generations = 0
    while not objective.done and generations < 10 * objective.queries:
        generations += 1
        order = np.argsort(scores)[::-1][:n_parents]
        parents = [population[int(i)] for i in order]

        def pick(parents: list[dict[str, int]] = parents) -> dict[str, int]:
            return parents[int(rng.integers(len(parents)))]

        children = [feasible(lambda: mutate(pick())) for _ in range(n_mutated)]
        children += [feasible(lambda: crossover(pick(), pick())) for _ in range(population_size - n_parents - n_mutated)]
        population = parents + children
        scores = [scores[int(i)] for i in order] + [objective(arch) for arch in children]


def run_optuna(objective: Objective, decisions: dict[str, list[int]], seed: int, strategy: str) -> None:
    import optuna

    from nni_asenas.comparison.peers import optuna_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna_sampler(strategy, seed)[0])
    worst = None
    asks = 0
    while not objective.done and asks < 50 * objective.queries:
        asks += 1
        trial = study.ask()
        arch = {label: trial.suggest_categorical(label, options) for label, options in decisions.items()}
        if objective.within(arch):
            score = objective(arch)
            worst = score if worst is None else min(worst, score)
            study.tell(trial, score)
        elif strategy == "optuna-gp" and worst is not None:
            # Over the limit, costing no query. GPSampler leaves failed trials out of its model, so once the model
            # favours a region over the limit it proposes it again and again (measured under 600 M: stuck at 42
            # scored networks after 130 asks); as its users do, it is told the worst score seen so far instead.
            study.tell(trial, worst)
        else:  # over the limit: costs nothing, and TPE learns to avoid it
            study.tell(trial, state=optuna.trial.TrialState.FAIL)


def within_limits(ofa_files: str, max_madds: float, max_latency_ms: float | None) -> Callable[[dict[str, Any]], bool]:
    within_madds = madds_constraint(max_madds)
    if max_latency_ms is None:
        return within_madds
    within_latency = latency_constraint(OfaLatencyTable(f"{ofa_files}/note10"), max_latency_ms)
    return lambda arch: within_madds(arch) and within_latency(arch)


def stored_run(runs: str | None, strategy: str, seed: int, limits: dict[str, float | None],
               queries: int) -> tuple[list[float], float] | None:
    """A run kept under ``runs`` with the same limits and at least ``queries`` scores, cut to them, or None."""
    if runs is None or not os.path.exists(path := run_path(runs, strategy, seed)):
        return None
    with open(path, encoding="utf-8") as fh:
        run = json.load(fh)
    if run["limits"] != limits or run["queries"] < queries:
        return None
    return run["scores"][:queries], run["seconds"]


def run_path(runs: str, strategy: str, seed: int) -> str:
    return os.path.join(runs, strategy, f"seed-{seed}", "result.json")


def keep_run(runs: str, strategy: str, seed: int, limits: dict[str, float | None], queries: int,
             scores: list[float], seconds: float) -> None:
    path = run_path(runs, strategy, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    document = {"strategy": strategy, "seed": seed, "limits": limits, "queries": queries, "seconds": seconds,
                "scores": scores}
    write_text(path, json.dumps(document) + "\n")  # atomic: an interrupted run leaves no half file to resume from


def run_seed(ofa_files: str, max_madds: float, max_latency_ms: float | None, queries: dict[str, int],
             runs_dir: str | None, seed: int, parent: int | None = None) -> dict[str, tuple[list[float], float]]:
    """Each strategy's scores in query order (up to its number of ``queries``) and its seconds, for one seed (in a
    pool worker of ``parent``); the runs of :data:`KEPT_STRATEGIES` kept under ``runs_dir`` are read back instead of
    run again, and new ones kept there."""
    if parent is not None:
        _init_worker(parent)
    warnings.filterwarnings("ignore")
    predictor = OfaAccuracyPredictor.from_file(f"{ofa_files}/acc_predictor.pth")
    within = within_limits(ofa_files, max_madds, max_latency_ms)
    decisions = mobilenet_decisions()
    runners: dict[str, Callable[[Objective, int], None]] = {
        "asenas": lambda objective, seed: run_asenas(objective, decisions, seed, "default"),
        "asenas-paper": lambda objective, seed: run_asenas(objective, decisions, seed, "paper"),
        "ofa-evolution": lambda objective, seed: run_ofa_evolution(objective, decisions, seed),
        "optuna-tpe-mv": lambda objective, seed: run_optuna(objective, decisions, seed, "optuna-tpe-mv"),
        "optuna-gp": lambda objective, seed: run_optuna(objective, decisions, seed, "optuna-gp"),
        "local-search": lambda objective, seed: run_local_search(objective, decisions, seed),
        "random": lambda objective, seed: run_random(objective, decisions, seed),
    }
    limits = {"max_madds": max_madds, "max_latency_ms": max_latency_ms}
    runs = {}
    for strategy, budget in queries.items():
        kept = runs_dir if strategy in KEPT_STRATEGIES else None
        stored = stored_run(kept, strategy, seed, limits, budget)
        if stored is not None:
            runs[strategy] = stored
            continue
        objective = Objective(predictor, budget, within)
        tick = time.perf_counter()
        runners[strategy](objective, seed)
        runs[strategy] = (objective.scores, time.perf_counter() - tick)
        if kept is not None:
            keep_run(kept, strategy, seed, limits, budget, *runs[strategy])
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ofa-files", required=True, help="folder with OFA's acc_predictor.pth")
    parser.add_argument("--seeds", default="0-9", help="first-last (default: %(default)s)")
    parser.add_argument("--queries", default="100,300", help="budgets, comma-separated (default: %(default)s)")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--max-madds", type=float, default=MAX_MADDS, help="MAdds limit at 224 px (default 600e6)")
    parser.add_argument("--max-latency-ms", type=float, help="also a Note10 latency limit (tables in OFA_FILES/note10)")
    parser.add_argument("--reach-at", type=int, help="the budget whose ASE-NAS result OFA's finder is timed to reach "
                        "(default: the largest)")
    parser.add_argument("--up-to", action="append", default=[], metavar="STRATEGY=QUERIES",
                        help="run STRATEGY only to this budget (a slow one); repeatable")
    parser.add_argument("--workers", type=int, default=1, help="seeds run in this many processes (default 1)")
    parser.add_argument("--runs", help="keep the slow peer's runs (optuna-gp) here as STRATEGY/seed-N/result.json and "
                        "read them back instead of running them again")
    parser.add_argument("--json", help="write every run's numbers here")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    first, _, last = args.seeds.partition("-")
    seeds = list(range(int(first), int(last or first) + 1))
    budgets = sorted(int(q) for q in args.queries.split(","))
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = sorted(set(strategies) - set(STRATEGIES))
    if unknown:
        parser.error(f"--strategies: unknown {', '.join(unknown)} (known: {', '.join(STRATEGIES)})")
    limit = f"<= {args.max_madds / 1e6:.0f} M MAdds"
    if args.max_latency_ms is not None:
        limit += f" and <= {args.max_latency_ms:g} ms on the Note10"
    cap = {name: int(value) for name, _, value in (item.partition("=") for item in args.up_to)}
    queries = {s: min(cap.get(s, budgets[-1]), budgets[-1]) for s in strategies}
    job = (args.ofa_files, args.max_madds, args.max_latency_ms, queries, args.runs)
    if args.workers > 1:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=context) as pool:
            futures = [pool.submit(run_seed, *job, seed, os.getpid()) for seed in seeds]
            per_seed = [future.result() for future in futures]
    else:
        per_seed = [run_seed(*job, seed) for seed in seeds]
    best: dict[str, dict[int, list[float]]] = {s: {q: [] for q in budgets} for s in strategies}
    curves: dict[str, list[list[float]]] = {s: [] for s in strategies}
    seconds: dict[str, list[float]] = {s: [] for s in strategies}
    for seed, runs in zip(seeds, per_seed):
        for strategy, (scores, spent) in runs.items():
            seconds[strategy].append(spent)
            for q in budgets:
                if q <= queries[strategy]:
                    best[strategy][q].append(max(scores[:q]))
            curves[strategy].append(list(np.maximum.accumulate(scores)))
        print(f"seed {seed}: " + ", ".join(f"{s} {max(runs[s][0]):.3f}" for s in strategies), flush=True)
    report: dict[str, Any] = {"max_madds": args.max_madds, "max_latency_ms": args.max_latency_ms, "seeds": args.seeds, "budgets": budgets, "seconds": seconds, "results": {}}
    for q in budgets:
        present = [s for s in strategies if best[s][q]]  # those run to this budget
        reference = max(max(best[s][q]) for s in present)
        lines = [f"OFA predictor, {limit} at 224 px, {q} queries, seeds {args.seeds} (regret against "
                 f"{reference:.3f} % top-1, the best any run found)", "",
                 "| strategy | regret mean [95 % CI] (points) | vs asenas: Δ (Welch p) | s/run |", "|---|---|---|---|"]
        report["results"][str(q)] = {"reference": reference, "strategies": {}}
        for strategy in present:
            regrets = [reference - b for b in best[strategy][q]]
            stats = describe_stats(regrets)
            versus = compare(regrets, [reference - b for b in best["asenas"][q]]) \
                if best.get("asenas", {}).get(q) and strategy != "asenas" else None
            report["results"][str(q)]["strategies"][strategy] = {"regret": stats, "vs_asenas": versus,
                                                                 "best": best[strategy][q]}
            ci = f"[{stats['ci95'][0]:.3f}, {stats['ci95'][1]:.3f}]" if stats["ci95"] else ""
            delta = "-" if not versus else f"{versus['delta']:+.3f} (p={versus['p']:.2g})"
            lines.append(f"| {strategy} | {stats['mean']:.3f} {ci} | {delta} | {np.mean(seconds[strategy]):.1f} |")
        print("\n".join(lines) + "\n")
    if "asenas" in curves and "ofa-evolution" in curves:
        # how many queries OFA's finder needs to reach what ASE-NAS found by the last budget, seed by seed
        reach = []
        reach_at = args.reach_at or budgets[-1]
        for target, curve in zip(best["asenas"][reach_at], curves["ofa-evolution"]):
            hits = [i + 1 for i, value in enumerate(curve) if value >= target]
            reach.append(hits[0] if hits else None)
        reached = [r for r in reach if r is not None]
        report["ofa_evolution_queries_to_reach_asenas"] = reach
        report["reach_at"] = reach_at
        print(f"OFA's finder reached ASE-NAS's best at {reach_at} queries in {len(reached)} of {len(reach)} runs"
              + (f" (median {int(np.median(reached))} queries)" if reached else "")
              + f" within {budgets[-1]} queries")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
