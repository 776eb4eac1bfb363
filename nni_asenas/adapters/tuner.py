"""ASE-NAS as an NNI tuner, for ``nnictl create --config experiment.yml`` and the NNI web UI.

The tuner is a thin, thread-safe adapter over :class:`~nni_asenas.core.searcher.AseNasSearcher`: NNI parameter ids map
to searcher proposals, final metrics become scores, failed trials become failures, imported or resumed trials become
observations, and a stop rule (queries and/or seconds) ends the search with :class:`nni.NoMoreTrialError`.

After every proposal and result the tuner saves its state to NNI's checkpoint directory, and ``nnictl resume``
continues that exact search, also after a crash (manager and dispatcher killed): trials that were running are re-run
by NNI and their results reach the proposals that made them exactly once, including results that arrive before the
resumed tuner is ready; new parameter ids never repeat earlier ones; proposals NNI never turned into trials are
proposed again (NNI's dispatcher needs three fixes for this, in memory: :mod:`nni_asenas.nni_tools.dispatcher`); a
trial that reports again what the tuner recorded already is not counted twice. NNI 3.0's local training service may list a trial with another trial's parameters when several start at
once (microsoft/nni#5726), so the trial listing NNI imports on resume can pair parameters and metrics wrongly; the
tuner's own records are right (a metric carries the parameter id its trial really ran), so imported entries of
trials the tuner has already recorded are skipped. ``nni-asenas nni-patch apply`` fixes that listing in NNI itself
(:mod:`nni_asenas.nni_tools.nni_patch`); the tuner logs a warning naming the command when it finds NNI unfixed.

Start-up: NNI's manager gives the dispatcher process 10 s to import and construct the tuner and connect. Importing
this module and constructing the tuner need neither torch nor the core searcher; both are imported when the search
space arrives, after the connection and right before the first proposal (``benchmarks/tuner_startup.py``).

Experiment config::

    tuner:
      className: nni_asenas.AseNasTuner        # or, after `nni-asenas register`:  name: ASENAS
      classArgs: {seed: 0, k: 3, n_steps: 4, budget_seconds: 20000}
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import nni
from nni.tuner import Tuner

from nni_asenas.adapters.ledger import LEDGER_STATE_VERSION, Trial, TrialLedger
from nni_asenas.config import check_seed, random_start_warning, resolve_config
from nni_asenas.core.states import saved_version
from nni_asenas.errors import UsageError
from nni_asenas.nni_tools.metrics import data_error, describe_metric, finite_number, metric_score
from nni_asenas.search.initial import names_a_file, read_initial_architectures

if TYPE_CHECKING:  # the searcher needs torch: imported when the search space arrives (see the module docstring)
    from nni_asenas.core.searcher import AseNasSearcher

__all__ = ["AseNasTuner", "parse_search_space", "read_metric", "upgrade_state"]

_logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "asenas_tuner.pt"
_STATE_VERSION = 3

_CHOICE_VALUE_TYPES = (str, int, float, bool)


def parse_search_space(search_space: Any) -> dict[str, list[Any]]:
    """NNI search-space JSON -> ``{label: options}``. Only flat ``choice`` parameters are accepted; anything else
    raises :class:`~nni_asenas.errors.UsageError` naming the parameter."""
    if not isinstance(search_space, Mapping) or not search_space:
        raise UsageError(f"AseNasTuner: the search space must be a non-empty JSON object, got {search_space!r}")
    decisions: dict[str, list[Any]] = {}
    for name, spec in search_space.items():
        if not isinstance(spec, Mapping) or "_type" not in spec or "_value" not in spec:
            raise UsageError(f"AseNasTuner: search space parameter {name!r} needs '_type' and '_value', got {spec!r}")
        if spec["_type"] != "choice":
            raise UsageError(
                f"AseNasTuner: search space parameter {name!r} has type {spec['_type']!r}; only 'choice' is supported"
            )
        values = spec["_value"]
        if not isinstance(values, list) or not values:
            raise UsageError(f"AseNasTuner: search space parameter {name!r} needs a non-empty list of options")
        for value in values:
            if isinstance(value, Mapping):
                raise UsageError(
                    f"AseNasTuner: search space parameter {name!r} is a nested choice; only flat choices are supported"
                )
            if not isinstance(value, _CHOICE_VALUE_TYPES):
                raise UsageError(
                    f"AseNasTuner: search space parameter {name!r} has option {value!r}; options must be strings or numbers"
                )
        if len({json.dumps(v) for v in values}) != len(values):
            raise UsageError(f"AseNasTuner: search space parameter {name!r} lists an option twice")
        decisions[str(name)] = list(values)
    return decisions


def _decode(value: Any) -> Any:
    """A metric NNI passed on as JSON text, decoded (text that is not JSON stays as it is)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def read_metric(value: Any) -> tuple[float | None, float | None]:
    """``(score, simulated seconds)`` from a reported final metric: a number, or a dict with a numeric ``default``
    (and optionally ``simulated_seconds``). A metric of another shape gives score None (a failed trial)."""
    value = _decode(value)
    if isinstance(value, str):
        return None, None
    seconds = finite_number(value.get("simulated_seconds")) if isinstance(value, Mapping) else None
    if seconds is not None and seconds < 0:
        seconds = None
    return metric_score(value), seconds


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class AseNasTuner(Tuner):
    """ASE-NAS over a search space of ``choice`` parameters.

    Parameters (the experiment's ``classArgs``)
    ----------
    seed
        Seeds the whole search (0 .. 2**32 - 1).
    preset
        A named configuration of the method (``default`` or ``paper``, see :class:`~nni_asenas.config.AseNasConfig`).
    k, n_steps, learning_rate, ... (every field of :class:`~nni_asenas.config.AseNasConfig`)
        The method's settings, overriding the preset's: candidate subspaces (K), edits per proposal (M), ....
        ``steps`` is the deprecated name of ``n_steps``.
    initial_architectures
        ASE-NAS+: start the candidate set from these. A list of parameter dicts (or NAS-Bench-201 arch strings), or
        the absolute path of an earlier ``result.json`` whose ``candidates`` are NAS-Bench-201 arch strings (NNI
        runs the tuner in the experiment's log directory, so relative paths rarely mean what was meant).
    max_queries, budget_seconds
        Stop rule; either or both. Every evaluated, failed or imported architecture is a query. Seconds are the final
        metric's ``simulated_seconds`` when it reports one, else the wall time from proposal to result.
    constraint, constraint_kwargs
        ``"module.path:function"`` called as ``function(params, **constraint_kwargs) -> bool``; False rejects an
        architecture before it is run.
    canonical
        ``"module.path:function"``, ``function(params) -> params``: the one form of parameters that build the same
        network (``nni_asenas.imagenet.space:canonical_arch`` for the MobileNet-like space), so that no network is
        run twice under two names.
    optimize_mode
        ``maximize`` (default) or ``minimize`` the ``default`` metric.

    NNI delivers final metrics and trial ends on different dispatcher threads, so a trial that ended successfully
    waits up to :attr:`result_grace_seconds` for its final result before it is counted as failed.
    """

    result_grace_seconds: float = 30.0

    def __init__(
        self,
        *,
        seed: int = 0,
        preset: str | None = None,
        initial_architectures: str | Sequence[Mapping[str, Any] | str] | None = None,
        max_queries: int | None = None,
        budget_seconds: float | None = None,
        constraint: str | None = None,
        constraint_kwargs: Mapping[str, Any] | None = None,
        canonical: str | None = None,
        optimize_mode: str = "maximize",
        **settings: Any,
    ) -> None:
        super().__init__()
        if "steps" in settings:
            if "n_steps" in settings:
                raise UsageError("AseNasTuner: give classArg 'n_steps' only ('steps' is its deprecated name)")
            warnings.warn("AseNasTuner classArg 'steps' is deprecated: call it 'n_steps'", DeprecationWarning, stacklevel=2)
            _logger.warning("classArg 'steps' is deprecated: call it 'n_steps'")
            settings["n_steps"] = settings.pop("steps")
        try:
            self.seed = check_seed(seed, "AseNasTuner: classArg 'seed'")
            self.config = resolve_config(preset, **settings)
        except UsageError as exc:
            message = str(exc)
            raise UsageError(message if message.startswith("AseNasTuner") else f"AseNasTuner: classArg {message}") from None
        if max_queries is not None and not (isinstance(max_queries, int) and not isinstance(max_queries, bool) and max_queries >= 1):
            raise UsageError(f"AseNasTuner: classArg 'max_queries' must be an integer >= 1, got {max_queries!r}")
        if budget_seconds is not None and not (_is_number(budget_seconds) and budget_seconds > 0):
            raise UsageError(f"AseNasTuner: classArg 'budget_seconds' must be a number > 0, got {budget_seconds!r}")
        if optimize_mode not in ("maximize", "minimize"):
            raise UsageError(f"AseNasTuner: classArg 'optimize_mode' must be 'maximize' or 'minimize', got {optimize_mode!r}")
        self.max_queries = max_queries
        start_warning = random_start_warning(self.config, max_queries)
        if start_warning is not None:
            _logger.warning("classArgs: %s", start_warning)
        self.budget_seconds = None if budget_seconds is None else float(budget_seconds)
        self.optimize_mode = optimize_mode
        self._initial = _read_initial_architectures(initial_architectures)
        self._constraint = _load_constraint(constraint, constraint_kwargs)
        self._canonical = None if canonical is None else _import_function(canonical, "canonical")

        self._lock = threading.RLock()
        self._decisions: dict[str, list[Any]] | None = None
        self._searcher: AseNasSearcher | None = None
        self._ledger: TrialLedger[int] = TrialLedger()  # trials keyed by parameter id, the searcher that proposed them as token
        self._trial_jobs: set[str] = set()  # NNI trial job ids whose result is recorded
        self._waiting_imports: list[Mapping[str, Any]] = []  # imported before the search space arrived
        self._waiting_results: list[tuple[int, Mapping[str, Any], Any, dict[str, Any]]] = []  # likewise, results
        self._awaited_parameters: dict[int, int] = {}  # resumed proposal id -> the parameter id NNI ran it under
        self._last_parameter_id: int | None = None  # the largest parameter id NNI ever asked for or reported
        self._restored: Mapping[str, Any] | None = None  # a loaded checkpoint, applied once the search space is known
        self._n_queries = 0  # results recorded: successes, failures, imports
        self._seconds = 0.0
        self._stopped = False
        _warn_about_nni_listing()

    # ------------------------------------------------------------------ NNI tuner interface

    def update_search_space(self, search_space: Mapping[str, Any]) -> None:
        decisions = parse_search_space(search_space)
        with self._lock:
            if decisions == self._decisions:
                return
            previous = self._searcher
            self._searcher = self._new_searcher(decisions)
            self._decisions = decisions
            self._ledger.forget_awaited()
            if previous is not None:  # a changed space: carry over what still fits
                for obs in previous.history:
                    self._observe(obs.arch, obs.score, count=False)
                _logger.info("search space changed: %d earlier results carried over", len(self._searcher.history))
            elif self._restored is not None:
                state, self._restored = self._restored, None
                self._apply_state(state)
            waiting, self._waiting_imports = self._waiting_imports, []
            if waiting:
                self._import(waiting)
            results, self._waiting_results = self._waiting_results, []
            for parameter_id, parameters, value, kwargs in results:
                self.receive_trial_result(parameter_id, parameters, value, **kwargs)

    def generate_parameters(self, parameter_id: int, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            searcher = self._require_searcher()
            self._saw_parameter_id(parameter_id)
            self._fail_overdue()
            reason = self._stop_reason()
            retry = self._ledger.take_resubmission() if reason is None else None
            if retry is not None:  # not evaluated because of its data: the same proposal again
                proposal_id, arch = retry
                self._ledger.submit(parameter_id, proposal_id, arch, token=searcher)
                _logger.info("parameter %d = proposal %d again (its last trial stopped on its data)", parameter_id,
                             proposal_id)
                self.save_checkpoint()
                return dict(arch)
            if reason is None:
                proposal = searcher.ask()
                if proposal is None:
                    reason = "every valid architecture of the search space has been proposed"
            if reason is not None:
                if not self._stopped:
                    _logger.info("no more trials: %s", reason)
                    self._stopped = True
                raise nni.NoMoreTrialError(reason)
            self._ledger.submit(parameter_id, proposal.id, proposal.arch, token=searcher)
            _logger.info("parameter %d = proposal %d (%s, parent %s): %s", parameter_id, proposal.id, proposal.kind,
                         proposal.parent, proposal.arch)
            self.save_checkpoint()
            return dict(proposal.arch)

    def receive_trial_result(self, parameter_id: int, parameters: Mapping[str, Any], value: Any, **kwargs: Any) -> None:
        with self._lock:
            if self._searcher is None:  # a re-run trial of a resumed experiment, done before the space arrived
                self._waiting_results.append((parameter_id, dict(parameters), value, dict(kwargs)))
                return
            value = _decode(value)
            problem = data_error(value)
            if problem is not None:
                self._data_fault(parameter_id, problem)
                return
            score, seconds = read_metric(value)
            if score is None:
                _logger.warning("parameter %d reported %s: expected a number or a dict with a numeric 'default'; "
                                "counted as a failed trial", parameter_id, describe_metric(value))
            if kwargs.get("trial_job_id"):
                self._trial_jobs.add(str(kwargs["trial_job_id"]))
            self._saw_parameter_id(parameter_id)
            trial = self._ledger.record_result(parameter_id)
            if trial is None:
                if not self._ledger.awaits(parameters):  # else: a trial NNI re-ran after `nnictl resume`
                    _logger.warning("result for unknown parameter %d recorded as an observation", parameter_id)
                self._record(parameters, self._signed(score), seconds)
            else:
                self._finish(parameter_id, trial, self._signed(score), seconds)
            self.save_checkpoint()

    def _data_fault(self, parameter_id: int, message: str) -> None:
        """The trial stopped on its data: its proposal is not marked failed but proposed again (first), and after
        :data:`~nni_asenas.adapters.ledger.MAX_DATA_ERRORS_IN_A_ROW` such trials in a row the tuner proposes nothing
        more."""
        trial = self._ledger.trial(parameter_id)
        current = trial is not None and trial.token is self._searcher  # proposed under an earlier space: not again
        trial = self._ledger.record_data_error(parameter_id, message, resubmit=current)
        if trial is not None and current:
            _logger.error("parameter %d (proposal %d) stopped on its data, not its architecture: %s. The architecture "
                          "is not marked failed and is proposed again", parameter_id, trial.proposal_id, message)
        else:
            _logger.error("parameter %d stopped on its data: %s", parameter_id, message)
        self.save_checkpoint()

    def trial_end(self, parameter_id: int, success: bool, **kwargs: Any) -> None:
        with self._lock:
            self._ledger.run_ended(parameter_id)  # a success waits result_grace_seconds for its final result
            if success or self._ledger.trial(parameter_id) is None:  # or its final result arrived already
                return
            trial = self._ledger.record_result(parameter_id)
            assert trial is not None
            _logger.info("parameter %d failed", parameter_id)
            self._finish(parameter_id, trial, None, None)
            self.save_checkpoint()

    def resumed_trials(self, parameter_ids: Sequence[int]) -> None:
        """The parameter ids of the trials NNI re-runs after ``nnictl resume`` (told by the dispatcher fix of
        :mod:`nni_asenas.nni_tools.dispatcher`, after NNI imported the trials that finished). A proposal still awaited
        under another id never became a trial NNI runs (the crash came between proposing and starting it): it is
        proposed again, first."""
        with self._lock:
            rerun = {int(pid) for pid in parameter_ids}
            never = [prop for prop, pid in self._awaited_parameters.items() if pid not in rerun]
            for proposal_id in self._ledger.resubmit_awaited(never):
                _logger.info("proposal %d (parameter %d) was never started before the experiment stopped: proposed "
                             "again", proposal_id, self._awaited_parameters.pop(proposal_id))
            if never:
                self.save_checkpoint()

    def import_data(self, data: Sequence[Mapping[str, Any]]) -> None:
        """Earlier trials (``[{"parameter": {...}, "value": metric}, ...]``), e.g. of the experiment being resumed:
        they are never proposed again and may enter the candidate set."""
        with self._lock:
            if self._searcher is None:
                self._waiting_imports.extend(data)
            else:
                self._import(data)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """The search so far (torch.save-able), including the proposals still running."""
        with self._lock:
            searcher = self._require_searcher()
            return {
                "version": _STATE_VERSION,
                "decisions": self._decisions,
                "searcher": searcher.state_dict(),
                "ledger": self._ledger.state_dict(keep=lambda trial: trial.token is searcher),
                "parameter_ids": sorted(
                    [[trial.proposal_id, key] for key, trial in self._ledger.open_items() if trial.token is searcher]
                    + [[proposal_id, key] for proposal_id, key in self._awaited_parameters.items()]),
                "last_parameter_id": self._last_parameter_id,
                "n_queries": self._n_queries,
                "seconds": self._seconds,
                "trial_jobs": sorted(self._trial_jobs),
            }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`. Proposals that were running wait for their results, which NNI delivers through
        :meth:`import_data` when it re-runs them. Before the search space is set, the state is applied when it arrives."""
        with self._lock:
            state = upgrade_state(state)
            if self._searcher is None:
                self._restored = state
            else:
                self._apply_state(state)

    def save_checkpoint(self) -> None:
        """Write :meth:`state_dict` to NNI's checkpoint directory (``$NNI_CHECKPOINT_DIRECTORY``), if there is one."""
        directory = self.get_checkpoint_path()
        if directory is None or self._searcher is None:
            return
        import torch

        path = Path(directory, CHECKPOINT_FILE)
        tmp = path.with_name(path.name + ".tmp")
        with self._lock:
            torch.save(self.state_dict(), tmp)
            os.replace(tmp, path)

    def load_checkpoint(self) -> None:
        """Called by NNI when an experiment is resumed: continue the saved search (if a checkpoint exists)."""
        directory = self.get_checkpoint_path()
        path = None if directory is None else Path(directory, CHECKPOINT_FILE)
        if path is None or not path.is_file():
            _logger.info("no tuner checkpoint to resume from; earlier trials will be imported")
            return
        import torch

        from nni_asenas.nni_tools.dispatcher import continue_parameter_ids, expect_results_of

        state = upgrade_state(torch.load(path, weights_only=False))
        self.load_state_dict(state)
        try:
            archs = {int(pid): arch for pid, arch in state["ledger"]["unanswered"]}
            expect_results_of({int(key): archs[int(pid)] for pid, key in state["parameter_ids"] if int(pid) in archs})
            last = state["last_parameter_id"]
            continue_parameter_ids(None if last is None else int(last))
        except (KeyError, TypeError, ValueError):
            pass  # a damaged state is reported when the search space arrives and the state is applied
        _logger.info("resuming the search saved in %s", path)

    def _apply_state(self, state: Mapping[str, Any]) -> None:
        if state["decisions"] != self._decisions:
            _logger.warning("the saved tuner state belongs to another search space: ignored")
            return
        ledger: TrialLedger[int] = TrialLedger()
        try:  # read everything before changing anything: a damaged state leaves the tuner as it was
            n_queries, seconds = int(state["n_queries"]), float(state["seconds"])
            trial_jobs = set(state["trial_jobs"])
            ledger.load_state_dict(state["ledger"], resubmit_unanswered=False)  # NNI re-runs them: await results
            awaited = set(ledger.awaited)
            parameters = {int(pid): int(key) for pid, key in state["parameter_ids"] if int(pid) in awaited}
            last_id = None if state["last_parameter_id"] is None else int(state["last_parameter_id"])
            searcher_state = state["searcher"]
        except KeyError as exc:
            raise ValueError(f"the saved AseNasTuner state has no {exc.args[0]!r} entry") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the saved AseNasTuner state is damaged ({exc})") from None
        self._require_searcher().load_state_dict(searcher_state)  # checks first, changes nothing when it raises
        self._n_queries, self._seconds = n_queries, seconds
        self._trial_jobs, self._ledger, self._awaited_parameters = trial_jobs, ledger, parameters
        if last_id is not None:
            self._saw_parameter_id(last_id)
        if ledger.awaited:
            _logger.info("proposals %s were running when the experiment stopped; waiting for their results",
                         ledger.awaited)

    # ------------------------------------------------------------------ read-only views

    @property
    def searcher(self) -> AseNasSearcher | None:
        """The core searcher (None until the search space is known)."""
        return self._searcher

    @property
    def n_queries(self) -> int:
        """Results recorded so far (successes, failures and imports)."""
        return self._n_queries

    @property
    def spent_seconds(self) -> float:
        return self._seconds

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(seed={self.seed}, {', '.join(f'{k}={v}' for k, v in self.config.to_dict().items())}, "
            f"max_queries={self.max_queries}, "
            f"budget_seconds={self.budget_seconds}, initial_architectures={len(self._initial)}, "
            f"constraint={self._constraint is not None}, optimize_mode={self.optimize_mode!r})"
        )

    # ------------------------------------------------------------------ internals

    def _new_searcher(self, decisions: dict[str, list[Any]]) -> AseNasSearcher:
        from nni_asenas.core.searcher import AseNasSearcher  # torch, first needed here

        initial = [_initial_params(arch, decisions) for arch in self._initial]
        try:
            return AseNasSearcher(decisions, self.config, initial_architectures=initial,
                                  constraint=self._constraint, canonical=self._canonical, seed=self.seed)
        except ValueError as exc:
            raise UsageError(f"AseNasTuner: {exc}") from None

    def _require_searcher(self) -> AseNasSearcher:
        if self._searcher is None:
            raise RuntimeError("AseNasTuner: parameters requested before the search space was set")
        return self._searcher

    def _saw_parameter_id(self, parameter_id: int) -> None:
        if self._last_parameter_id is None or parameter_id > self._last_parameter_id:
            self._last_parameter_id = int(parameter_id)

    def _fail_overdue(self) -> None:
        for parameter_id, trial in self._ledger.expire(self.result_grace_seconds):
            _logger.warning("parameter %d succeeded but reported no final result: counted as failed", parameter_id)
            self._finish(parameter_id, trial, None, None)

    def _stop_reason(self) -> str | None:
        if self._ledger.stopped_by_data:
            errors = self._ledger.data_errors
            return (f"{len(errors)} trials in a row stopped on their data, not their architecture (last: "
                    f"{errors[-1]}); fix the data, then `nnictl resume` the experiment")
        running = len(self._ledger.open_trials) + len(self._ledger.awaited)  # awaited: NNI re-runs them
        if self.max_queries is not None and self._n_queries + running >= self.max_queries:
            return f"max_queries={self.max_queries} reached ({self._n_queries} done, {running} running)"
        if self.budget_seconds is not None and self._seconds >= self.budget_seconds:
            return f"budget_seconds={self.budget_seconds:g} spent ({self._seconds:.1f} s)"
        return None

    def _signed(self, score: float | None) -> float | None:
        if score is None or self.optimize_mode == "maximize":
            return score
        return -score

    def _finish(self, parameter_id: int, trial: Trial, score: float | None, seconds: float | None) -> None:
        if seconds is None:
            seconds = time.monotonic() - trial.started
        if trial.token is self._searcher:
            self._searcher.tell(trial.proposal_id, score)
            self._count(seconds)
        else:  # proposed under an earlier search space
            self._record(trial.arch, score, seconds)
        best = self._require_searcher().best
        _logger.info(
            "parameter %d (proposal %d): %s; best %s after %d queries, %.1f s",
            parameter_id, trial.proposal_id, "failed" if score is None else f"score {score:.6g}",
            "none" if best is None else f"{best.score:.6g} (proposal {best.id})", self._n_queries, self._seconds,
        )

    def _import(self, data: Sequence[Mapping[str, Any]]) -> None:
        n_new = 0
        for entry in data:
            params = entry.get("parameter") if isinstance(entry, Mapping) else None
            if not isinstance(params, Mapping):
                _logger.warning("imported entry %r has no 'parameter' dict: skipped", entry)
                continue
            if entry.get("trialJobId") in self._trial_jobs:
                continue  # recorded from the trial itself, which NNI's listing may pair with other parameters
            score, seconds = read_metric(entry.get("value"))
            n_new += self._record(params, self._signed(score), seconds or 0.0)
        _logger.info("imported %d earlier trials (%d new); %d queries, %.1f s so far", len(data), n_new,
                     self._n_queries, self._seconds)
        if n_new:
            self.save_checkpoint()

    def _record(self, params: Mapping[str, Any], score: float | None, seconds: float | None) -> bool:
        """A result from outside this run's proposals: an orphaned proposal's, else an observation. True if new."""
        proposal_id = self._ledger.claim(params)
        if proposal_id is not None:
            self._awaited_parameters.pop(proposal_id, None)
            self._require_searcher().tell(proposal_id, score)
            self._count(seconds or 0.0)
            _logger.info("proposal %d (running when the experiment stopped): %s", proposal_id,
                         "failed" if score is None else f"score {score:.6g}")
            return True
        return self._observe(params, score, count=True, seconds=seconds)

    def _observe(self, params: Mapping[str, Any], score: float | None, *, count: bool, seconds: float | None = 0.0) -> bool:
        """Record an architecture evaluated outside this searcher's proposals; True if it was new to the searcher."""
        searcher = self._require_searcher()
        before = len(searcher.history)
        try:
            searcher.observe(params, score)
        except ValueError as exc:
            _logger.warning("parameters %r do not fit the search space (%s): skipped", dict(params), exc)
            return False
        is_new = len(searcher.history) > before
        if is_new and count:
            self._count(seconds or 0.0)
        return is_new

    def _count(self, seconds: float) -> None:
        self._n_queries += 1
        self._seconds += seconds


def _warn_about_nni_listing() -> None:
    """Log how to fix NNI 3.0's trial listing when the installed NNI has the defect. The operations tool that
    rewrites NNI's file is imported only here: constructing a tuner reads that file, never changes it."""
    from nni_asenas.nni_tools import nni_patch

    listing = nni_patch.listing_warning()
    if listing is not None:
        _logger.warning(listing)


def _read_initial_architectures(value: str | os.PathLike[str] | Sequence[Any] | None) -> list[Any]:
    """classArg ``initial_architectures`` -> parameter dicts and arch strings, read by the shared reader
    (:mod:`nni_asenas.search.initial`: a result.json path gives its final candidates)."""
    if value is None:
        return []
    if not isinstance(value, (str, os.PathLike, Sequence)):
        raise UsageError(f"AseNasTuner: classArg 'initial_architectures' must be a list or a result.json path, got {value!r}")
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value)
    for i, arch in enumerate(items):
        if not isinstance(arch, (Mapping, str, os.PathLike)):
            raise UsageError(f"AseNasTuner: initial_architectures[{i}] must be a parameter dict or an arch string, got {arch!r}")
    try:
        return read_initial_architectures(items)
    except UsageError as exc:
        relative = [str(item) for item in items if names_a_file(item) and not Path(item).expanduser().is_absolute()]
        hint = f" (relative paths start at {Path.cwd()}, so give an absolute one)" if relative else ""
        raise UsageError(f"AseNasTuner: classArg 'initial_architectures': {exc}{hint}") from None


def _initial_params(arch: Mapping[str, Any] | str, decisions: Mapping[str, Sequence[Any]]) -> Mapping[str, Any]:
    """An initial architecture as parameters of the search space; text is a NAS-Bench-201 arch string (the one text
    form of architectures, decoded by :func:`nni_asenas.nasbench.nb201.params_of_arch_string`)."""
    if isinstance(arch, Mapping):
        return arch
    from nni_asenas.nasbench.nb201 import params_of_arch_string

    try:
        return params_of_arch_string(arch, decisions)
    except ValueError as exc:
        raise UsageError(f"AseNasTuner: initial architecture {arch!r}: {exc}") from None


def _import_function(spec: Any, what: str) -> Callable[..., Any]:
    """The function a ``"module.path:function"`` classArg names; a one-line UsageError naming ``what`` otherwise."""
    module_name, sep, attr = str(spec).partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(f"AseNasTuner: classArg '{what}' must read 'module.path:function', got {spec!r}")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"AseNasTuner: cannot import {what} {spec!r}: {exc}") from None
    if not callable(function):
        raise UsageError(f"AseNasTuner: {what} {spec!r} is not callable")
    return function


def _load_constraint(spec: str | None, kwargs: Mapping[str, Any] | None) -> Callable[[dict[str, Any]], bool] | None:
    """``"module.path:function"`` -> ``params -> bool`` calling ``function(params, **kwargs)``."""
    if kwargs is not None and not isinstance(kwargs, Mapping):
        raise UsageError(f"AseNasTuner: classArg 'constraint_kwargs' must be a dict, got {kwargs!r}")
    if spec is None:
        if kwargs:
            raise UsageError("AseNasTuner: classArg 'constraint_kwargs' is given without 'constraint'")
        return None
    function = _import_function(spec, "constraint")
    bound = dict(kwargs or {})

    def constraint(params: dict[str, Any]) -> bool:
        return bool(function(params, **bound))

    return constraint


def upgrade_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A saved :class:`AseNasTuner` state as version 3. Version 1's ``running`` proposals (awaited on resume) and
    ``retry`` queue (absent in its first checkpoints) become version 2's trial ledger; version 3 adds the parameter
    id of each unanswered proposal (``parameter_ids``, empty for older states: their proposals are awaited as before)
    and the last parameter id NNI asked for (``last_parameter_id``, None for older states).
    The searcher's state inside is upgraded by the searcher itself. :class:`ValueError` for an unknown version or a
    damaged older state."""
    version = saved_version(state, "AseNasTuner", (1, 2, _STATE_VERSION))
    if version == _STATE_VERSION:
        return dict(state)
    upgraded = {key: value for key, value in state.items() if key not in ("running", "retry")}
    if version == 1:
        try:
            running = [[int(pid), dict(arch)] for pid, arch in state["running"]]
            retry = [[int(pid), dict(arch)] for pid, arch in state.get("retry", [])]
        except KeyError as exc:
            raise ValueError(f"the saved AseNasTuner state has no {exc.args[0]!r} entry") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the saved AseNasTuner state is damaged ({exc})") from None
        upgraded["ledger"] = {"version": LEDGER_STATE_VERSION, "unanswered": running, "resubmit": retry}
    upgraded.update(version=_STATE_VERSION, parameter_ids=[], last_parameter_id=None)
    return upgraded
