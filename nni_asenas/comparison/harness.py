"""ASE-NAS against NNI's own strategies on NAS-Bench-201, side by side: the harness behind ``nni-asenas bench``.

Every strategy searches the same embedded table under the same protocol (:class:`~nni_asenas.nasbench.simulator.SimulatedBenchmark`:
signal, simulated cost, budget, trajectory), with the same seeds. The peers are NNI's real classes:

* ``random``: ``nni.nas.strategy.Random``; ``evolution``: ``RegularizedEvolution`` with NNI's defaults (population
  100, sample 25); ``evolution-nats``: the same class with population 10 / sample 3, as NATS-Bench tunes it;
  ``rl``: ``PolicyBasedRL`` (NNI's defaults), only where its optional dependencies (``tianshou<1``, ``gym``) import.
  These run on NNI's ``SequentialExecutionEngine``, whose evaluator answers from the table and whose budget is the
  simulated one, over :class:`~nni_asenas.nasbench.nb201_space.NasBench201Space` (see :mod:`nni_asenas.comparison.peers`).
* ``tpe``: NNI's ``TpeTuner`` (maximize) driven directly with the space's search-space JSON: NNI's ``TPE`` strategy
  wraps the same tuner but sleeps 1 s per model. Duplicates are NNI's business: its tuner replaces them (grid order);
  ``PolicyBasedRL`` does not deduplicate, so a repeated architecture is queried, and charged, again.
* ``optuna-tpe`` / ``optuna-tpe-mv``: Optuna's ``TPESampler`` with independent per-parameter models (its default
  before Optuna 5, ``multivariate=False``) / with ``multivariate=True, group=True``; ``optuna-gp``: Optuna's
  ``GPSampler`` with its defaults; where the ``peers`` extra is installed. Optuna does not deduplicate: a repeated
  proposal is answered from a cache of earlier results at no cost (neither queried nor charged).
* ``local-search``: best-improvement local search over one-edit neighbours with random restarts (White et al.
  2021), :func:`~nni_asenas.comparison.local_search.local_search`.
* ``asenas``: :func:`~nni_asenas.nasbench.simulator.run_asenas` with the package defaults; ``asenas-paper``: the same
  with the ``paper`` preset (the published settings); ``asenas+``: the package defaults, started from the final candidate set
  of the same seed's CIFAR-10 ``asenas`` search (read from this benchmark's output, or searched on demand), as the
  authors do. On CIFAR-10 itself ``asenas+`` starts from the ResNet-like cell :data:`RESNET_CELL` (the hand-designed
  reference cell of the NAS-Bench-201 paper); the searcher fills the other candidates at random.

What a search optimises is the signal: the summaries report each run's signal regret (the signal optimum minus the
best signal found, in points; :func:`signal_regret`) and whether it found the signal-optimal architecture (ties
within :data:`FOUND_TOLERANCE`), beside the 200-epoch test accuracy of its pick. Metrics go to every strategy as
the signal / 100 (a 0-1 accuracy). Each run seeds Python's ``random``, numpy's
global RNG and torch from its seed as well, since parts of NNI draw from those. A run is one (strategy, dataset,
seed); :func:`run_benchmark` runs many over a process pool, writes ``DATASET/STRATEGY/seed-N/result.json`` under the
output directory, and skips runs whose file is already there. :func:`summarize`, :func:`summary_markdown` and
:func:`plot_curves` turn result dicts into the outputs.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sys
import time
import warnings
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from nni_asenas.nasbench.nb201 import BUDGET_SECONDS, DATASETS, load_table, normalize_dataset
from nni_asenas.nasbench.simulator import SIGNALS, SimulatedBenchmark, run_asenas

__all__ = [
    "BenchSettings",
    "PUBLISHED",
    "RESNET_CELL",
    "RunSpec",
    "STRATEGIES",
    "FOUND_TOLERANCE",
    "BUDGET_FRACTIONS",
    "best_so_far_curve",
    "compare",
    "describe_stats",
    "load_results",
    "plan_runs",
    "plot_curves",
    "regret_at_fractions",
    "regret_curve",
    "result_path",
    "run_benchmark",
    "run_one",
    "signal_regret",
    "summarize",
    "summary_markdown",
]

_logger = logging.getLogger(__name__)

#: Strategy name -> what runs under it.
STRATEGIES: dict[str, str] = {
    "asenas": "ASE-NAS (this package, default settings), random start",
    "asenas-paper": "ASE-NAS with the 'paper' preset (the published settings), random start",
    "asenas+": "ASE-NAS+ started from the same seed's CIFAR-10 candidates (CIFAR-10: from the ResNet-like cell)",
    "random": "nni.nas.strategy.Random",
    "evolution": "nni.nas.strategy.RegularizedEvolution (NNI defaults: population 100, sample 25)",
    "evolution-nats": "nni.nas.strategy.RegularizedEvolution (population 10, sample 3, as NATS-Bench)",
    "tpe": "nni.algorithms.hpo.tpe_tuner.TpeTuner (maximize), driven directly",
    "optuna-tpe": "optuna.samplers.TPESampler(multivariate=False) (the pre-5 default; repeats cached; 'peers' extra)",
    "optuna-tpe-mv": "optuna.samplers.TPESampler(multivariate=True, group=True) (repeats cached; 'peers' extra)",
    "optuna-gp": "optuna.samplers.GPSampler (defaults; repeats cached; 'peers' extra)",
    "local-search": "local search: best improvement over one-edit neighbours, random restarts (White et al. 2021)",
    "rl": "nni.nas.strategy.PolicyBasedRL (NNI defaults; needs the 'peers' extra)",
}
_SOURCE_DATASET = "cifar10"  # asenas+ starts other datasets from this dataset's asenas search
RESNET_CELL = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|"

#: Reference rows of the report: label -> dataset -> (mean, std or None). Published, not measured here.
PUBLISHED: dict[str, dict[str, tuple[float, float | None]]] = {
    "ASE-NAS, authors (20 seeds)": {
        "cifar10": (94.23, 0.22), "cifar100": (72.76, 0.80), "imagenet16-120": (46.13, 0.67)},
    "ASE-NAS+, authors (20 seeds)": {"cifar100": (73.12, 0.61), "imagenet16-120": (46.66, 0.52)},
    "REA, NATS-Bench paper": {"cifar10": (93.92, None), "cifar100": (71.84, None), "imagenet16-120": (45.54, None)},
    "REINFORCE, NATS-Bench paper": {
        "cifar10": (93.85, None), "cifar100": (71.71, None), "imagenet16-120": (45.24, None)},
    "random, NATS-Bench paper": {"cifar10": (93.70, None), "cifar100": (71.04, None), "imagenet16-120": (44.57, None)},
}

@dataclass(frozen=True)
class BenchSettings:
    """What every run of one benchmark shares. ``budget_seconds`` None = each dataset's protocol budget."""

    signal: str = "val12"
    budget_seconds: float | None = None
    max_queries: int | None = None

    def budget_for(self, dataset: str) -> float:
        return BUDGET_SECONDS[normalize_dataset(dataset)] if self.budget_seconds is None else self.budget_seconds


@dataclass(frozen=True)
class RunSpec:
    strategy: str
    dataset: str
    seed: int


# ------------------------------------------------------------------------------------------------- one run


def run_one(strategy: str, dataset: str, seed: int, settings: BenchSettings = BenchSettings(), *,
            output: Path | None = None) -> dict[str, Any]:
    """One simulated search: the ``result.json`` dict of ``strategy`` on ``dataset`` with ``seed``.

    ``output`` is only read (``asenas+`` looks there for the same seed's CIFAR-10 ``asenas`` result).
    The dict adds ``settings`` (the strategy's own), ``decision_ms_per_query`` (wall time in the strategy per query,
    everything but the table lookup), ``cpu_ms_per_query`` (this process's CPU time per query, table lookups
    included: unlike wall time, it hardly grows when other processes share the cores) and ``wall_seconds`` to
    :meth:`SimulatedBenchmark.result`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r} (valid: {', '.join(STRATEGIES)})")
    dataset = normalize_dataset(dataset)
    start = asenas_plus_start(dataset, seed, settings, output=output) if strategy == "asenas+" else []
    _seed_globals(seed)
    cpu = time.process_time()
    result = _search(strategy, dataset, seed, settings, start)
    result["cpu_ms_per_query"] = 1000.0 * (time.process_time() - cpu) / max(result["queries"], 1)
    return result


def _search(strategy: str, dataset: str, seed: int, settings: BenchSettings, start: list[str]) -> dict[str, Any]:
    if strategy in ("asenas", "asenas-paper", "asenas+"):
        return run_asenas(dataset, seed=seed, budget_seconds=settings.budget_for(dataset),
                          max_queries=settings.max_queries, signal=settings.signal, initial_architectures=start,
                          strategy=strategy, config="paper" if strategy == "asenas-paper" else None)
    from nni_asenas.comparison import peers as _peers  # imports nni

    benchmark = SimulatedBenchmark(dataset, budget_seconds=settings.budget_for(dataset),
                                   max_queries=settings.max_queries, signal=settings.signal)
    if strategy == "tpe":
        return _peers.run_tpe(benchmark, seed)
    if strategy in _peers.OPTUNA_SAMPLERS:
        return _peers.run_optuna(benchmark, seed, strategy)
    if strategy == "local-search":
        return _peers.run_local_search(benchmark, seed)
    return _peers.run_nni_strategy(strategy, benchmark, seed)


def asenas_plus_start(dataset: str, seed: int, settings: BenchSettings, *, output: Path | None = None) -> list[str]:
    """The architectures ``asenas+`` starts from (see the module docstring)."""
    if normalize_dataset(dataset) == _SOURCE_DATASET:
        return [RESNET_CELL]
    source = result_path(output, _SOURCE_DATASET, "asenas", seed) if output is not None else None
    if source is not None and source.is_file():
        document = json.loads(source.read_text())
        if _same_settings(document, settings, _SOURCE_DATASET):
            return list(document["candidates"])
    _logger.info("asenas+ seed %d: searching %s with asenas first", seed, _SOURCE_DATASET)
    document = run_asenas(_SOURCE_DATASET, seed=seed, budget_seconds=settings.budget_for(_SOURCE_DATASET),
                          max_queries=settings.max_queries, signal=settings.signal)
    return list(document["candidates"])


def _same_settings(document: Mapping[str, Any], settings: BenchSettings, dataset: str) -> bool:
    return (document.get("signal", "val12") == settings.signal
            and document.get("max_queries") == settings.max_queries
            and math.isclose(document.get("budget_seconds", -1.0), settings.budget_for(dataset)))


def _seed_globals(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------- many runs


def result_path(output: Path, dataset: str, strategy: str, seed: int) -> Path:
    return Path(output) / normalize_dataset(dataset) / strategy / f"seed-{seed}" / "result.json"


def plan_runs(strategies: Sequence[str], datasets: Sequence[str], seeds: Iterable[int],
              seeds_for: Mapping[str, Iterable[int]] | None = None) -> list[RunSpec]:
    """Every (strategy, dataset, seed), CIFAR-10 ``asenas`` first and ``asenas+`` on the other datasets last,
    so that those usually find their starting candidates already written. ``seeds_for`` gives some strategies
    other seeds (a slow peer run on fewer)."""
    seeds = list(seeds)
    seeds_of = {name: list(values) for name, values in (seeds_for or {}).items()}
    runs = [RunSpec(s, normalize_dataset(d), seed) for d in datasets for s in strategies
            for seed in seeds_of.get(s, seeds)]

    def order(run: RunSpec) -> int:
        if run.strategy == "asenas" and run.dataset == _SOURCE_DATASET:
            return 0
        return 2 if run.strategy == "asenas+" and run.dataset != _SOURCE_DATASET else 1

    return sorted(runs, key=order)


def _write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(document, indent=1) + "\n")
    partial.replace(path)  # atomic: a reader never sees half a file, a crash never leaves one


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and "best" in document else None


def _execute(run: RunSpec, settings: BenchSettings, output: Path) -> dict[str, Any]:
    """Worker: one run, written to its result.json; returns the headline for the progress bar."""
    result = run_one(run.strategy, run.dataset, run.seed, settings, output=output)
    _exit_if_orphaned()  # a bench the user stopped writes nothing more
    _write_json(result_path(output, run.dataset, run.strategy, run.seed), result)
    return {"strategy": run.strategy, "dataset": run.dataset, "seed": run.seed,
            "test_accuracy": result["best"]["test_accuracy"] if result["best"] else None}


_parent_pid: int | None = None  # in a pool worker: the bench process that started it


def _exit_if_orphaned() -> None:
    if _parent_pid is not None and os.getppid() != _parent_pid:
        os._exit(1)


def _die_with_parent(parent: int) -> None:
    """End this worker when the bench process dies, however it dies (SIGKILL included): Linux's parent-death
    signal where there is one, else the check before each write (:func:`_exit_if_orphaned`)."""
    global _parent_pid
    _parent_pid = parent
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    _exit_if_orphaned()  # the parent may have died before the signal was asked for


def _init_worker(parent: int | None = None) -> None:
    """Set up a process that runs benchmark runs: a pool worker of the bench process ``parent``, or (None) the
    bench process itself."""
    import warnings

    import torch

    if parent is not None:
        _die_with_parent(parent)

    torch.set_num_threads(1)  # one process per core; more threads only contend
    # NNI 3.0 warns on import that it does not know some of this torch's classes; harmless for table lookups
    warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module", category=RuntimeWarning)
    import nni  # noqa: F401  (configures NNI's loggers, which the next line then quiets)

    logging.getLogger("nni").setLevel(logging.WARNING)


def run_benchmark(
    output: Path,
    runs: Sequence[RunSpec],
    settings: BenchSettings = BenchSettings(),
    *,
    jobs: int = 1,
    progress: bool = True,
    on_done: Callable[[RunSpec, dict[str, Any] | BaseException], None] | None = None,
) -> dict[RunSpec, str]:
    """Run every run of ``runs`` whose ``result.json`` is not in ``output`` yet, ``jobs`` at a time (1: in this
    process, which then keeps torch at one thread and NNI's loggers at WARNING, as the pool's workers do).
    Returns the failures (run -> one-line reason); a failed run leaves no file and the others go on.

    ``output/settings.json`` records ``settings``; a directory written with other settings is refused
    (:class:`ValueError`), so resumed runs always match the finished ones.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    recorded = output / "settings.json"
    if recorded.exists():
        try:
            previous = json.loads(recorded.read_text())
        except ValueError:
            raise ValueError(f"{recorded} is not valid JSON") from None
        if previous != asdict(settings):
            raise ValueError(f"{output} holds runs with other settings ({previous}); use another output directory")
    else:
        _write_json(recorded, asdict(settings))
    todo = [run for run in runs if _read_result(result_path(output, run.dataset, run.strategy, run.seed)) is None]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(runs), initial=len(runs) - len(todo), unit="run", desc="bench", dynamic_ncols=True)
    failures: dict[RunSpec, str] = {}

    def finished(run: RunSpec, outcome: dict[str, Any] | BaseException) -> None:
        if isinstance(outcome, BaseException):
            failures[run] = f"{type(outcome).__name__}: {outcome}".splitlines()[0]
            _logger.error("%s %s seed %d failed: %s", run.strategy, run.dataset, run.seed, failures[run])
        if bar is not None:
            bar.set_postfix_str(f"{run.strategy} {run.dataset} seed {run.seed}", refresh=False)
            bar.update(1)
        if on_done is not None:
            on_done(run, outcome)

    try:
        if jobs <= 1:
            _init_worker()
            for run in todo:
                try:
                    outcome: dict[str, Any] | BaseException = _execute(run, settings, output)
                except Exception as exc:  # noqa: BLE001  (one failed run must not stop the benchmark)
                    outcome = exc
                finished(run, outcome)
        else:
            _run_pool(todo, settings, output, jobs, finished)
    finally:
        if bar is not None:
            bar.close()
    return failures


def _run_pool(todo: Sequence[RunSpec], settings: BenchSettings, output: Path, jobs: int,
              finished: Callable[[RunSpec, dict[str, Any] | BaseException], None]) -> None:
    import multiprocessing

    # spawn: workers import torch themselves instead of inheriting a forked copy of the parent's state
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_init_worker,
                             initargs=(os.getpid(),)) as pool:
        pending: dict[Future, RunSpec] = {}
        queue = list(todo)
        while queue or pending:
            while queue and len(pending) < 2 * jobs:  # a short queue keeps the CIFAR-10 sources ahead of asenas+
                run = queue.pop(0)
                pending[pool.submit(_execute, run, settings, output)] = run
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                run = pending.pop(future)
                exc = future.exception()
                finished(run, exc if exc is not None else future.result())


def load_results(output: Path, runs: Iterable[RunSpec]) -> list[dict[str, Any]]:
    """The result dicts of ``runs`` found in ``output`` (missing or unreadable ones are left out)."""
    found = (_read_result(result_path(output, run.dataset, run.strategy, run.seed)) for run in runs)
    return [document for document in found if document is not None]


# ------------------------------------------------------------------------------------------------- statistics


def describe_stats(values: Sequence[float | None]) -> dict[str, Any]:
    """``n``, ``mean``, ``std`` (n-1) and the 95 % confidence interval of the mean (Student t) of ``values``."""
    data = np.asarray([v for v in values if v is not None], dtype=float)
    n = int(data.size)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95": None}
    mean = float(data.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci95": None}
    from scipy import stats

    std = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def compare(values: Sequence[float], reference: Sequence[float]) -> dict[str, float] | None:
    """Mean of ``values`` minus mean of ``reference``, and the two-sided p-value of Welch's t-test (None when
    either side has fewer than 2 values, or both have no spread)."""
    from scipy import stats

    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    if a.size < 2 or b.size < 2 or (a.std() == 0 and b.std() == 0):
        return None
    return {"delta": float(a.mean() - b.mean()), "p": float(stats.ttest_ind(a, b, equal_var=False).pvalue)}


#: A run "found" the signal optimum when its best signal is within this many points of it (ties in the table).
FOUND_TOLERANCE = 1e-4


def signal_regret(result: Mapping[str, Any], signal_optimum: float) -> float | None:
    """``signal_optimum`` minus the best signal of a run (points; 0 = it found the optimum), None without queries."""
    best = result.get("best")
    return None if not best else max(float(signal_optimum) - float(best["signal"]), 0.0)


#: Shares of the budget at which the summaries report the regret of the best found so far (anytime quality).
BUDGET_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def regret_at_fractions(result: Mapping[str, Any], signal_optimum: float,
                        fractions: Sequence[float] = BUDGET_FRACTIONS) -> list[float | None]:
    """Signal regret of the best architecture a run had found by each share of its budget (points; None before the
    first query ended). The budget is the query cap where the run had one (``max_queries``), else its simulated
    seconds: a query counts at share f if it ended by f x the budget. At 1 the run's final best, including the last
    query, which may end past the budget (a query starts while the budget is not spent)."""
    trajectory = result["trajectory"]
    cap = result.get("max_queries")
    out: list[float | None] = []
    for fraction in fractions:
        if fraction >= 1.0:
            done = trajectory
        elif cap is not None:
            done = trajectory[:int(math.floor(fraction * cap + 1e-9))]
        else:
            limit = fraction * float(result["budget_seconds"]) * (1 + 1e-12)
            done = [step for step in trajectory if step["simulated_seconds"] <= limit]
        out.append(max(float(signal_optimum) - float(done[-1]["best_signal"]), 0.0) if done else None)
    return out


def summarize(results: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Per dataset and strategy: the statistics (:func:`describe_stats`) of the signal regret (:func:`signal_regret`,
    the search's objective) under ``regret`` and of the reported test accuracy at the top level, the fraction of
    runs that found the signal optimum (ties within :data:`FOUND_TOLERANCE`), the mean regret at each share of the
    budget in :data:`BUDGET_FRACTIONS` (``regret_at``, :func:`regret_at_fractions`; with its Welch test against
    ``asenas`` in ``regret_at_vs_asenas``), mean queries, mean decision overhead
    per query (wall and CPU ms), wall seconds (total and per run), and Welch tests against ``asenas`` of both
    (``regret_vs_asenas``, ``vs_asenas``; :func:`compare`). Also each dataset's optima."""
    table = load_table()
    groups: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for result in results:
        groups.setdefault(result["dataset"], {}).setdefault(result["strategy"], []).append(result)
    summary: dict[str, Any] = {}
    for dataset in [d for d in DATASETS if d in groups]:
        entries: dict[str, Any] = {}
        signals = {r.get("signal", "val12") for group in groups[dataset].values() for r in group}
        if len(signals) != 1:
            raise ValueError(f"{dataset}: results mix signals {sorted(signals)}")
        signal = signals.pop()
        optimal_index, optimum_signal = table.optimum(dataset, SIGNALS[signal])
        regrets: dict[str, list[float]] = {}
        anytime: dict[str, list[list[float]]] = {}
        for strategy in [s for s in STRATEGIES if s in groups[dataset]]:
            group = sorted(groups[dataset][strategy], key=lambda r: r["seed"])
            picks = [r["best"] for r in group]
            walls = [float(r.get("wall_seconds", 0.0)) for r in group]
            run_regrets = [signal_regret(r, optimum_signal) for r in group]
            regrets[strategy] = [value for value in run_regrets if value is not None]
            by_fraction = list(zip(*(regret_at_fractions(r, optimum_signal) for r in group)))
            anytime[strategy] = [[v for v in column if v is not None] for column in by_fraction]
            entries[strategy] = {
                **describe_stats([p["test_accuracy"] if p else None for p in picks]),
                "regret": describe_stats(run_regrets),
                "regret_median": float(np.median(regrets[strategy])) if regrets[strategy] else None,
                "regret_at": {f"{round(100 * f)}": describe_stats(column)
                              for f, column in zip(BUDGET_FRACTIONS, by_fraction)},
                "seeds": [r["seed"] for r in group],
                "test_accuracies": [p["test_accuracy"] if p else None for p in picks],  # by seed, as listed
                "regrets": run_regrets,  # by seed, as listed
                "queries_mean": float(np.mean([r["queries"] for r in group])),
                "found_signal_optimum": float(np.mean([value is not None and value <= FOUND_TOLERANCE
                                                       for value in run_regrets])),
                "decision_ms_per_query": float(np.mean([r.get("decision_ms_per_query", math.nan) for r in group])),
                "cpu_ms_per_query": float(np.mean([r.get("cpu_ms_per_query", math.nan) for r in group])),
                "cpu_seconds": float(sum(r.get("cpu_ms_per_query", math.nan) * r["queries"] for r in group) / 1000),
                "wall_seconds": float(sum(walls)),
                "wall_seconds_per_run": float(np.mean(walls)),
            }
        accuracies = {strategy: [r["best"]["test_accuracy"] for r in group if r["best"]]
                      for strategy, group in groups[dataset].items()}
        for strategy, entry in entries.items():
            if strategy != "asenas" and "asenas" in accuracies:
                entry["vs_asenas"] = compare(accuracies[strategy], accuracies["asenas"])
                entry["regret_vs_asenas"] = compare(regrets[strategy], regrets["asenas"])
                entry["regret_at_vs_asenas"] = {
                    f"{round(100 * f)}": compare(mine, theirs)
                    for f, mine, theirs in zip(BUDGET_FRACTIONS, anytime[strategy], anytime["asenas"])}
        test_index, test_optimum = table.optimum(dataset)
        summary[dataset] = {
            "signal": signal,
            "optimum": {"test_accuracy": test_optimum, "arch": table.arch_str(test_index)},
            "signal_optimum": {"arch": table.arch_str(optimal_index), "signal": optimum_signal,
                               "test_accuracy": table.test_accuracy(optimal_index, dataset)},
            "strategies": entries,
        }
    return summary


def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.2f} ± {std:.2f}" if std is not None else f"{mean:.2f}"


def _fmt_compare(comparison: Mapping[str, float] | None, digits: int = 2) -> str:
    return "-" if not comparison else f"{comparison['delta']:+.{digits}f} (p={comparison['p']:.2g})"


def _fmt_regret(stats: Mapping[str, Any]) -> str:
    if stats["mean"] is None:
        return "-"
    if stats["ci95"] is None:
        return f"{stats['mean']:.3f}"
    return f"{stats['mean']:.3f} [{stats['ci95'][0]:.3f}, {stats['ci95'][1]:.3f}]"


def summary_markdown(summary: Mapping[str, Any], *, settings: BenchSettings | None = None,
                     command: str | None = None, notes: Sequence[str] = ()) -> str:
    """``summary.md``: a headline table (strategies x datasets, with reference rows), then one detail table per
    dataset."""
    datasets = list(summary)
    strategies = [s for s in STRATEGIES if any(s in summary[d]["strategies"] for d in datasets)]
    lines = ["# NAS-Bench-201: ASE-NAS and NNI's strategies, side by side", ""]
    if settings is not None:
        budget = ("protocol budgets (" + ", ".join(f"{d} {settings.budget_for(d):.0f} s" for d in datasets) + ")"
                  if settings.budget_seconds is None else f"{settings.budget_seconds:g} simulated s")
        cap = f", at most {settings.max_queries} queries" if settings.max_queries is not None else ""
        lines += [f"Signal `{settings.signal}`, {budget}{cap}.", ""]
    if command:
        lines += ["```", command, "```", ""]
    lines += ["## Signal regret and found rate", "",
              "What the searches optimise: signal regret = the signal optimum minus the best signal found (points; "
              "mean [95 % CI] over seeds) / the share of runs that found the signal-optimal architecture.", "",
              "| strategy | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    for strategy in strategies:
        cells = []
        for d in datasets:
            entry = summary[d]["strategies"].get(strategy)
            cells.append(f"{_fmt_regret(entry['regret'])} / {100 * entry['found_signal_optimum']:.0f} %" if entry else "-")
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    shares = " / ".join(f"{round(100 * f)}" for f in BUDGET_FRACTIONS)
    lines += ["", "## Signal regret by budget", "",
              f"Mean signal regret (points) of the best found by {shares} % of the budget (the query cap where one is "
              "set, else the simulated seconds); the lowest mean at each share in bold.", "",
              "| strategy | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    lowest = {d: [min((summary[d]["strategies"][s]["regret_at"][key]["mean"] for s in summary[d]["strategies"]
                       if summary[d]["strategies"][s]["regret_at"][key]["mean"] is not None), default=None)
                  for key in (f"{round(100 * f)}" for f in BUDGET_FRACTIONS)] for d in datasets}
    for strategy in strategies:
        cells = []
        for d in datasets:
            entry = summary[d]["strategies"].get(strategy)
            if not entry:
                cells.append("-")
                continue
            values = []
            for key, best in zip((f"{round(100 * f)}" for f in BUDGET_FRACTIONS), lowest[d]):
                mean = entry["regret_at"][key]["mean"]
                text = "-" if mean is None else f"{mean:.3f}"
                values.append(f"**{text}**" if mean is not None and best is not None and mean <= best + 1e-12 else text)
            cells.append(" / ".join(values))
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    lines += ["", "## Test accuracy", "",
              "200-epoch test accuracy (seed mean) of the architecture with the best signal; mean ± std over seeds.", ""]
    header = "| strategy | " + " | ".join(datasets) + " |"
    lines += [header, "|---" * (len(datasets) + 1) + "|"]
    for strategy in strategies:
        cells = []
        for d in datasets:
            entry = summary[d]["strategies"].get(strategy)
            cells.append(f"{_fmt(entry['mean'], entry['std'])} (n={entry['n']})" if entry else "-")
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    lines.append("| *benchmark optimum* | " + " | ".join(f"*{summary[d]['optimum']['test_accuracy']:.2f}*"
                                                       for d in datasets) + " |")
    for label, numbers in PUBLISHED.items():
        cells = [f"*{_fmt(*numbers[d])}*" if d in numbers else "-" for d in datasets]
        lines.append(f"| *{label}* | " + " | ".join(cells) + " |")
    lines.append("")
    for d in datasets:
        info = summary[d]
        lines += [f"## {d}", "",
                  f"Optimum (test): {info['optimum']['test_accuracy']:.2f} `{info['optimum']['arch']}`; "
                  f"signal optimum: `{info['signal_optimum']['arch']}` "
                  f"(test {info['signal_optimum']['test_accuracy']:.2f}).", "",
                  "| strategy | n | regret mean [95 % CI] | regret median | found | vs asenas: Δ regret (Welch p) "
                  "| test mean ± std | test 95 % CI | vs asenas: Δ test (Welch p) | queries | decision ms/query "
                  "| CPU ms/query | wall s (total) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for strategy, e in info["strategies"].items():
            ci = f"[{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}]" if e["ci95"] else "-"
            median = "-" if e["regret_median"] is None else f"{e['regret_median']:.3f}"
            lines.append(f"| {strategy} | {e['n']} | {_fmt_regret(e['regret'])} | {median} "
                         f"| {100 * e['found_signal_optimum']:.0f} % | {_fmt_compare(e.get('regret_vs_asenas'), 3)} "
                         f"| {_fmt(e['mean'], e['std'])} | {ci} | {_fmt_compare(e.get('vs_asenas'))} "
                         f"| {e['queries_mean']:.1f} | {e['decision_ms_per_query']:.2f} "
                         f"| {e['cpu_ms_per_query']:.2f} | {e['wall_seconds']:.0f} |")
        lines.append("")
    if notes:
        lines += ["## Notes", ""] + [f"- {note}" for note in notes] + [""]
    return "\n".join(lines)


def best_so_far_curve(result: Mapping[str, Any], grid: np.ndarray) -> np.ndarray:
    """Test accuracy of the current best at each simulated time of ``grid`` (NaN before the first query ends)."""
    trajectory = result["trajectory"]
    if not trajectory:
        return np.full(grid.shape, np.nan)
    times = np.array([step["simulated_seconds"] for step in trajectory], dtype=float)
    values = np.array([step["best_test_accuracy"] for step in trajectory], dtype=float)
    position = np.searchsorted(times, grid, side="right") - 1
    curve = values[np.clip(position, 0, None)]
    curve[position < 0] = np.nan
    return curve


def regret_curve(result: Mapping[str, Any], grid: np.ndarray, signal_optimum: float) -> np.ndarray:
    """Signal regret of the current best (``signal_optimum`` minus its signal) at each simulated time of ``grid``
    (NaN before the first query ends)."""
    trajectory = result["trajectory"]
    if not trajectory:
        return np.full(grid.shape, np.nan)
    times = np.array([step["simulated_seconds"] for step in trajectory], dtype=float)
    values = np.maximum(signal_optimum - np.array([step["best_signal"] for step in trajectory], dtype=float), 0.0)
    position = np.searchsorted(times, grid, side="right") - 1
    curve = values[np.clip(position, 0, None)]
    curve[position < 0] = np.nan
    return curve


#: Regret below this is drawn on a linear scale (the rest logarithmic), so that runs at the optimum (0) show.
REGRET_LINEAR_BELOW = 0.01


def plot_curves(results: Iterable[Mapping[str, Any]], path: Path, *, points: int = 200) -> None:
    """``curves.png``, one column per dataset. Top: signal regret of the current best vs simulated seconds, median
    (line) and quartiles (band) over seeds, logarithmic above :data:`REGRET_LINEAR_BELOW` (symlog). Bottom: test
    accuracy of the current best, mean ± standard error, the benchmark optimum dashed. One colour per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for result in results:
        groups.setdefault(result["dataset"], {}).setdefault(result["strategy"], []).append(result)
    datasets = [d for d in DATASETS if d in groups]
    if not datasets:
        raise ValueError("no results to plot")
    table = load_table()
    palette = plt.get_cmap("tab20")
    figure, axes = plt.subplots(2, len(datasets), figsize=(5.6 * len(datasets), 8.4), squeeze=False)
    for column, dataset in enumerate(datasets):
        top, bottom = axes[0][column], axes[1][column]
        end = max(r["simulated_seconds"] for group in groups[dataset].values() for r in group)
        grid = np.linspace(0.0, end, points)
        signals = {r.get("signal", "val12") for group in groups[dataset].values() for r in group}
        signal_optimum = table.optimum(dataset, SIGNALS[signals.pop()])[1] if len(signals) == 1 else math.nan
        low = math.inf
        for strategy in [s for s in STRATEGIES if s in groups[dataset]]:
            index = list(STRATEGIES).index(strategy)
            color = palette(2 * (index % 10) + index // 10)  # the same colour in every panel
            style = "-" if strategy.startswith("asenas") else "--"
            width = 2.0 if strategy == "asenas" else 1.2
            label = f"{strategy} (n={len(groups[dataset][strategy])})"
            regrets = np.array([regret_curve(r, grid, signal_optimum) for r in groups[dataset][strategy]])
            shown = np.sum(~np.isnan(regrets), axis=0) > 0
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                q1, median, q3 = np.nanpercentile(regrets[:, shown], [25, 50, 75], axis=0)
            top.plot(grid[shown], median, label=label, color=color, linestyle=style, linewidth=width)
            top.fill_between(grid[shown], q1, q3, color=color, alpha=0.12)
            curves = np.array([best_so_far_curve(r, grid) for r in groups[dataset][strategy]])
            count = np.sum(~np.isnan(curves), axis=0)
            shown = count > 0
            x, values, n = grid[shown], curves[:, shown], count[shown]
            mean = np.nanmean(values, axis=0)
            with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
                warnings.simplefilter("ignore", RuntimeWarning)  # one run so far at a point: no spread yet
                se = np.nan_to_num(np.nanstd(values, axis=0, ddof=1) / np.sqrt(n))
            bottom.plot(x, mean, label=label, color=color, linestyle=style, linewidth=width)
            bottom.fill_between(x, mean - se, mean + se, color=color, alpha=0.15)
            late = x >= 0.15 * end
            if late.any():
                low = min(low, float(np.min((mean - se)[late])))
        top.set_yscale("symlog", linthresh=REGRET_LINEAR_BELOW)
        top.set_ylim(bottom=0.0)
        top.set_title(f"{dataset}: signal regret (median, quartiles)")
        top.set_xlabel("simulated seconds")
        top.set_ylabel("signal optimum - best signal (points)")
        top.grid(alpha=0.3, which="both")
        top.legend(fontsize=6.5, loc="upper right")
        optimum = table.optimum(dataset)[1]
        bottom.axhline(optimum, color="black", linestyle=":", linewidth=0.8, label=f"optimum {optimum:.2f}")
        if math.isfinite(low):
            bottom.set_ylim(low - 0.25 * (optimum - low + 0.1), optimum + 0.08 * (optimum - low + 0.1))
        bottom.set_title(f"{dataset}: test accuracy of the current best (mean ± s.e.)")
        bottom.set_xlabel("simulated seconds")
        bottom.set_ylabel("200-epoch test accuracy (%)")
        bottom.grid(alpha=0.3)
        bottom.legend(fontsize=6.5, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
