"""The ``result.json`` of a search: one schema for every route, one writer, one reader of its candidates.

Every search writes the same top-level keys (``nni-asenas search`` on either space, ``nni-asenas bench`` for each
run, :func:`~nni_asenas.nasbench.simulator.run_asenas`, the supernet and the predictor searches):

- ``strategy``: ``asenas``, ``asenas+`` (started from initial architectures), or a peer's name;
- ``space``: ``nasbench201`` or ``mobilenet``; ``seed``: the seed of the search;
- ``queries``: evaluated architectures, failed ones included; ``failed_queries``: those whose evaluation failed;
  ``max_queries``: the query limit, or null;
- ``best``: the best query (its ``arch`` and the route's numbers), null if none succeeded;
- ``settings``: the method's settings (:class:`~nni_asenas.config.AseNasConfig`) and the ``initial_architectures``
  it started from (a peer: its own settings);
- ``candidates``: ASE-NAS's final candidate set, what ``--init`` and ``initial_architectures`` read;
- measured times: ``decision_ms_per_query`` (milliseconds in the searcher, ask and tell, per query),
  ``evaluation_seconds_per_query`` (ASE-NAS searches) and ``wall_seconds``;
- ``trajectory``: one entry per query, in order: ``query`` (1, 2, ...), ``arch`` and the route's numbers
  (``nasbench201``: ``signal``, ``simulated_seconds``, ``best_signal``, ``best_test_accuracy``; ``mobilenet``:
  ``top1``, ``madds``, ``kind``, ``best_top1``, ``seconds``).

Routes add their own keys. ``nasbench201``: ``dataset``, ``signal`` (what a query returns), ``simulated_seconds``,
``budget_seconds``, ``optimum``; ``best`` has ``arch, index, signal, test_accuracy, gap_to_optimum``.
``mobilenet``: ``max_madds``, ``madds_resolution`` and ``evaluator`` (an object whose ``kind`` is ``supernet`` or
``predictor``, with what the evaluator was); ``best`` has ``arch, top1, madds, params``; a predictor search that
re-scored its best architectures adds ``rescored`` and ``best_predicted``. Architectures are NAS-Bench-201 arch
strings or MobileNet-like decision objects. The same seed gives the same document apart from the measured times
(``decision_ms_per_query``, ``evaluation_seconds_per_query``, ``wall_seconds`` and the trajectory's ``seconds``).

Pure JSON, no heavy imports: the tuner reads candidates at start-up.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Sequence

from nni_asenas.errors import UsageError

__all__ = ["MEASURED_KEYS", "RESULT_KEYS", "candidates_of", "read_candidates", "read_json", "result_document", "write_result",
           "write_text"]

#: The keys every ``result.json`` has (see the module docstring); routes add theirs.
RESULT_KEYS = ("strategy", "space", "seed", "queries", "failed_queries", "max_queries", "best", "settings",
               "candidates", "decision_ms_per_query", "evaluation_seconds_per_query", "wall_seconds", "trajectory")

#: The measured times among them: the only top-level values a seed does not fix.
MEASURED_KEYS = ("decision_ms_per_query", "evaluation_seconds_per_query", "wall_seconds")


def result_document(*, strategy: str, space: str, seed: int, queries: int, failed_queries: int,
                    max_queries: int | None, best: Mapping[str, Any] | None, trajectory: Sequence[Mapping[str, Any]],
                    settings: Mapping[str, Any] | None = None, candidates: Sequence[Any] | None = None,
                    decision_ms_per_query: float | None = None, evaluation_seconds_per_query: float | None = None,
                    wall_seconds: float | None = None, **fields: Any) -> dict[str, Any]:
    """The ``result.json`` document: the shared keys in their order, the route's ``fields`` after the counts, the
    trajectory last. ``settings``, ``candidates`` and the measured times are left out where a search has none (a
    peer without candidates, a document of a search still running)."""
    document: dict[str, Any] = {"strategy": strategy, "space": space, "seed": seed, "queries": queries,
                                "failed_queries": failed_queries, "max_queries": max_queries}
    document.update(fields)
    document["best"] = None if best is None else dict(best)
    optional = {"settings": settings, "candidates": candidates, "decision_ms_per_query": decision_ms_per_query,
                "evaluation_seconds_per_query": evaluation_seconds_per_query, "wall_seconds": wall_seconds}
    document.update({key: value for key, value in optional.items() if value is not None})
    document["trajectory"] = [dict(entry) for entry in trajectory]
    return document


def write_result(path: str | os.PathLike[str], document: Mapping[str, Any]) -> None:
    """Write a ``result.json`` document to ``path`` (see :func:`write_text`)."""
    write_text(path, json.dumps(document, indent=1) + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically. If that fails (the folder went away or became read-only during a long
    run), the text goes to a file in the system's temporary folder and the :class:`UsageError` says where."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
        return
    except OSError as exc:
        reason = exc.strerror or str(exc)
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass
    handle, rescue = tempfile.mkstemp(prefix=f"nni-asenas-{path.stem}-", suffix=path.suffix)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    raise UsageError(f"cannot write {path} ({reason}); the result is saved in {rescue} instead")


def read_candidates(path: str | os.PathLike[str]) -> list[Any]:
    """The non-empty ``candidates`` list of the ``result.json`` at ``path``, or a :class:`UsageError` saying why not
    (the message names no file: callers prefix it with what they were reading for)."""
    return candidates_of(read_json(path))


def candidates_of(document: Any) -> list[Any]:
    """The non-empty ``candidates`` list of a ``result.json`` document, or a :class:`UsageError`."""
    candidates = document.get("candidates") if isinstance(document, Mapping) else None
    if not isinstance(candidates, list) or not candidates:
        raise UsageError("no 'candidates' list")
    return list(candidates)


def read_json(path: str | os.PathLike[str]) -> Any:
    """The JSON document in the file at ``path``, or a :class:`UsageError` saying why not (naming no file)."""
    try:
        return json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(exc.strerror or exc.__class__.__name__) from None
    except ValueError as exc:
        raise UsageError(f"not JSON ({exc})") from None
