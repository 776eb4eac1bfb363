"""Simulated NAS-Bench-201 searches under the NAS-Bench-201 / NATS-Bench protocol.

A query of an architecture returns its 12-epoch validation accuracy (the signal) and charges 12/200 of its
200-epoch training time (simulated seconds). As in the NATS-Bench reference searches, a new query starts while
less than the budget is spent (so the last one may end past it). The number reported is the 200-epoch seed-mean
test accuracy of the best-signal architecture. :class:`SimulatedBenchmark` keeps the books for any strategy;
:func:`run_asenas` drives ASE-NAS with it and returns the ``result.json`` document.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from nni_asenas.config import AseNasConfig, resolve_config
from nni_asenas.core.searcher import AseNasSearcher
from nni_asenas.errors import UsageError
from nni_asenas.nasbench.nb201 import BUDGET_SECONDS, NasBench201Table, load_table, normalize_dataset
from nni_asenas.results import read_candidates

__all__ = ["SIGNALS", "SimulatedBenchmark", "read_initial_architectures", "run_asenas"]

SPACE = "nasbench201"
#: What a query may return as its signal -> the table metric it reads. ``val200`` (the 200-epoch validation
#: accuracy, seed mean) is an ablation: the converged signal at the same 12-epoch cost per query.
SIGNALS = {"val12": "signal", "val200": "val200"}


class SimulatedBenchmark:
    """Answers queries from the table, charges simulated time, and records the trajectory.

    ``budget_seconds`` defaults to the protocol budget of the dataset; ``max_queries`` (optional) caps the
    number of queries as well. :attr:`done` tells whether another query may start. ``signal`` picks what a query
    returns (a key of :data:`SIGNALS`); the cost of a query is the 12-epoch one either way.
    """

    def __init__(
        self,
        dataset: str,
        *,
        budget_seconds: float | None = None,
        max_queries: int | None = None,
        table: NasBench201Table | None = None,
        signal: str = "val12",
    ) -> None:
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r} (valid: {', '.join(SIGNALS)})")
        self.dataset = normalize_dataset(dataset)
        self.signal = signal
        self.table = table if table is not None else load_table()
        self.budget_seconds = float(BUDGET_SECONDS[self.dataset] if budget_seconds is None else budget_seconds)
        if not self.budget_seconds >= 0 or math.isinf(self.budget_seconds):
            raise ValueError(f"budget_seconds must be a finite number >= 0, got {budget_seconds!r}")
        if max_queries is not None and max_queries < 0:
            raise ValueError(f"max_queries must be >= 0, got {max_queries!r}")
        self.max_queries = max_queries
        self._signal = self.table.metric_array(self.dataset, SIGNALS[signal])
        self._cost = self.table.cost_array(self.dataset)
        self._test = self.table.test_array(self.dataset)
        self.simulated_seconds = 0.0
        self.trajectory: list[dict[str, Any]] = []
        self.best_index: int | None = None

    @property
    def queries(self) -> int:
        return len(self.trajectory)

    @property
    def done(self) -> bool:
        return self.simulated_seconds >= self.budget_seconds or (
            self.max_queries is not None and self.queries >= self.max_queries
        )

    def query(self, arch: Any) -> float:
        """Train ``arch`` (any form the table accepts) in simulation: its signal, by default the 12-epoch
        validation accuracy (%)."""
        index = self.table.index(arch)
        signal = float(self._signal[index])
        self.simulated_seconds += float(self._cost[index])
        if self.best_index is None or signal > self._signal[self.best_index]:
            self.best_index = index
        self.trajectory.append({
            "query": self.queries,
            "arch": self.table.arch_str(index),
            "signal": signal,
            "simulated_seconds": self.simulated_seconds,
            "best_signal": float(self._signal[self.best_index]),
            "best_test_accuracy": float(self._test[self.best_index]),
        })
        return signal

    def result(self, strategy: str, seed: int, **extra: Any) -> dict[str, Any]:
        """The ``result.json`` document (see the README) for the search so far."""
        optimum_index, optimum = self.table.optimum(self.dataset)
        best = None
        if self.best_index is not None:
            test = float(self._test[self.best_index])
            best = {
                "arch": self.table.arch_str(self.best_index),
                "index": self.best_index,
                "signal": float(self._signal[self.best_index]),
                "test_accuracy": test,
                "gap_to_optimum": optimum - test,
            }
        return {
            "strategy": strategy,
            "space": SPACE,
            "dataset": self.dataset,
            "signal": self.signal,
            "seed": seed,
            "queries": self.queries,
            "simulated_seconds": self.simulated_seconds,
            "budget_seconds": self.budget_seconds,
            "max_queries": self.max_queries,
            "best": best,
            "optimum": {"arch": self.table.arch_str(optimum_index), "index": optimum_index, "test_accuracy": optimum},
            **extra,
            "trajectory": self.trajectory,
        }


def read_initial_architectures(items: Iterable[str], table: NasBench201Table | None = None) -> list[str]:
    """ASE-NAS+ starting points: each item is an architecture (any form the table accepts) or the path of an
    earlier ``result.json``, whose final candidates are used. Returns canonical arch strings, duplicates dropped."""
    table = table if table is not None else load_table()
    archs: list[str] = []
    for item in items:
        looks_like_file = item.endswith(".json") or Path(item).exists() or "/" in item and "|" not in item
        if looks_like_file:
            try:
                found = read_candidates(item)
            except UsageError as exc:
                raise UsageError(f"cannot read initial architectures from {item}: {exc}") from None
        else:
            found = [item]
        for arch in found:
            try:
                text = table.arch_str(arch)
            except ValueError as exc:
                raise ValueError(f"initial architecture {arch!r}: {exc}") from None
            if text not in archs:
                archs.append(text)
    return archs


def run_asenas(
    dataset: str,
    *,
    seed: int = 0,
    budget_seconds: float | None = None,
    max_queries: int | None = None,
    initial_architectures: Sequence[str] = (),
    strategy: str | None = None,
    on_query: Callable[[SimulatedBenchmark], None] | None = None,
    signal: str = "val12",
    config: AseNasConfig | str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """One simulated ASE-NAS search (ASE-NAS+ when ``initial_architectures`` are given): the ``result.json`` dict.

    ``config`` and ``settings`` (k, n_steps, learning_rate, ...) are the method's (:class:`AseNasConfig`). ``on_query`` is called
    after every query (progress display). ``signal`` is what queries return (see :class:`SimulatedBenchmark`).
    """
    started = time.perf_counter()
    benchmark = SimulatedBenchmark(dataset, budget_seconds=budget_seconds, max_queries=max_queries, signal=signal)
    table = benchmark.table
    config = resolve_config(config, **settings)
    searcher = AseNasSearcher(
        table.decisions(), config, initial_architectures=[table.arch_dict(arch) for arch in initial_architectures], seed=seed,
    )
    decision_seconds = 0.0
    while not benchmark.done:
        tick = time.perf_counter()
        proposal = searcher.ask()
        decision_seconds += time.perf_counter() - tick
        if proposal is None:  # the whole space has been evaluated
            break
        value = benchmark.query(proposal.arch)
        tick = time.perf_counter()
        searcher.tell(proposal.id, value / 100.0)
        decision_seconds += time.perf_counter() - tick
        if on_query is not None:
            on_query(benchmark)
    name = strategy or ("asenas+" if initial_architectures else "asenas")
    return benchmark.result(
        name,
        seed,
        settings={**config.to_dict(), "initial_architectures": list(initial_architectures)},
        candidates=[table.arch_str(obs.arch) for obs in searcher.candidates],
        decision_ms_per_query=1000.0 * decision_seconds / max(benchmark.queries, 1),
        wall_seconds=time.perf_counter() - started,
    )
