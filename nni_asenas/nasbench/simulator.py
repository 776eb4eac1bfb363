"""Simulated NAS-Bench-201 searches under the NAS-Bench-201 / NATS-Bench protocol.

A query of an architecture returns its 12-epoch validation accuracy (the signal) and charges 12/200 of its
200-epoch training time (simulated seconds). As in the NATS-Bench reference searches, a new query starts while
less than the budget is spent (so the last one may end past it). The number reported is the 200-epoch seed-mean
test accuracy of the best-signal architecture. :class:`SimulatedBenchmark` keeps the books for any strategy;
:func:`run_asenas` drives ASE-NAS with it through the search loop (:func:`nni_asenas.search.run_search`) and returns
the ``result.json`` document (schema: :mod:`nni_asenas.search.result`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

from nni_asenas.config import AseNasConfig, resolve_config
from nni_asenas.core.searcher import AseNasSearcher
from nni_asenas.nasbench.nb201 import BUDGET_SECONDS, NasBench201Table, load_table, normalize_dataset
from nni_asenas.search.initial import read_initial_architectures as read_architectures
from nni_asenas.search.loop import run_search
from nni_asenas.search.result import result_document

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
            "query": self.queries + 1,
            "arch": self.table.arch_str(index),
            "signal": signal,
            "simulated_seconds": self.simulated_seconds,
            "best_signal": float(self._signal[self.best_index]),
            "best_test_accuracy": float(self._test[self.best_index]),
        })
        return signal

    def result(self, strategy: str, seed: int, **extra: Any) -> dict[str, Any]:
        """The ``result.json`` document (:func:`~nni_asenas.search.result.result_document`) of the search so far;
        ``extra`` gives the strategy's ``settings``, ``candidates`` and measured times."""
        return result_document(strategy=strategy, space=SPACE, seed=seed, queries=self.queries, failed_queries=0,
                               max_queries=self.max_queries, best=self.best(), trajectory=self.trajectory,
                               **self.fields(), **extra)

    def best(self) -> dict[str, Any] | None:
        """The best-signal architecture so far: ``arch, index, signal, test_accuracy, gap_to_optimum``."""
        if self.best_index is None:
            return None
        test = float(self._test[self.best_index])
        return {
            "arch": self.table.arch_str(self.best_index),
            "index": self.best_index,
            "signal": float(self._signal[self.best_index]),
            "test_accuracy": test,
            "gap_to_optimum": self.table.optimum(self.dataset)[1] - test,
        }

    def fields(self) -> dict[str, Any]:
        """This route's keys of ``result.json``: dataset, signal, simulated and budget seconds, the optimum."""
        optimum_index, optimum = self.table.optimum(self.dataset)
        return {
            "dataset": self.dataset,
            "signal": self.signal,
            "simulated_seconds": self.simulated_seconds,
            "budget_seconds": self.budget_seconds,
            "optimum": {"arch": self.table.arch_str(optimum_index), "index": optimum_index, "test_accuracy": optimum},
        }


def read_initial_architectures(items: Iterable[Any], table: NasBench201Table | None = None) -> list[str]:
    """ASE-NAS+ starting points as canonical arch strings: each item an architecture (any form the table accepts)
    or the path of an earlier ``result.json`` (its final candidates); see :mod:`nni_asenas.search.initial`."""
    table = table if table is not None else load_table()
    return read_architectures(items, table.arch_str)


def run_asenas(
    dataset: str,
    *,
    seed: int = 0,
    budget_seconds: float | None = None,
    max_queries: int | None = None,
    initial_architectures: Iterable[Any] = (),
    strategy: str | None = None,
    on_query: Callable[[dict[str, Any]], None] | None = None,
    signal: str = "val12",
    config: AseNasConfig | str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """One simulated ASE-NAS search (ASE-NAS+ when ``initial_architectures`` are given): the ``result.json`` dict.

    ``initial_architectures`` are architectures in any form the table accepts, or result.json paths (read by
    :func:`read_initial_architectures`). ``config`` and ``settings`` (k, n_steps, learning_rate, ...) are the
    method's (:class:`AseNasConfig`). ``on_query`` gets each trajectory entry (progress display). ``signal`` is what
    queries return (see :class:`SimulatedBenchmark`).
    """
    benchmark = SimulatedBenchmark(dataset, budget_seconds=budget_seconds, max_queries=max_queries, signal=signal)
    table = benchmark.table
    initial = read_initial_architectures(initial_architectures, table)
    config = resolve_config(config, **settings)
    searcher = AseNasSearcher(table.decisions(), config, initial_architectures=[table.arch_dict(arch) for arch in initial],
                              seed=seed)
    search = run_search(searcher, benchmark.query, max_queries=max_queries, should_stop=lambda: benchmark.done,
                        on_query=None if on_query is None else (lambda query: on_query(benchmark.trajectory[-1])),
                        score_unit=100.0)
    return search.document(
        strategy=strategy or ("asenas+" if initial else "asenas"), space=SPACE, seed=seed,
        settings={**config.to_dict(), "initial_architectures": initial}, best=benchmark.best(),
        candidates=[table.arch_str(obs.arch) for obs in search.candidates], trajectory=benchmark.trajectory,
        **benchmark.fields(),
    )
