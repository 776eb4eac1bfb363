"""ASE-NAS as an NNI multi-trial strategy: :class:`AseNas`.

Use it wherever NNI takes a strategy, exactly like ``nni.nas.strategy.RegularizedEvolution``::

    from nni.nas.experiment import NasExperiment
    from nni_asenas import AseNas

    NasExperiment(model_space, evaluator, AseNas(seed=0)).run(port=8080)

or drive it with an engine: ``AseNas(seed=0)(model_space, SequentialExecutionEngine(max_model_count=100))``.
The search itself is the engine-free :class:`~nni_asenas.core.searcher.AseNasSearcher`; this class maps the NNI model
space onto its decisions (see :mod:`nni_asenas.nni_tools.space_codec`), submits models and feeds their metrics back.
"""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Any, Callable, Iterator, Mapping, Sequence

from nni.mutable import SampleValidationError
from nni.nas.execution import ExecutionEngine, Middleware, TrainingServiceExecutionEngine
from nni.nas.execution.event import FinalMetricEvent, ModelEventType, TrainingEndEvent
from nni.nas.space import ExecutableModelSpace, ModelStatus
from nni.nas.strategy.base import Strategy, StrategyStatus

from nni_asenas.adapters.ledger import LEDGER_STATE_VERSION, TrialLedger
from nni_asenas.config import AseNasConfig, check_seed, resolve_config
from nni_asenas.core.searcher import AseNasSearcher, Proposal
from nni_asenas.core.states import saved_version
from nni_asenas.errors import UsageError
from nni_asenas.nni_tools.compat import install_checkpoint_serializer
from nni_asenas.nni_tools.metrics import data_error, describe_metric, metric_score
from nni_asenas.nni_tools.space_codec import SpaceCodec

__all__ = ["AseNas", "upgrade_state"]

_logger = logging.getLogger(__name__)

_STATE_VERSION = 2
RESUBMITTED = "resubmitted"  # kind of a proposal that was in flight when the experiment stopped


class AseNas(Strategy):
    """ASE-NAS (Automatic Subspace Evoking NAS): search inside the neighbourhoods of K candidate architectures.

    A policy network picks one of ``k`` candidates and ``n_steps`` single-choice edits to apply to it; a better
    result replaces that candidate; REINFORCE trains the policy on the improvement. No architecture is submitted
    twice, and proposals that ``space.freeze`` rejects (a ``ConstraintViolation`` or other
    ``SampleValidationError``) are redrawn, never submitted.

    Searchable mutables: ``Categorical`` and ``CategoricalMultiple``; annotations and constraints are checked by
    ``space.freeze``. A ``Numerical`` (or another mutable) is refused when the strategy is initialised.
    Metrics are higher-is-better (a dict metric is read at ``"default"``). A model's final metric is its result; a
    model that ends without one (its trial failed) or reports a non-finite one gets no reward and is never proposed
    again. With ``SequentialExecutionEngine``, pass ``continue_on_failure=True`` (as for every NNI strategy) so that
    a trial that raises does not stop the engine itself. A final metric ``{"data_error": "..."}`` (no ``default``:
    the trial's data, not the architecture, was at fault) leaves the model unjudged: it is submitted again, and after
    :data:`~nni_asenas.adapters.ledger.MAX_DATA_ERRORS_IN_A_ROW` such models in a row the strategy submits nothing
    more.

    Parameters
    ----------
    config
        The method's settings (:class:`~nni_asenas.config.AseNasConfig` or a preset name); keyword ``settings``
        (``k``, ``n_steps``, ``learning_rate``, ...: the fields of ``AseNasConfig``) override single fields.
    initial_architectures
        NNI samples (``{label: value}``, e.g. from ``export_top_models(formatter='dict')`` of an earlier search)
        to start the candidate set from (ASE-NAS+); random architectures fill up the start to ``n_initial`` (at
        least ``k``) results.
    canonical
        ``sample -> sample``: the one form of the samples that build the same network, so that none is submitted
        twice under two names (for :class:`~nni_asenas.imagenet.nni_space.MobileNetLikeSpace`,
        :func:`~nni_asenas.imagenet.space.canonical_arch`: blocks beyond a stage's depth are not built). It sees the
        strategy's decisions, which for a space of plain ``Categorical`` choices are the sample's labels.
    seed
        Seeds every random choice of the search (0 .. 2**32 - 1).
    """

    def __init__(
        self,
        config: AseNasConfig | str | None = None,
        *,
        initial_architectures: Sequence[Mapping[str, Any]] = (),
        canonical: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
        seed: int = 0,
        **settings: Any,
    ) -> None:
        super().__init__()
        self.canonical = canonical
        self.config = resolve_config(config, **settings)
        self.seed = check_seed(seed, "AseNas seed")
        for i, sample in enumerate(initial_architectures):
            if not isinstance(sample, Mapping):
                raise UsageError(f"initial_architectures[{i}] is a {type(sample).__name__}, not a sample dict")
        self.initial_architectures = [dict(sample) for sample in initial_architectures]

        self._codec: SpaceCodec | None = None
        self._searcher: AseNasSearcher | None = None
        self._lock = threading.RLock()  # engine callbacks may come from another thread
        self._ledger: TrialLedger[int] = TrialLedger()  # trials keyed by id(model), the model as token
        self._models: weakref.WeakValueDictionary[int, ExecutableModelSpace] = weakref.WeakValueDictionary()
        self._frozen: tuple[dict[str, Any], ExecutableModelSpace] | None = None  # last model the constraint froze
        self._refused_resume: str | None = None

    def extra_repr(self) -> str:
        settings = ", ".join(f"{name}={value}" for name, value in self.config.to_dict().items())
        return f"{settings}, initial_architectures={len(self.initial_architectures)}, seed={self.seed}"

    @property
    def searcher(self) -> AseNasSearcher:
        """The engine-free searcher (available once the strategy is initialised)."""
        if self._searcher is None:
            raise RuntimeError("AseNas is not initialised with a model space yet.")
        return self._searcher

    # ------------------------------------------------------------------ Strategy hooks

    def _initialize(self, model_space: ExecutableModelSpace, engine: ExecutionEngine) -> ExecutableModelSpace:
        install_checkpoint_serializer()
        self._codec = SpaceCodec(model_space.simplify())
        initial = []
        for i, sample in enumerate(self.initial_architectures):
            try:
                initial.append(self._codec.to_arch(sample))
            except UsageError as exc:
                raise UsageError(f"initial_architectures[{i}]: {exc}") from None
        self._searcher = AseNasSearcher(
            self._codec.decisions, self.config, initial_architectures=initial, constraint=self._is_valid,
            canonical=self.canonical, seed=self.seed,
        )
        engine.register_model_event_callback(ModelEventType.FinalMetric, self._on_final_metric)
        engine.register_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)
        _logger.info("AseNas initialised: %d decisions from %d labels. %r", len(self._codec.decisions),
                     len(self._codec.labels), self)
        return model_space

    def _run(self) -> None:
        while self.wait_for_resource():
            submission = self._next_submission()
            if submission is None:
                if not self._ledger.stopped_by_data:
                    _logger.info("Every valid architecture has been proposed. Stop submitting.")
                break
            self.engine.submit_models(submission)
        _logger.debug("Waiting for the models in flight...")
        self.engine.wait_models()
        with self._lock:
            self._fail_models_ended_without_metric()
        best = self.searcher.best
        if best is not None:
            _logger.info("Best: proposal %d, metric %s: %s", best.id, best.score, self._codec_or_fail().to_sample(best.arch))

    def _cleanup(self) -> None:
        self.engine.unregister_model_event_callback(ModelEventType.FinalMetric, self._on_final_metric)
        self.engine.unregister_model_event_callback(ModelEventType.TrainingEnd, self._on_training_end)

    # ------------------------------------------------------------------ proposals and results

    def _codec_or_fail(self) -> SpaceCodec:
        if self._codec is None:
            raise RuntimeError("AseNas is not initialised with a model space yet.")
        return self._codec

    def _is_valid(self, arch: dict[str, Any]) -> bool:
        """The searcher's constraint: the sample must pass ``space.freeze`` (constraints included)."""
        try:
            model = self.model_space.freeze(self._codec_or_fail().to_sample(arch))
        except SampleValidationError as exc:
            _logger.debug("Rejected before submission (%s): %s", type(exc).__name__, exc)
            return False
        self._frozen = (arch, model)
        return True

    def _freeze(self, arch: dict[str, Any]) -> ExecutableModelSpace:
        frozen, self._frozen = self._frozen, None
        if frozen is not None and frozen[0] == arch:
            return frozen[1]
        return self.model_space.freeze(self._codec_or_fail().to_sample(arch))

    def _next_submission(self) -> ExecutableModelSpace | None:
        with self._lock:
            if self._ledger.stopped_by_data:
                errors = self._ledger.data_errors
                _logger.error("%d models in a row stopped on their data, not their architecture (last: %s). Stop "
                              "submitting: fix the data, then resume.", len(errors), errors[-1])
                return None
            resubmission = self._ledger.take_resubmission()
            if resubmission is not None:
                proposal: Proposal | None = Proposal(*resubmission, RESUBMITTED)
            else:
                proposal = self.searcher.ask()
            if proposal is None:
                return None
            model = self._freeze(proposal.arch)
            self._ledger.submit(id(model), proposal.id, proposal.arch, token=model)
            self._models[proposal.id] = model
        origin = f" from candidate {proposal.parent}" if proposal.parent is not None else ""
        _logger.info("[Proposal %d] %s%s: %s", proposal.id, proposal.kind, origin, model.sample)
        return model

    # A model's final metric is its result, and the trial's end only tells about models that never reported one.
    # NNI 3.0's training service can pair a trial's end with another trial's parameter when several run at once
    # (microsoft/nni#5693, #5726), while metrics carry the parameter the trial really ran. So a model that ended
    # without a metric counts as failed only once no model is in flight: its metric could still be on its way.

    def _on_final_metric(self, event: FinalMetricEvent) -> None:
        with self._lock:
            trial = self._ledger.trial(id(event.model), event.model)
            if trial is None:
                return  # not ours, or a second final metric
            pid = trial.proposal_id
            problem = data_error(event.metric)
            if problem is not None:  # not evaluated: submitted again, not marked failed
                self._ledger.record_data_error(id(event.model), problem, token=event.model)
                _logger.error("[Proposal %d] stopped on its data, not its architecture: %s. Not marked failed; "
                              "submitted again.", pid, problem)
                return
            self._ledger.record_result(id(event.model), event.model)
            score = metric_score(event.metric)
            self.searcher.tell(pid, score)
            best = self.searcher.best
        if score is None:
            _logger.warning("[Proposal %d] metric %s is not a finite number: no reward, never proposed again.",
                            pid, describe_metric(event.metric))
        else:
            _logger.info("[Metric] proposal %d: %s (best so far: %s, proposal %s)", pid, event.metric,
                         best.score if best else None, best.id if best else None)

    def _on_training_end(self, event: TrainingEndEvent) -> None:
        with self._lock:
            if not self._ledger.run_ended(id(event.model), event.model):
                return  # a model AseNas did not submit
            if event.status == ModelStatus.Interrupted:
                # Not evaluated: it stays in the state and is submitted again on resume.
                trial = self._ledger.park(id(event.model), event.model)
                if trial is not None:
                    _logger.warning("[Proposal %d] interrupted; it is submitted again if the experiment resumes.",
                                    trial.proposal_id)
            if not self._ledger.running:
                self._fail_models_ended_without_metric()

    def _fail_models_ended_without_metric(self) -> None:
        for _, trial in self._ledger.expire():
            self.searcher.tell(trial.proposal_id, None)
            _logger.warning("[Proposal %d] ended without a final metric: failed, never proposed again.",
                            trial.proposal_id)

    # ------------------------------------------------------------------ results

    def list_models(self, sort: bool = True, limit: int | None = None) -> Iterator[ExecutableModelSpace]:
        """The models this search evaluated, also those of the runs before a resume.

        ``sort=True``: successful models, best metric first (what ``export_top_models`` returns);
        ``sort=False``: every finished model in completion order, then the models in flight.
        """
        if self._status in (StrategyStatus.INITIALIZED, StrategyStatus.EMPTY):
            raise RuntimeError("Strategy has not been run.")
        with self._lock:
            history = self.searcher.history
            running = [trial.token for trial in self._ledger.open_trials]
        if sort:
            scored = sorted((o for o in history if o.score is not None), key=lambda o: o.score or 0.0, reverse=True)
            if limit is not None and limit > len(scored):
                _logger.warning("Only %d models are trained, but %d top models are requested.", len(scored), limit)
            for observation in scored[:limit]:
                yield self._finished_model(observation.id, observation.arch, observation.score)
            return
        models = [self._finished_model(o.id, o.arch, o.score) for o in history] + running
        yield from models[:limit]

    def _finished_model(self, pid: int, arch: dict[str, Any], score: float | None) -> ExecutableModelSpace:
        model = self._models.get(pid)
        if model is None or model.status not in (ModelStatus.Trained, ModelStatus.Failed):
            # Evaluated before a resume, or garbage-collected: rebuild it.
            model = self.model_space.freeze(self._codec_or_fail().to_sample(arch))
            if score is not None:
                model.metrics.final = score
            model.status = ModelStatus.Trained if score is not None else ModelStatus.Failed
        return model

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """The searcher's state and the trial ledger's (the proposals without a result, which a resume submits
        again first); version 2 (:func:`upgrade_state` reads version 1)."""
        if self._refused_resume is not None:
            # Refusing here keeps NasExperiment.save_checkpoint from overwriting the checkpoint we did not load.
            raise RuntimeError(self._refused_resume)
        with self._lock:
            ledger = self._ledger.state_dict()
            return {
                "version": _STATE_VERSION,
                "searcher": self.searcher.state_dict(),
                "ledger": ledger,
                "num_running_models": len(ledger["unanswered"]) + len(ledger["resubmit"]),
            }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a search saved by :meth:`state_dict` (call after ``initialize``, before ``run``).

        Models that were in flight are submitted again first. With NNI's training-service engine, which NNI 3.0
        cannot resume, this raises instead (and :meth:`state_dict` then refuses, so the checkpoint stays intact).
        """
        if _is_training_service(self.engine):
            self._refused_resume = (
                "AseNas cannot resume on NNI's training-service engine: NNI 3.0 cannot resume such an experiment "
                "(its manager's ImportData is not handled). The checkpoint is left untouched. Start a new "
                "experiment, e.g. AseNas(initial_architectures=<best samples of the old one>), or run with "
                "the sequential engine, which resumes."
            )
            raise RuntimeError(self._refused_resume)
        state = upgrade_state(state_dict)
        ledger: TrialLedger[int] = TrialLedger()  # read all before changing anything: a damaged state changes nothing
        try:
            ledger.load_state_dict(state["ledger"], resubmit_unanswered=True)
            searcher_state = state["searcher"]
        except KeyError as exc:
            raise ValueError(f"the saved AseNas state has no {exc.args[0]!r} entry") from None
        with self._lock:
            self.searcher.load_state_dict(searcher_state)  # checks first, changes nothing when it raises
            self._ledger = ledger
        waiting = len(state["ledger"]["unanswered"]) + len(state["ledger"]["resubmit"])
        if waiting:
            _logger.info("Loaded state: %d finished, %d in flight (submitted again first).",
                         len(self.searcher.history), waiting)
        else:
            _logger.info("Loaded state: %d finished.", len(self.searcher.history))


def upgrade_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A saved :class:`AseNas` state as version 2: the in-flight proposals of version 1 (``running``, which a
    resume submitted again) become the trial ledger's unanswered proposals. The searcher's state inside is
    upgraded by the searcher itself. :class:`ValueError` for a damaged state or an unknown version."""
    if saved_version(state, "AseNas", (1, _STATE_VERSION)) == _STATE_VERSION:
        return dict(state)
    try:
        running = sorted((int(pid), dict(arch)) for pid, arch in state["running"].items())
        searcher = state["searcher"]
    except KeyError as exc:
        raise ValueError(f"the saved AseNas state has no {exc.args[0]!r} entry") from None
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"the saved AseNas state is damaged ({exc})") from None
    ledger = {"version": LEDGER_STATE_VERSION, "unanswered": [[pid, arch] for pid, arch in running], "resubmit": []}
    return {"version": _STATE_VERSION, "searcher": searcher, "ledger": ledger, "num_running_models": len(running)}


def _is_training_service(engine: ExecutionEngine) -> bool:
    while isinstance(engine, Middleware):
        engine = engine.engine
    return isinstance(engine, TrainingServiceExecutionEngine)
