"""NNI's own strategies on the simulated NAS-Bench-201 benchmark (the peers of :mod:`nni_asenas.comparison.harness`).

The strategies are NNI's real classes. Those written as NAS strategies run on NNI's ``SequentialExecutionEngine``
whose budget is the simulated one (:class:`SimulatedEngine`), over :class:`~nni_asenas.nasbench.nb201_space.
NasBench201Space` with an evaluator that looks the frozen model up in the table instead of training it
(:class:`TableEvaluator`). TPE is NNI's tuner, driven directly (NNI's ``TPE`` strategy wraps the same tuner but
sleeps 1 s per model); its result records how many of its proposals repeated an earlier one (NNI's tuner
replaces those by the next unseen point of a grid). Every metric goes to the strategy as the signal / 100.

Beside NNI's: Optuna's ``TPESampler`` (univariate, or ``multivariate=True, group=True``) and ``GPSampler``
(:func:`run_optuna`), where the ``peers`` extra is installed, and local search (:func:`run_local_search`, White et al. 2021). Optuna
does not deduplicate: a repeated proposal is answered from a cache of earlier results at no cost (not queried, not
charged), as a careful user would do; the result records how many asks were such repeats.
"""

from __future__ import annotations

import time
from typing import Any

import nni
import numpy as np
from nni.nas.evaluator import Evaluator
from nni.nas.execution import SequentialExecutionEngine
from nni.nas.space import RawFormatModelSpace

from nni_asenas.comparison.local_search import local_search
from nni_asenas.nasbench.nb201_space import NasBench201Space, search_space
from nni_asenas.nasbench.simulator import SimulatedBenchmark

__all__ = [
    "NNI_STRATEGIES",
    "SimulatedEngine",
    "TableEvaluator",
    "OPTUNA_SAMPLERS",
    "optuna_sampler",
    "optuna_unavailable",
    "rl_unavailable",
    "run_local_search",
    "run_nni_strategy",
    "run_optuna",
    "run_tpe",
]

NNI_STRATEGIES = ("random", "evolution", "evolution-nats", "rl")


class TableEvaluator(Evaluator):
    """Answers a frozen model from the simulated benchmark instead of building and training it."""

    def __init__(self, benchmark: SimulatedBenchmark) -> None:
        self.benchmark = benchmark
        self.seconds = 0.0  # spent in table lookups: not the strategy's time

    def extra_repr(self) -> str:
        return f"dataset={self.benchmark.dataset!r}, signal={self.benchmark.signal!r}"

    def _execute(self, model: Any) -> float:  # NNI's hook for evaluators that need no instantiated network
        tick = time.perf_counter()
        signal = self.benchmark.query(dict(model.sample))
        self.seconds += time.perf_counter() - tick
        nni.report_final_result(signal / 100.0)
        return signal

    def evaluate(self, model: NasBench201Space) -> float:
        signal = self.benchmark.query(model.arch)
        nni.report_final_result(signal / 100.0)
        return signal


class SimulatedEngine(SequentialExecutionEngine):
    """NNI's sequential engine whose budget is the simulated one: a model may start until the budget is spent."""

    def __init__(self, benchmark: SimulatedBenchmark) -> None:
        super().__init__()
        self.benchmark = benchmark

    def budget_available(self) -> bool:
        return not self.benchmark.done


def rl_unavailable() -> str | None:
    """Why NNI's ``PolicyBasedRL`` cannot run here (its optional dependencies), or None if it can."""
    try:
        import gym  # noqa: F401
        import tianshou  # noqa: F401
    except ImportError as exc:
        return f"{exc} (install the 'peers' extra: pip install 'nni-asenas[peers]')"
    from nni.nas.strategy import rl

    if not rl.has_tianshou:
        return "nni.nas.strategy.rl could not import its tianshou parts"
    return None


def make_strategy(name: str, seed: int) -> Any:
    """The NNI strategy behind ``name`` (see :data:`nni_asenas.comparison.harness.STRATEGIES`), seeded where NNI takes a seed."""
    from nni.nas import strategy

    if name == "random":
        return strategy.Random(seed=seed)
    if name == "evolution":
        return strategy.RegularizedEvolution(seed=seed)
    if name == "evolution-nats":
        return strategy.RegularizedEvolution(population_size=10, sample_size=3, seed=seed)
    if name == "rl":
        reason = rl_unavailable()
        if reason is not None:
            raise RuntimeError(f"rl cannot run: {reason}")
        return strategy.PolicyBasedRL()  # no seed argument: it draws from torch / numpy, seeded per run
    raise ValueError(f"{name!r} is not one of the NNI strategies {', '.join(NNI_STRATEGIES)}")


def run_nni_strategy(name: str, benchmark: SimulatedBenchmark, seed: int) -> dict[str, Any]:
    """Run NNI strategy ``name`` until ``benchmark`` is done: the ``result.json`` dict."""
    started = time.perf_counter()
    peer = make_strategy(name, seed)
    evaluator = TableEvaluator(benchmark)
    peer(RawFormatModelSpace(NasBench201Space(), evaluator), SimulatedEngine(benchmark))
    return _result(benchmark, name, seed, {"class": type(peer).__name__, "repr": repr(peer)}, started,
                   evaluator.seconds)


def run_tpe(benchmark: SimulatedBenchmark, seed: int) -> dict[str, Any]:
    """NNI's ``TpeTuner`` (maximize) on the NAS-Bench-201 search-space JSON until ``benchmark`` is done."""
    from nni.algorithms.hpo.tpe_tuner import TpeTuner

    started = time.perf_counter()
    query_seconds = 0.0
    tuner = TpeTuner(optimize_mode="maximize", seed=seed)
    tuner.update_search_space(search_space())
    tuner.dedup = dedup = _CountingDeduplicator(tuner.dedup)
    parameter_id = 0
    while not benchmark.done:
        try:
            parameters = tuner.generate_parameters(parameter_id)
        except nni.NoMoreTrialError:  # the whole space has been proposed
            break
        tick = time.perf_counter()
        signal = benchmark.query(parameters)
        query_seconds += time.perf_counter() - tick
        tuner.receive_trial_result(parameter_id, parameters, signal / 100.0)
        parameter_id += 1
    return _result(benchmark, "tpe", seed, {"class": "TpeTuner", "optimize_mode": "maximize",
                                            "duplicates_replaced": dedup.replaced}, started, query_seconds)


def optuna_unavailable() -> str | None:
    """Why Optuna's samplers cannot run here, or None if they can."""
    try:
        import optuna  # noqa: F401
    except ImportError as exc:
        return f"{exc} (install the 'peers' extra: pip install 'nni-asenas[peers]')"
    return None


#: Consecutive cached answers after which an Optuna search is taken to have nothing new to propose.
MAX_REPEATS_IN_A_ROW = 10_000

#: Harness name -> Optuna sampler (see :func:`optuna_sampler`).
OPTUNA_SAMPLERS = ("optuna-tpe", "optuna-tpe-mv", "optuna-gp")


def optuna_sampler(strategy: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """The Optuna sampler behind harness name ``strategy``, seeded, and the settings that describe it.

    ``optuna-tpe``: ``TPESampler(multivariate=False)`` (independent per-parameter models, the default before Optuna
    5, and most users' code); ``optuna-tpe-mv``: ``TPESampler(multivariate=True, group=True)``; ``optuna-gp``:
    ``GPSampler`` with its defaults (Matern-5/2 kernel with one fitted length scale per parameter, log expected
    improvement, 10 random start-up trials)."""
    import warnings

    import optuna

    with warnings.catch_warnings():  # multivariate and group are flagged experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if strategy == "optuna-tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=False), {
                "class": "optuna.samplers.TPESampler", "multivariate": False, "group": False}
        if strategy == "optuna-tpe-mv":
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True), {
                "class": "optuna.samplers.TPESampler", "multivariate": True, "group": True}
        if strategy == "optuna-gp":
            return optuna.samplers.GPSampler(seed=seed), {"class": "optuna.samplers.GPSampler"}
    raise ValueError(f"{strategy!r} is not one of the Optuna peers {', '.join(OPTUNA_SAMPLERS)}")


def run_optuna(benchmark: SimulatedBenchmark, seed: int, strategy: str) -> dict[str, Any]:
    """Optuna's sampler ``strategy`` (:func:`optuna_sampler`), one categorical parameter per NAS-Bench-201 edge,
    maximising, until ``benchmark`` is done. Repeats are answered from the cache of earlier results at no cost."""
    import optuna

    reason = optuna_unavailable()
    if reason is not None:
        raise RuntimeError(f"{strategy} cannot run: {reason}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    sampler, described = optuna_sampler(strategy, seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    decisions = benchmark.table.decisions()
    cache: dict[tuple[str, ...], float] = {}
    query_seconds, repeats, in_a_row = 0.0, 0, 0
    while not benchmark.done and in_a_row < MAX_REPEATS_IN_A_ROW:
        trial = study.ask()
        arch = {label: trial.suggest_categorical(label, options) for label, options in decisions.items()}
        key = tuple(arch.values())
        if key in cache:
            repeats, in_a_row = repeats + 1, in_a_row + 1
        else:
            tick = time.perf_counter()
            cache[key] = benchmark.query(arch) / 100.0
            query_seconds += time.perf_counter() - tick
            in_a_row = 0
        study.tell(trial, cache[key])
    settings = {**described, "seed": seed, "optuna": optuna.__version__, "asks": len(study.trials),
                "repeats_answered_from_cache": repeats}
    return _result(benchmark, strategy, seed, settings, started, query_seconds)


def run_local_search(benchmark: SimulatedBenchmark, seed: int) -> dict[str, Any]:
    """Local search (best improvement over one-edit neighbours, random restarts) until ``benchmark`` is done."""
    started = time.perf_counter()
    decisions = benchmark.table.decisions()
    options = list(decisions.values())
    labels = list(decisions)
    query_seconds = 0.0

    def query(code: tuple[int, ...]) -> float:
        nonlocal query_seconds
        tick = time.perf_counter()
        value = benchmark.query({label: values[i] for label, values, i in zip(labels, options, code)}) / 100.0
        query_seconds += time.perf_counter() - tick
        return value

    local_search([len(values) for values in options], query, np.random.default_rng(seed), lambda: benchmark.done)
    settings = {"algorithm": "best-improvement local search over one-edit neighbours, random restarts",
                "reference": "White et al. 2021, Local search is state of the art for NAS benchmarks"}
    return _result(benchmark, "local-search", seed, settings, started, query_seconds)


class _CountingDeduplicator:
    """Counts the proposals NNI's TPE repeated, which its ``Deduplicator`` replaced by the next unseen grid point."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.replaced = 0

    def __call__(self, parameters: Any) -> Any:
        result = self.inner(parameters)
        self.replaced += result is not parameters
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _result(benchmark: SimulatedBenchmark, strategy: str, seed: int, settings: dict[str, Any], started: float,
            query_seconds: float) -> dict[str, Any]:
    wall = time.perf_counter() - started
    return benchmark.result(
        strategy, seed, settings=settings,
        decision_ms_per_query=1000.0 * (wall - query_seconds) / max(benchmark.queries, 1),
        wall_seconds=wall,
    )
