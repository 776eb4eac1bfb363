"""The trial ledger of the NNI front ends: which proposal each trial evaluates, and what becomes of trials that give
no result. The strategy (:class:`~nni_asenas.adapters.strategy.AseNas`) and the tuner
(:class:`~nni_asenas.adapters.tuner.AseNasTuner`) keep one each; no NNI here.

A trial is keyed by what the front end hears from NNI (a model's ``id()``, a parameter id) and goes through:

- :meth:`TrialLedger.submit`: it evaluates a proposal; it is *open* (no result yet) and *running*;
- :meth:`~TrialLedger.record_result`: its result (a metric, or a failure NNI reported) arrived; it is closed and the
  data-error streak is over;
- :meth:`~TrialLedger.record_data_error`: it stopped on its data, not its architecture; it is closed unjudged, its
  proposal is queued for resubmission (:meth:`~TrialLedger.take_resubmission`), and after
  :data:`MAX_DATA_ERRORS_IN_A_ROW` such trials in a row :attr:`~TrialLedger.stopped_by_data` is true;
- :meth:`~TrialLedger.run_ended`: its run ended; if it is still open its grace period starts, and
  :meth:`~TrialLedger.expire` closes it as failed once the grace is over (a metric may still be on its way: NNI
  delivers metrics and ends on different threads, and NNI 3.0 may pair an end with another trial);
- :meth:`~TrialLedger.park`: it was interrupted, not evaluated; only a resume submits it again.

:meth:`~TrialLedger.state_dict` keeps the proposals without a result, which a resume either submits again (the
strategy) or waits for (the tuner: NNI re-runs them and :meth:`~TrialLedger.claim` pairs their results).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Generic, Hashable, Iterable, Mapping, TypeVar

from nni_asenas.core.states import saved_version

__all__ = ["LEDGER_STATE_VERSION", "MAX_DATA_ERRORS_IN_A_ROW", "Trial", "TrialLedger"]

#: Trials in a row that stop on a data error before a front end submits nothing more: the data needs fixing, and
#: every further trial would stop the same way.
MAX_DATA_ERRORS_IN_A_ROW = 3
LEDGER_STATE_VERSION = 1

Key = TypeVar("Key", bound=Hashable)


@dataclass
class Trial:
    """An open trial: the proposal it evaluates, when it was submitted, when its run ended without a result (None
    while it runs), and the front end's ``token`` for it (the model object, the searcher that proposed it)."""

    proposal_id: int
    arch: dict[str, Any]
    started: float
    token: Any = None
    ended: float | None = None


class TrialLedger(Generic[Key]):
    """Open trials, the running set, resubmissions and the data-error streak of one front end.

    ``clock`` gives the times of :class:`Trial` (default: :func:`time.monotonic`). Not thread-safe: the front ends hold their
    lock around every call.
    """

    def __init__(self, *, max_data_errors_in_a_row: int = MAX_DATA_ERRORS_IN_A_ROW,
                 clock: Callable[[], float] | None = None) -> None:
        if isinstance(max_data_errors_in_a_row, bool) or not isinstance(max_data_errors_in_a_row, int) or \
                max_data_errors_in_a_row < 1:
            raise ValueError(f"max_data_errors_in_a_row must be an integer >= 1, got {max_data_errors_in_a_row!r}")
        self.max_data_errors_in_a_row = max_data_errors_in_a_row
        self._clock = clock if clock is not None else _monotonic
        self._open: dict[Key, Trial] = {}
        self._running: dict[Key, Any] = {}  # key -> token, until the run ends
        self._parked: dict[int, dict[str, Any]] = {}  # interrupted: proposal id -> arch
        self._resubmit: list[tuple[int, dict[str, Any]]] = []
        self._awaited: dict[str, int] = {}  # arch key -> proposal id, unanswered when the state was saved
        self._data_errors: list[str] = []

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(open={len(self._open)}, running={len(self._running)}, "
                f"resubmit={len(self._resubmit)}, awaited={len(self._awaited)}, "
                f"data_errors={len(self._data_errors)}/{self.max_data_errors_in_a_row})")

    # ------------------------------------------------------------------ submissions

    def submit(self, key: Key, proposal_id: int, arch: Mapping[str, Any], token: Any = None) -> Trial:
        trial = Trial(proposal_id, dict(arch), self._clock(), token)
        self._open[key] = trial
        self._running[key] = token
        return trial

    def take_resubmission(self) -> tuple[int, dict[str, Any]] | None:
        """The first queued proposal to submit again (a data error, or unanswered at a resume), or None."""
        return self._resubmit.pop(0) if self._resubmit else None

    def trial(self, key: Key, token: Any = None) -> Trial | None:
        """The open trial of ``key`` (and ``token``, if the front end gives one), or None."""
        trial = self._open.get(key)
        return trial if trial is not None and (token is None or trial.token is token) else None

    @property
    def open_trials(self) -> list[Trial]:
        return list(self._open.values())

    def open_items(self) -> list[tuple[Key, Trial]]:
        """``(key, trial)`` of the open trials, in submission order."""
        return list(self._open.items())

    @property
    def running(self) -> int:
        """Trials whose run has not ended (with or without a result)."""
        return len(self._running)

    # ------------------------------------------------------------------ what becomes of them

    def record_result(self, key: Key, token: Any = None) -> Trial | None:
        """A result arrived for ``key``: the data-error streak is over, and the open trial is closed and returned
        (the caller tells the searcher), or None when ``key`` has none (a result from outside the ledger)."""
        self._data_errors.clear()
        trial = self.trial(key, token)
        if trial is not None:
            del self._open[key]
        return trial

    def record_data_error(self, key: Key, message: str, *, token: Any = None,
                          resubmit: bool = True) -> Trial | None:
        """Close the trial unjudged: its data, not its architecture, was at fault. Its proposal is queued again
        (``resubmit``) and the data-error streak grows, also when the trial is not open (then None is returned)."""
        self._data_errors.append(message)
        trial = self.trial(key, token)
        if trial is None:
            return None
        del self._open[key]
        if resubmit:
            self._resubmit.append((trial.proposal_id, trial.arch))
        return trial

    def run_ended(self, key: Key, token: Any = None) -> bool:
        """The run of ``key`` ended; an open trial's grace period starts now. False if the key is not running
        (not ours, or ended already)."""
        if key not in self._running or (token is not None and self._running[key] is not token):
            return False
        del self._running[key]
        trial = self.trial(key, token)
        if trial is not None and trial.ended is None:
            trial.ended = self._clock()
        return True

    def park(self, key: Key, token: Any = None) -> Trial | None:
        """Close an interrupted trial: not evaluated, it waits in the state for a resume to submit it again."""
        trial = self.trial(key, token)
        if trial is not None:
            del self._open[key]
            self._parked[trial.proposal_id] = trial.arch
        return trial

    def expire(self, grace_seconds: float | None = None) -> list[tuple[Key, Trial]]:
        """Close and return, in proposal order, the open trials whose run ended without a result: all of them
        (``grace_seconds`` None: the caller knows nothing is on its way) or those that ended more than
        ``grace_seconds`` ago. The caller tells the searcher they failed."""
        now = self._clock()
        due = [(key, trial) for key, trial in self._open.items() if trial.ended is not None
               and (grace_seconds is None or now - trial.ended > grace_seconds)]
        for key, _ in due:
            del self._open[key]
        return sorted(due, key=lambda item: item[1].proposal_id)

    # ------------------------------------------------------------------ data errors

    @property
    def data_errors(self) -> tuple[str, ...]:
        """The data errors since the last trial with a result."""
        return tuple(self._data_errors)

    @property
    def stopped_by_data(self) -> bool:
        """Whether :attr:`max_data_errors_in_a_row` trials in a row stopped on their data: submit nothing more."""
        return len(self._data_errors) >= self.max_data_errors_in_a_row

    # ------------------------------------------------------------------ resumes

    def claim(self, arch: Mapping[str, Any]) -> int | None:
        """The proposal id of an unanswered proposal of a resumed state with this architecture (its result came
        back), or None."""
        return self._awaited.pop(_arch_key(arch), None)

    def awaits(self, arch: Mapping[str, Any]) -> bool:
        """Whether an unanswered proposal of a resumed state has this architecture."""
        return _arch_key(arch) in self._awaited

    @property
    def awaited(self) -> list[int]:
        return sorted(self._awaited.values())

    def resubmit_awaited(self, proposal_ids: Iterable[int]) -> list[int]:
        """Stop awaiting these proposals of a resumed state (nothing will run them) and queue them for resubmission
        after the queue, in proposal order; the ids that were awaited, sorted."""
        wanted = set(proposal_ids)
        moved = sorted((pid, key) for key, pid in self._awaited.items() if pid in wanted)
        for pid, key in moved:
            del self._awaited[key]
            self._resubmit.append((pid, json.loads(key)))
        return [pid for pid, _ in moved]

    def forget_awaited(self) -> None:
        """Drop the unanswered proposals of a resumed state (their searcher is gone: the search space changed)."""
        self._awaited.clear()

    def unanswered(self, keep: Callable[[Trial], bool] | None = None) -> list[tuple[int, dict[str, Any]]]:
        """Proposals without a result, in proposal order: open trials (those ``keep`` accepts), interrupted ones and
        those still awaited from a resume; not the resubmission queue."""
        found = [(trial.proposal_id, dict(trial.arch)) for trial in self._open.values() if keep is None or keep(trial)]
        found += [(pid, dict(arch)) for pid, arch in self._parked.items()]
        found += [(pid, json.loads(key)) for key, pid in self._awaited.items()]
        return sorted(found, key=lambda item: item[0])

    def state_dict(self, keep: Callable[[Trial], bool] | None = None) -> dict[str, Any]:
        """The proposals without a result (:meth:`unanswered`, filtered by ``keep``) and the resubmission queue.
        The data-error streak is not kept: a resume is what follows fixing the data."""
        return {
            "version": LEDGER_STATE_VERSION,
            "unanswered": [[pid, arch] for pid, arch in self.unanswered(keep)],
            "resubmit": [[pid, dict(arch)] for pid, arch in self._resubmit],
        }

    def load_state_dict(self, state: Mapping[str, Any], *, resubmit_unanswered: bool) -> None:
        """Continue from :meth:`state_dict`: everything open or running here is forgotten. Unanswered proposals are
        queued for resubmission with the queue, in proposal order (``resubmit_unanswered``), or awaited
        (:meth:`claim`). A damaged state raises :class:`ValueError` and changes nothing."""
        saved_version(state, "trial ledger", (LEDGER_STATE_VERSION,))
        try:
            unanswered = _proposals(state["unanswered"])
            resubmit = _proposals(state["resubmit"])
        except KeyError as exc:
            raise ValueError(f"the saved trial ledger has no {exc.args[0]!r} entry") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the saved trial ledger is damaged ({exc})") from None
        self._open, self._running, self._parked, self._data_errors = {}, {}, {}, []
        if resubmit_unanswered:
            self._resubmit, self._awaited = sorted(unanswered + resubmit, key=lambda item: item[0]), {}
        else:
            self._resubmit, self._awaited = resubmit, {_arch_key(arch): pid for pid, arch in unanswered}


def _monotonic() -> float:
    return time.monotonic()  # looked up at each call, so that a test's clock replaces it


def _proposals(items: Iterable[Any]) -> list[tuple[int, dict[str, Any]]]:
    return [(int(pid), dict(arch)) for pid, arch in items]


def _arch_key(arch: Mapping[str, Any]) -> str:
    return json.dumps(dict(arch), sort_keys=True)
