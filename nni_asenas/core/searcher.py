"""The engine-free ASE-NAS searcher: ask for an architecture, tell its score.

The method is specified in ``docs/method.md``. In short: K candidate architectures are kept; a policy picks
one candidate (its neighbourhood is the subspace searched) and ``n_steps`` single-decision edits to apply to it; a
better result replaces its centre; REINFORCE trains the policy on the improvement over the centre.

Nothing here imports NNI: :class:`nni_asenas.AseNas` (strategy) and :class:`nni_asenas.AseNasTuner` (tuner) wrap it.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from nni_asenas.config import AseNasConfig, check_seed, resolve_config
from nni_asenas.core.encoding import (
    Arch,
    apply_edits,
    arch_to_indices,
    candidate_graph,
    hamming,
    indices_to_arch,
    neighbours,
    one_hot,
    option_index,
    random_architecture,
    validate_decisions,
)
from nni_asenas.core.gp import GaussianProcess, KernelParams, training_subset
from nni_asenas.core.policy import AseNasPolicy, CandidateGraph
from nni_asenas.core.states import saved_version
from nni_asenas.threads import single_threaded

__all__ = ["AseNasSearcher", "Observation", "Proposal", "upgrade_state"]

_logger = logging.getLogger(__name__)

# Kinds of proposals: the start set, random ones (the random start, then fill-ins while the candidate set is not
# full), policy steps, and the unvisited neighbour used when the policy keeps landing on known architectures.
# "observed" marks results recorded through observe() (evaluated elsewhere).
INITIAL, RANDOM, SEARCH, FALLBACK, OBSERVED = "initial", "random", "search", "fallback", "observed"
# A new centre for a candidate whose one-edit neighbourhood is exhausted (its ``parent`` is that candidate).
RESTART = "restart"
_STATE_VERSION = 4
#: A constraint that rejects this many uniform random draws in a row stops the search with an error instead of
#: looping on (the policy's edits and walks near the limit are not counted: long runs of them are normal).
MAX_REJECTIONS_IN_A_ROW = 20_000
#: At most this many draws that land on evaluated architectures are learnt from per proposal (free lessons).
MAX_LESSONS = 4
#: At most this many draws the constraint rejects are repaired per proposal (see ``_repairs``).
MAX_REPAIRED_DRAWS = 4
#: How many architectures of a widened subspace the model rates for a fallback proposal (``fallback_radius``).
FALLBACK_POOL = 1000
#: Per edit of a climb (``climb_radius``), at most this many of the best-rated steps are checked against the constraint.
MAX_CLIMB_CHECKS = 8
#: The model's hyperparameters are refitted when the results have grown by this factor since the last fit.
REFIT_GROWTH = 1.1
#: Canonical forms are remembered for this many architectures (a climb's rings overlap; a spent subspace's pool holds
#: up to ``FALLBACK_POOL``); the memo is emptied when full, so it never holds more (a few MB on 45 decisions).
CANON_MEMO_SIZE = 16_384


@dataclass(frozen=True)
class Proposal:
    """An architecture to evaluate. ``parent`` is the id of the candidate whose subspace it came from."""

    id: int
    arch: dict[str, Any]
    kind: str
    parent: int | None = None


@dataclass(frozen=True)
class Observation:
    """An evaluated (or failed: ``score is None``) architecture."""

    id: int
    arch: dict[str, Any]
    score: float | None
    kind: str


@dataclass
class _Record:
    code: Arch
    kind: str
    parent: int | None = None
    score: float | None = None
    status: str = "pending"  # pending | done | failed


@dataclass
class _Step:
    """What a proposal needs to learn from its result, whatever happened in between.

    ``tokens`` are the policy rollouts it learns from: row ``own_row`` produced it (None for a fallback
    neighbour); ``lessons`` are rows that landed on evaluated architectures, with rewards from their recorded
    scores. All are learnt in one update when this proposal's result arrives.
    """

    tokens: list[list[int]]
    graph: tuple[np.ndarray, np.ndarray, np.ndarray]  # the candidate graph it was sampled on
    slot: int
    parent_score: float
    own_row: int | None
    lessons: list[tuple[int, float]] = field(default_factory=list)  # (row, reward)


@dataclass
class _ScoreStats:
    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        self.total += x
        self.total_sq += x * x

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def scale(self) -> float:
        """Standard deviation of the scores seen so far; the unit of rewards and score features."""
        if self.n >= 2:
            variance = max(self.total_sq / self.n - self.mean**2, 0.0)
            if variance > 1e-18 * max(1.0, self.mean**2):
                return math.sqrt(variance)
        return abs(self.mean) if self.mean else 1.0


class AseNasSearcher:
    """ASE-NAS over a list of categorical decisions, with an ask/tell interface.

    Parameters
    ----------
    decisions
        ``label -> options``. An architecture is ``{label: option}``.
    config
        The method's settings (:class:`~nni_asenas.config.AseNasConfig`, or a preset name such as ``"paper"``);
        ``settings`` given as keywords (``k=5``, ``n_steps=2``, ...) override single fields.
    initial_architectures
        Start the candidate set from these (ASE-NAS+); random architectures fill up the start to ``n_initial`` (at
        least ``k``) results.
    constraint
        ``arch -> bool``; False rejects a proposal before evaluation (it costs nothing and is redrawn).
    canonical
        ``arch -> arch``: the one form of the architectures that build the same network (e.g.
        :func:`nni_asenas.imagenet.space.canonical_arch`, which resets the labels of blocks beyond a stage's
        depth). Equivalent architectures are then one architecture: each is proposed at most once, and a draw that
        lands on an evaluated one is a free lesson. Proposals are in canonical form. A pure function: its results
        are remembered. Not saved by :meth:`state_dict`: give it again, as ``constraint``.
    seed
        Seeds everything random: policy initialisation, sampling, random architectures (0 .. 2**32 - 1).

    Scores are "higher is better" in any unit: rewards and score features are divided by the standard deviation
    of the scores seen so far, so percent and fraction give the same search. ``None``, NaN or inf is a failure;
    what is no score at all (text, a list, an int too large for a float such as ``10**400``) is a ValueError.
    """

    def __init__(
        self,
        decisions: Mapping[str, Sequence[Any]],
        config: AseNasConfig | str | None = None,
        *,
        initial_architectures: Sequence[Mapping[str, Any]] = (),
        constraint: Callable[[dict[str, Any]], bool] | None = None,
        canonical: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
        seed: int = 0,
        **settings: Any,
    ) -> None:
        self._config = resolve_config(config, **settings)
        self._seed = check_seed(seed)
        self._labels, self._options = validate_decisions(decisions)
        self._sizes = [len(values) for values in self._options]
        self._option_index = option_index(self._options)
        c = self._config
        self._constraint = constraint
        self._canonical = canonical
        self._canon_memo: dict[Arch, Arch] = {}
        self._rng = np.random.default_rng(self._seed)
        generator = torch.Generator().manual_seed(self._seed)
        self._policy = AseNasPolicy(self._sizes, n_steps=c.n_steps, hidden_size=c.hidden_size, temperature=c.temperature, generator=generator)
        # fused: one kernel for all parameters; the per-tensor loop costs more than the maths at this size
        self._optimizer = torch.optim.Adam(self._policy.parameters(), lr=c.learning_rate, weight_decay=c.weight_decay, fused=True)
        self._named_parameters = list(self._policy.named_parameters())
        self._graph_memo: tuple[tuple[np.ndarray, np.ndarray, np.ndarray], CandidateGraph] | None = None
        self._records: dict[int, _Record] = {}
        self._by_code: dict[Arch, int] = {}
        self._rejected: set[Arch] = set()
        self._rejections_in_a_row = 0
        self._slots: list[int] = []  # the candidate set, as record ids
        self._steps: dict[int, _Step] = {}
        self._history: list[int] = []
        self._best: int | None = None
        self._baseline = 0.0
        self._stats = _ScoreStats()
        self._next_id = 0
        self._initial_queue: list[Arch] = [self._canon(self._code(arch, "initial architecture"))
                                           for arch in initial_architectures]
        self._model_params: KernelParams | None = None
        self._model_fitted_at = 0
        self._model_cache: tuple[int, GaussianProcess] | None = None

    # ------------------------------------------------------------------ public API

    @property
    def config(self) -> AseNasConfig:
        return self._config

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def decisions(self) -> dict[str, list[Any]]:
        return {label: list(values) for label, values in zip(self._labels, self._options)}

    @property
    def n_pending(self) -> int:
        return len(self._records) - len(self._history)

    def is_pending(self, arch: Mapping[str, Any]) -> bool:
        rid = self._by_code.get(self._code(arch, "architecture"))
        return rid is not None and self._records[rid].status == "pending"

    @property
    def best(self) -> Observation | None:
        return None if self._best is None else self._observation(self._best)

    @property
    def candidates(self) -> list[Observation]:
        return [self._observation(rid) for rid in self._slots]

    @property
    def history(self) -> list[Observation]:
        return [self._observation(rid) for rid in self._history]

    @single_threaded
    def ask(self) -> Proposal | None:
        """The next architecture to evaluate, or None when every valid architecture has been proposed."""
        while self._initial_queue:
            code = self._initial_queue.pop(0)
            if code not in self._by_code and self._is_valid(code):
                return self._propose(code, INITIAL)
        # Random until the random start (AseNasConfig.n_initial) is spent and K candidates are known or on their way.
        if len(self._records) >= self._config.n_initial and self._slots:
            n_warmup_pending = sum(
                1 for r in self._records.values() if r.status == "pending" and r.kind in (INITIAL, RANDOM)
            )
            if len(self._slots) + n_warmup_pending >= self._config.k:
                return self._search_step()
        fill = self._random_unvisited()
        return None if fill is None else self._propose(fill, RANDOM)

    @single_threaded
    def tell(self, proposal_id: int, score: float | None) -> None:
        """Report the score of a proposal (None, NaN or inf: the trial failed).

        Everything is checked before anything changes: an unknown or already told id, or a score that is not a
        number (``"abc"``, a list, an int too large for a float such as ``10**400``) raises :class:`ValueError`
        and leaves the searcher as it was, so the call can be retried with a good score.
        """
        record = self._records.get(proposal_id)
        if record is None:
            raise ValueError(f"unknown proposal id {proposal_id}")
        if record.status != "pending":
            raise ValueError(f"proposal {proposal_id} was already told ({record.status})")
        score = _as_score(score)
        step = self._steps.pop(proposal_id, None)
        self._history.append(proposal_id)
        if score is None:
            record.status = "failed"
            _logger.info("proposal %d failed; it gets no reward and is never proposed again", proposal_id)
        else:
            self._record_score(proposal_id, score)
        if step is None:
            if score is not None and not self._restart_slot(record):
                self._enter_candidates(proposal_id)
            return
        reward = None if score is None else (score - step.parent_score) / self._stats.scale
        self._learn(step, reward)
        if score is not None:
            self._move_subspace(proposal_id, step.slot)

    def observe(self, arch: Mapping[str, Any], score: float | None) -> Observation:
        """Record an architecture evaluated elsewhere (imported data, a resumed experiment).

        It is never proposed again; a valid success may enter the candidate set (if there is room or it beats the
        worst candidate). An architecture that is already known keeps its first result. The architecture and the
        score are checked (as in :meth:`tell`) before anything changes.
        """
        code = self._canon(self._code(arch, "observed architecture"))
        score = _as_score(score)
        rid = self._by_code.get(code)
        if rid is not None:
            return self._observation(rid)
        rid = self._new_record(code, OBSERVED)
        self._history.append(rid)
        if score is None:
            self._records[rid].status = "failed"
        else:
            self._record_score(rid, score)
            if self._is_valid(code):
                self._enter_candidates(rid)
        return self._observation(rid)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this exact search (torch.save-able); version 3 (:func:`upgrade_state`
        reads versions 1 and 2)."""
        return {
            "version": _STATE_VERSION,
            "decisions": self.decisions,
            "config": self._config.to_dict(),
            "seed": self._seed,
            "policy": _copy_state(self._policy.state_dict()),
            "optimizer": _copy_state(self._optimizer.state_dict()),
            "rng": copy.deepcopy(self._rng.bit_generator.state),
            "records": {rid: dict(vars(r)) for rid, r in self._records.items()},
            "rejected": sorted(self._rejected),
            "slots": list(self._slots),
            "steps": {rid: copy.deepcopy(vars(step)) for rid, step in self._steps.items()},
            "history": list(self._history),
            "best": self._best,
            "baseline": self._baseline,
            "stats": dict(vars(self._stats)),
            "next_id": self._next_id,
            "initial_queue": list(self._initial_queue),
            "model": None if self._model_params is None else {
                "weights": self._model_params.weights.tolist(), "scale": self._model_params.scale,
                "noise": self._model_params.noise, "fitted_at": self._model_fitted_at},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue the search saved by :meth:`state_dict`. A state of another space or shape, or with a missing or
        damaged entry, raises :class:`ValueError` naming it and leaves this searcher untouched."""
        state = upgrade_state(state)
        try:
            saved = {label: list(values) for label, values in state["decisions"].items()}
            if saved != self.decisions:
                raise ValueError("the saved search state belongs to a different search space")
            saved_config = dict(state["config"])
            missing = sorted(set(AseNasConfig.field_names()) - set(saved_config))
            if missing:
                raise ValueError(f"the saved search state's config has no {missing[0]!r} setting")
            if (saved_config["k"], saved_config["n_steps"], saved_config["hidden_size"]) != (
                self._config.k, self._config.n_steps, self._config.hidden_size,
            ):
                raise ValueError("the saved search state was made with another k, n_steps or hidden_size")
            config = AseNasConfig.from_dict(saved_config)
            seed = check_seed(state["seed"])
            records = {int(rid): _Record(**{**r, "code": tuple(r["code"])}) for rid, r in state["records"].items()}
            rejected = {tuple(code) for code in state["rejected"]}
            slots = [int(rid) for rid in state["slots"]]
            steps = {int(rid): _Step(**copy.deepcopy(step)) for rid, step in state["steps"].items()}
            history = [int(rid) for rid in state["history"]]
            best = state["best"]
            baseline = float(state["baseline"])
            stats = _ScoreStats(**state["stats"])
            next_id = int(state["next_id"])
            initial_queue = [tuple(code) for code in state["initial_queue"]]
            model = state["model"]
            model_params = None if model is None else KernelParams(
                np.array(model["weights"], dtype=np.float64), float(model["scale"]), float(model["noise"]))
            if model_params is not None and model_params.weights.shape != (len(self._sizes),):
                raise ValueError("the saved search state's model has another number of decisions")
            model_fitted_at = 0 if model is None else int(model["fitted_at"])
            policy_state, optimizer_state, rng_state = state["policy"], state["optimizer"], state["rng"]
        except KeyError as exc:
            raise ValueError(f"the saved search state has no {exc.args[0]!r} entry") from None
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"the saved search state is damaged ({exc})") from None
        if not set(slots) | set(history) | ({best} if best is not None else set()) <= set(records):
            raise ValueError("the saved search state is damaged (a candidate or result without its record)")
        # The policy, optimiser and random generator are loaded in place: on failure, put back what they held.
        kept = (_copy_state(self._policy.state_dict()), _copy_state(self._optimizer.state_dict()),
                copy.deepcopy(self._rng.bit_generator.state))
        try:
            self._policy.load_state_dict(policy_state)
            self._optimizer.load_state_dict(_copy_state(optimizer_state))
            self._rng.bit_generator.state = copy.deepcopy(rng_state)
        except Exception as exc:
            self._policy.load_state_dict(kept[0])
            self._optimizer.load_state_dict(kept[1])
            self._rng.bit_generator.state = kept[2]
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"the saved search state's policy does not fit this searcher ({message})") from None
        self._config, self._seed = config, seed
        self._records = records
        self._by_code = {r.code: rid for rid, r in records.items()}
        self._rejected = rejected
        self._slots = slots
        self._steps = steps
        self._history = history
        self._best = best
        self._baseline = baseline
        self._stats = stats
        self._next_id = next_id
        self._initial_queue = initial_queue
        self._model_params, self._model_fitted_at, self._model_cache = model_params, model_fitted_at, None

    def __repr__(self) -> str:
        c = self._config
        return (
            f"{type(self).__name__}(decisions={len(self._labels)}, k={c.k}, n_steps={c.n_steps}, "
            f"hidden_size={c.hidden_size}, learning_rate={c.learning_rate}, entropy_weight={c.entropy_weight}, seed={self._seed})"
        )

    # ------------------------------------------------------------------ proposals

    def _search_step(self) -> Proposal | None:
        """One policy step: draw ``max_redraws`` rollouts as a batch and propose one unvisited valid child.

        Without a surrogate the first such draw is proposed; with one, the draw it rates highest (duplicates
        counted once), together with the admissible repairs of draws the constraint rejected. Draws that land on
        evaluated architectures are free lessons (their recorded scores are their rewards). When no draw is usable, an
        unvisited neighbour of the first draw's centre, nearest first."""
        restart = self._restart_proposal()
        if restart is not None:
            return restart
        graph = self._graph_snapshot()
        embeddings = self._policy.embed_array(self._candidate_graph(graph))
        tokens = self._policy.sample(embeddings, self._rng, batch=self._config.max_redraws).tolist()
        rank = self._config.surrogate != "none"
        lessons: list[tuple[int, float]] = []
        usable: dict[Arch, int] = {}  # unvisited valid child -> the first row that drew it
        repaired: dict[Arch, int] = {}  # a rejected child of the first draw's subspace -> its row
        for row, rollout in enumerate(tokens):
            centre_id = self._slots[rollout[0]]
            child = self._canon(apply_edits(self._records[centre_id].code, AseNasPolicy.edits(rollout)))
            known = self._by_code.get(child)
            if known is None:
                if child in usable or child in repaired:
                    continue
                if self._is_valid(child):
                    usable[child] = row
                    if not rank:
                        break
                elif rank and rollout[0] == tokens[0][0] and len(repaired) < MAX_REPAIRED_DRAWS:
                    repaired[child] = row
            elif self._records[known].status == "done" and len(lessons) < MAX_LESSONS:
                lessons.append((row, (self._score(known) - self._score(centre_id)) / self._stats.scale))
        for child, row in repaired.items():
            for repair in self._repairs(child):
                usable.setdefault(repair, row)
        if usable:
            # The policy's first draw picks the subspace (global search); the surrogate ranks the edits drawn in it
            # (local search). Ranking every draw would let it always pick the best centre's subspace.
            own = [child for child, row in usable.items() if tokens[row][0] == tokens[0][0]]
            children = own or list(usable)
            pick = int(np.argmax(self._rate(children))) if rank and len(children) > 1 else 0
            row = usable[children[pick]]
            child = children[pick]
            if rank and self._climbs():
                centre_id = self._slots[tokens[row][0]]
                child = self._climb(child, self._records[centre_id].code, self._trust_radius(centre_id))
            return self._propose_step(child, SEARCH, tokens, graph, row, row, lessons)
        centre = self._records[self._slots[tokens[0][0]]].code
        if rank and self._config.fallback_radius > 0:
            pool = self._widened_subspace(centre, self._config.fallback_radius)
            # best-rated first; the constraint is asked only until it admits one (it may be costly to evaluate)
            for index in np.argsort(-self._rate(pool), kind="stable") if len(pool) > 1 else range(len(pool)):
                if self._is_valid(pool[index]):
                    return self._propose_step(pool[index], FALLBACK, tokens, graph, 0, None, lessons)
        for code in map(self._canon, neighbours(centre, self._sizes, self._rng, max_distance=len(self._sizes))):
            if code not in self._by_code and self._is_valid(code):
                return self._propose_step(code, FALLBACK, tokens, graph, 0, None, lessons)
        return None  # every architecture reachable from the centre (i.e. the whole space) is known or invalid

    def _climbs(self) -> bool:
        """Whether the model searches the chosen subspace beyond the draws: where a centre's one-edit ring is larger
        than the draws of one proposal, the draws cannot cover it (on the 45-decision MobileNet-like space 32 draws
        see a third of a ring of 90; on NAS-Bench-201 they cover its ring of 24, and nothing changes)."""
        return self._config.climb_radius > 0 and sum(size - 1 for size in self._sizes) > self._config.max_redraws

    def _trust_radius(self, centre_id: int) -> int:
        """How far the climb may go from a centre: ``climb_radius`` edits, one more for each improvement in a row that
        led to it (it beat the candidate whose subspace gave it, which beat its own, ...), at most twice
        ``climb_radius``. A trust region grows after successes (TuRBO's grows to twice its start): a line of
        subspaces that keeps improving lets the model step farther; a restart or a random centre starts again."""
        base = radius = self._config.climb_radius
        rid = centre_id
        while radius < 2 * base:
            record = self._records[rid]
            if record.kind not in (SEARCH, FALLBACK) or record.parent is None:
                break
            parent = self._records[record.parent]
            if parent.status != "done" or self._score(rid) <= self._score(record.parent):
                break
            radius += 1
            rid = record.parent
        return radius

    def _climb(self, code: Arch, centre: Arch, radius: int) -> Arch:
        """``code`` (the model's pick of the draws) moved by single edits while the model rates a step higher: at most
        ``radius`` steps, never farther than ``radius`` edits from ``centre`` (the subspace is a trust region, see
        :meth:`_trust_radius`), onto unvisited architectures the constraint admits (asked for the best-rated few of
        each ring only).

        GPSampler's edge on many decisions is that each proposal optimises its acquisition over every decision; a
        draw changes one. The climb lets the model do so inside the subspace the policy evoked."""
        value = float(self._rate([code])[0])
        for _ in range(radius):
            ring = [step for step in self._ring(code) if step != code and step not in self._by_code
                    and step not in self._rejected and hamming(step, centre) <= radius]
            if not ring:
                break
            ratings = self._rate(ring)
            for index in np.argsort(-ratings, kind="stable")[:MAX_CLIMB_CHECKS]:
                if ratings[index] <= value:
                    return code
                if self._is_valid(ring[index]):
                    code, value = ring[index], float(ratings[index])
                    break
            else:
                return code
        return code

    def _ring(self, code: Arch) -> Iterator[Arch]:
        """The one-edit neighbours of ``code`` in canonical form (an edit of a decision the network does not use gives
        ``code`` itself, and two such edits the same neighbour)."""
        for position, size in enumerate(self._sizes):
            for option in range(size):
                if option != code[position]:
                    yield self._canon(code[:position] + (option,) + code[position + 1:])

    def _widened_subspace(self, centre: Arch, radius: int) -> list[Arch]:
        """Up to ``FALLBACK_POOL`` random unvisited architectures (not checked against the constraint) within ``radius`` edits of ``centre``, the
        number of edits drawn uniformly from 1..radius (so the far rings, which hold most of the architectures, do
        not crowd out the near ones). A subspace whose draws all land on known architectures is spent: like a trust
        region after a success, it widens, and the model picks in the wider region."""
        sizes = np.array(self._sizes)
        editable = np.flatnonzero(sizes > 1)
        if editable.size == 0:
            return []
        radius = min(radius, editable.size)
        n = 2 * FALLBACK_POOL
        distance = self._rng.integers(1, radius + 1, size=n)
        # the `distance` editable positions with the smallest random keys; each moves to another option, uniformly
        keys = np.full((n, len(sizes)), np.inf)
        keys[:, editable] = self._rng.random((n, editable.size))
        order = np.argsort(np.argsort(keys, axis=1), axis=1)
        edited = order < distance[:, None]
        shift = self._rng.integers(1, np.maximum(sizes, 2)[None, :], size=(n, len(sizes)))
        codes = np.where(edited, (np.array(centre)[None, :] + shift) % sizes[None, :], np.array(centre)[None, :])
        pool: dict[Arch, None] = {}
        for row in codes.tolist():
            code = self._canon(tuple(row))
            if code not in self._by_code and code not in pool and code not in self._rejected:
                pool[code] = None
                if len(pool) == FALLBACK_POOL:
                    break
        return list(pool)

    def _propose_step(self, code: Arch, kind: str, tokens: list[list[int]], graph: tuple[np.ndarray, np.ndarray, np.ndarray],
                      slot_row: int, own_row: int | None, lessons: list[tuple[int, float]]) -> Proposal:
        """Propose ``code`` from the rollout ``slot_row``'s subspace, keeping only the rows it will learn from."""
        rows = sorted({row for row, _ in lessons} | ({own_row} if own_row is not None else set()))
        where = {row: i for i, row in enumerate(rows)}
        slot = tokens[slot_row][0]
        step = _Step([tokens[row] for row in rows] or [tokens[slot_row]], graph, slot, self._score(self._slots[slot]),
                     None if own_row is None else where[own_row], [(where[row], reward) for row, reward in lessons])
        return self._propose(code, kind, parent=self._slots[slot], step=step)

    def _restart_proposal(self) -> Proposal | None:
        """A new centre for the first candidate (not the best) whose one-edit neighbourhood is all known, or None.

        Such a candidate is a local optimum whose nearest ring is spent: its slot moves to the most promising of
        ``restart_pool`` random unvisited architectures (rated by the surrogate, or the first without one), which
        replaces it when its result arrives, whatever its score."""
        if self._config.restart_pool == 0:
            return None
        restarting = {r.parent for r in self._records.values() if r.kind == RESTART and r.status == "pending"}
        for rid in self._slots:
            if rid == self._best or rid in restarting or not self._exhausted(self._records[rid].code):
                continue
            pool: list[Arch] = []
            for _ in range(4 * self._config.restart_pool):
                code = self._canon(random_architecture(self._sizes, self._rng))
                if code not in self._by_code and code not in pool and self._is_valid(code):
                    pool.append(code)
                    if len(pool) == self._config.restart_pool:
                        break
            if not pool:
                return None  # the space is nearly all known: the policy's steps and fallbacks go on
            pick = int(np.argmax(self._rate(pool))) if self._config.surrogate != "none" and len(pool) > 1 else 0
            _logger.info("candidate %d is a spent local optimum: restarting its slot", rid)
            return self._propose(pool[pick], RESTART, parent=rid)
        return None

    def _repairs(self, code: Arch) -> list[Arch]:
        """The unvisited one-edit neighbours of ``code`` (a draw the constraint rejected) that the constraint admits.

        Near a limit most edits that add capacity are rejected; an edit that adds capacity here and one that takes
        it away there is how a search moves along the limit, so these join the draws the model ranks (the rejected
        draw's row learns from what its repair scores)."""
        repairs: list[Arch] = []
        for neighbour in self._ring(code):
            if neighbour not in self._by_code and neighbour not in repairs and self._is_valid(neighbour):
                repairs.append(neighbour)
        return repairs

    def _exhausted(self, code: Arch) -> bool:
        """Whether every one-edit neighbour of ``code`` has been proposed or rejected."""
        return all(neighbour in self._by_code or neighbour in self._rejected for neighbour in self._ring(code))

    def _restart_slot(self, record: _Record) -> bool:
        """Put a restart's result in the slot of the candidate it restarts, if that one is still there (and
        still not the best); False if it did not go there."""
        if record.kind != RESTART or record.parent not in self._slots or record.parent == self._best:
            return False
        rid = self._by_code[record.code]
        self._slots[self._slots.index(record.parent)] = rid
        return True

    def _rate(self, children: list[Arch]) -> np.ndarray:
        """The model's rating of ``children`` from every result so far: the log expected improvement over the best
        score, or with ``exploration`` > 0 the upper confidence bound ``mean + exploration * std``."""
        model = self._model()
        queries = np.array(children, dtype=np.int64)
        if self._config.exploration > 0.0:
            mean, std = model.predict(queries)
            return mean + self._config.exploration * std
        return model.log_expected_improvement(queries)

    def _model(self) -> GaussianProcess:
        """The Gaussian process of the results so far (at most ``MAX_POINTS``: the best and the most recent), built
        once per new result; its hyperparameters are refitted when the results have grown by a tenth since the last
        fit, and reused (a cheap update) in between."""
        done = [record for record in self._records.values() if record.status == "done"]
        if self._model_cache is not None and self._model_cache[0] == len(done):
            return self._model_cache[1]
        scores = np.array([record.score for record in done], dtype=np.float64)
        keep = training_subset(scores)
        codes = np.array([done[i].code for i in keep], dtype=np.int64)
        refit = self._model_params is None or len(done) >= max(self._model_fitted_at + 1,
                                                               math.ceil(REFIT_GROWTH * self._model_fitted_at))
        model = GaussianProcess(codes, scores[keep], self._sizes, None if refit else self._model_params)
        if refit:
            self._model_params, self._model_fitted_at = model.params, len(done)
        self._model_cache = (len(done), model)
        return model

    def _random_unvisited(self, attempts: int = 1000) -> Arch | None:
        """A random unvisited architecture the constraint admits, or None when every valid one is known."""
        while True:
            for _ in range(attempts):
                code = self._canon(random_architecture(self._sizes, self._rng))
                if code not in self._by_code and self._is_valid(code, sampled=True):
                    return code
            # Random draws keep hitting known or invalid architectures: walk out from a known one, nearest first,
            # for as many rejections as the random draws may meet in a row; then draw again from another start.
            starts = [r.code for r in self._records.values()] or [random_architecture(self._sizes, self._rng)]
            start = starts[int(self._rng.integers(len(starts)))]
            rejected = 0
            for code in map(self._canon, itertools.chain(
                    [start], neighbours(start, self._sizes, self._rng, max_distance=len(self._sizes)))):
                if code in self._by_code:
                    continue
                if self._is_valid(code):
                    return code
                rejected += 1
                if rejected >= MAX_REJECTIONS_IN_A_ROW:
                    break
            else:
                return None  # the walk covered the whole space

    def _propose(self, code: Arch, kind: str, *, parent: int | None = None, step: _Step | None = None) -> Proposal:
        rid = self._new_record(code, kind, parent)
        if step is not None:
            self._steps[rid] = step
        _logger.debug("proposal %d (%s, parent %s): %s", rid, kind, parent, code)
        return Proposal(rid, self._arch(code), kind, parent)

    def _new_record(self, code: Arch, kind: str, parent: int | None = None) -> int:
        rid = self._next_id
        self._next_id += 1
        self._records[rid] = _Record(code, kind, parent)
        self._by_code[code] = rid
        return rid

    def _is_valid(self, code: Arch, *, sampled: bool = False) -> bool:
        """Whether the constraint admits ``code`` (remembered when it does not). Only uniform random draws
        (``sampled``) count towards the error for a constraint that admits almost nothing: the policy's edits and the
        walks near a limit meet long runs of rejections in a search that is going well."""
        if code in self._rejected:
            return False
        if self._constraint is None or self._constraint(self._arch(code)):
            self._rejections_in_a_row = 0
            return True
        self._rejected.add(code)
        if not sampled:
            return False
        self._rejections_in_a_row += 1
        if self._rejections_in_a_row >= MAX_REJECTIONS_IN_A_ROW:
            self._rejections_in_a_row = 0
            raise RuntimeError(
                f"the constraint rejected {MAX_REJECTIONS_IN_A_ROW} architectures in a row: it admits too few of this "
                "space to search by sampling; loosen it or start from initial_architectures that satisfy it"
            )
        return False

    # ------------------------------------------------------------------ results

    def _record_score(self, rid: int, score: float) -> None:
        record = self._records[rid]
        record.status, record.score = "done", score
        self._stats.add(score)
        if self._best is None or score > self._score(self._best):
            self._best = rid

    def _enter_candidates(self, rid: int) -> None:
        if len(self._slots) < self._config.k:
            self._slots.append(rid)
            return
        worst = min(range(len(self._slots)), key=lambda s: self._score(self._slots[s]))
        if self._score(rid) > self._score(self._slots[worst]):
            self._slots[worst] = rid

    def _move_subspace(self, rid: int, slot: int) -> None:
        occupant = self._slots[slot]
        if self._score(rid) > self._score(occupant):
            _logger.info("proposal %d replaces candidate %d in slot %d (%.6g > %.6g)", rid, occupant, slot,
                         self._score(rid), self._score(occupant))
            self._slots[slot] = rid

    def _learn(self, step: _Step, reward: float | None) -> None:
        """One policy update for a proposal: its lessons and its own reward (None if it failed or is a fallback),
        scored under the current parameters on the candidate graph it was sampled on."""
        terms = list(step.lessons)
        if step.own_row is not None and reward is not None:
            terms.append((step.own_row, reward))
        if not terms:
            return
        self._update_policy(step, terms)

    def _update_policy(self, step: _Step, terms: Sequence[tuple[int, float]]) -> None:
        """One REINFORCE step over the rollout rows in ``terms`` (row, reward), with an exponential-moving-average
        baseline of past rewards and an entropy bonus: the loss is
        ``-sum((reward - baseline) * log_prob[row] + entropy_weight * entropy[row])`` (see
        :meth:`AseNasPolicy.score`), its gradients computed in numpy (:meth:`AseNasPolicy.reinforce_gradients`)."""
        tokens = np.asarray(step.tokens)[[row for row, _ in terms]]
        grads = self._policy.reinforce_gradients(self._candidate_graph(step.graph), tokens,
                                                 [reward - self._baseline for _, reward in terms],
                                                 self._config.entropy_weight)
        for name, parameter in self._named_parameters:
            parameter.grad = torch.from_numpy(grads[name]) if name in grads else None
        self._optimizer.step()
        for _, parameter in self._named_parameters:
            parameter.grad = None
        decay = self._config.baseline_decay
        for _, reward in terms:
            self._baseline = decay * self._baseline + (1.0 - decay) * reward

    # ------------------------------------------------------------------ helpers

    def _graph_snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        codes = np.stack([one_hot(self._records[rid].code, self._sizes) for rid in self._slots])
        mean, scale = self._stats.mean, self._stats.scale
        scores = np.array([(self._score(rid) - mean) / scale for rid in self._slots], dtype=np.float32)
        return candidate_graph(codes, scores)

    def _candidate_graph(self, snapshot: tuple[np.ndarray, np.ndarray, np.ndarray]) -> CandidateGraph:
        """The policy's graph of a snapshot, built once for the last one: a proposal's update (tell) reuses the
        graph (and the policy its embeddings) of its draws (ask)."""
        if self._graph_memo is None or self._graph_memo[0] is not snapshot:
            self._graph_memo = (snapshot, CandidateGraph.from_arrays(*snapshot))
        return self._graph_memo[1]

    def _score(self, rid: int) -> float:
        """The score of an evaluated record (candidates, the best, known results are never pending or failed)."""
        score = self._records[rid].score
        if score is None:
            raise RuntimeError(f"record {rid} has no score ({self._records[rid].status})")
        return score

    def _code(self, arch: Mapping[str, Any], what: str) -> Arch:
        if not isinstance(arch, Mapping):
            raise ValueError(f"{what} must be a mapping of decision label to option, got {type(arch).__name__}")
        if self._option_index is not None and len(arch) == len(self._labels):
            try:  # the common case, a complete architecture; arch_to_indices names what is wrong otherwise
                return tuple(index[arch[label]] for label, index in zip(self._labels, self._option_index))
            except (KeyError, TypeError):
                pass
        try:
            return arch_to_indices(arch, self._labels, self._options)
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from None

    def _arch(self, code: Arch) -> dict[str, Any]:
        return indices_to_arch(code, self._labels, self._options)

    def _canon(self, code: Arch) -> Arch:
        """``code`` in the canonical form of ``canonical`` (itself without one)."""
        if self._canonical is None:
            return code
        canon = self._canon_memo.get(code)
        if canon is None:
            canon = self._code(self._canonical(self._arch(code)), "canonical form")
            if len(self._canon_memo) >= CANON_MEMO_SIZE:
                self._canon_memo.clear()
            self._canon_memo[code] = canon
        return canon

    def _observation(self, rid: int) -> Observation:
        record = self._records[rid]
        return Observation(rid, self._arch(record.code), record.score, record.kind)


def upgrade_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A saved searcher state as version 4. Version 1 changed shape as settings were added: its first states kept
    the seed inside the config, and states saved before ``n_initial`` existed lack it (those searches started with
    ``k`` random architectures: ``n_initial`` 0). Version 2 has the seed beside the config, every setting in
    it, and the fitted model's hyperparameters (``model``). Version 3 adds ``fallback_radius``: searches saved
    before it fell back to the nearest unvisited neighbour (``fallback_radius`` 0) and go on doing so. Version 4 adds
    ``climb_radius``: searches saved before it proposed the model's pick of the draws as drawn (``climb_radius`` 0).
    :class:`ValueError` for what is not a state, an unknown version, or a state without its config or seed."""
    version = saved_version(state, "searcher", (1, 2, 3, _STATE_VERSION))
    if version == _STATE_VERSION:
        return dict(state)
    try:
        config = dict(state["config"])
    except KeyError:
        raise ValueError("the saved search state has no 'config' entry") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the saved search state is damaged ({exc})") from None
    config.setdefault("fallback_radius", 0)
    config.setdefault("climb_radius", 0)
    if version in (2, 3):
        return {**state, "version": _STATE_VERSION, "config": config}
    config.setdefault("n_initial", 0)
    seed = state.get("seed", config.get("seed"))
    config.pop("seed", None)
    if seed is None:
        raise ValueError("the saved search state has no 'seed' entry")
    # version 1 ranked with a fixed kernel: the fitted model starts unfitted (``model`` None) and is fitted on resume
    return {**state, "version": _STATE_VERSION, "config": config, "seed": seed, "model": None}


def _copy_state(value: Any) -> Any:
    """A copy of a (nested) state dict whose tensors are cloned: several times faster than ``copy.deepcopy``,
    which matters for callers that checkpoint after every result (the NNI tuner)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _copy_state(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_state(item) for item in value)
    return copy.copy(value)


def _as_score(score: Any) -> float | None:
    """A reported score as a float, None for a failure (None, NaN, +-inf), or :class:`ValueError` for what is not a
    score at all: text, containers, and ints too large for a float (``10**400``): a trial can end in NaN or inf,
    only a caller's bug in such an int, so it is refused rather than counted as a failure."""
    if score is None:
        return None
    if isinstance(score, (str, bytes)):
        raise ValueError(f"score must be a number or None, got {score!r}")
    try:
        value = float(score)
    except OverflowError:
        if isinstance(score, int):  # str() of a huge int is refused too: name it by its size
            what = f"(an int of about {int(abs(score).bit_length() * math.log10(2)) + 1} digits)"
        else:
            what = type(score).__name__
        raise ValueError(f"score {what} is too large for a float") from None
    except (TypeError, ValueError):
        raise ValueError(f"score must be a number or None, got {score!r}") from None
    return value if math.isfinite(value) else None
