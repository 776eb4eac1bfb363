"""The method's settings, defined once: :class:`AseNasConfig`.

Every front end takes the same settings under the same names: the engine-free searcher
(``AseNasSearcher(decisions, config, k=5)``), the NNI strategy (``AseNas(k=5)``), the NNI tuner (``classArgs: {k: 5}``),
the CLI (``nni-asenas search --k 5``) and the experiment files. Named presets (:data:`PRESETS`) give whole
configurations: ``"default"`` is the package's, ``"paper"`` the published one.

The seed is not a setting of the method but of a run; :func:`check_seed` is the one check every front end uses.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping

from nni_asenas.errors import UsageError

__all__ = ["AseNasConfig", "MAX_SEED", "PRESETS", "SURROGATES", "check_seed", "random_start_warning", "resolve_config"]

#: Seeds are 0 .. 2**32 - 1 everywhere (numpy's and torch's common range).
MAX_SEED = 2**32 - 1
#: Upper bounds that keep a typo from allocating a huge policy or looping for ever.
MAX_K = 1000
MAX_N_STEPS = 1000
MAX_HIDDEN_SIZE = 4096
MAX_REDRAWS = 1000
MAX_N_INITIAL = 1_000_000
MAX_RADIUS = 1000
#: Values of :attr:`AseNasConfig.surrogate`.
SURROGATES = ("gp", "none")


@dataclass(frozen=True)
class AseNasConfig:
    """Settings of ASE-NAS (see ``docs/method.md``). Every field is validated on construction.

    Attributes
    ----------
    k
        Number of candidate subspaces (K): the centres of the candidate set.
    n_steps
        Edits per proposal (M): a subspace is every architecture within ``n_steps`` single-decision edits of its
        centre.
    hidden_size
        Width of the graph network and the LSTM controller.
    learning_rate, weight_decay
        Adam's settings for the policy.
    entropy_weight
        Weight of the entropy bonus in the REINFORCE loss.
    baseline_decay
        Decay of the exponential moving average that serves as the REINFORCE baseline.
    temperature
        T in ``c * tanh(logits / T)``, the squashing of the policy's logits.
    max_redraws
        Policy samples drawn as one batch per proposal. Without a surrogate the first that lands on an unvisited
        valid architecture is proposed; with one, the unvisited valid draw the surrogate rates highest. When all
        land on known or invalid architectures, an unvisited neighbour of the chosen centre is proposed instead.
    surrogate
        How the draws of one proposal are ranked: ``"gp"``, a Gaussian process of the scores seen whose kernel has
        one fitted length scale per decision (:mod:`nni_asenas.core.gp`), or ``"none"`` (the paper: first draw).
    exploration
        0 (the default): the surrogate rates a draw by its expected improvement over the best score seen; > 0: by
        the upper confidence bound mean + exploration x std (in standard deviations of the scores).
    restart_pool
        A candidate (other than the best) whose one-edit neighbours have all been evaluated is a spent local
        optimum: its slot restarts from the most promising (by the surrogate) of this many random unvisited
        architectures. 0: never restart (the paper).
    n_initial
        Random architectures evaluated before the policy's first step: proposals are random until this many
        architectures are known (given ``initial_architectures`` and observed results count), and the candidate set
        starts as the best ``k`` of them. The first ``k`` are random whatever this says (0: the paper's start).
        The default, 12, was chosen on NAS-Bench-201 seeds 0-49 for every budget from 25 queries to ~150; the
        fitted model makes a longer random start unnecessary (``docs/method.md``).
    fallback_radius
        When every draw of a proposal lands on a known (or invalid) architecture, the chosen subspace is spent:
        like a trust region, it widens to ``fallback_radius`` edits of its centre and the surrogate picks the most
        promising unvisited architecture there. 0, or no surrogate: the nearest unvisited neighbour (the paper).
    climb_radius
        Where a centre's one-edit ring holds more architectures than ``max_redraws`` (the draws cannot cover the
        subspace, e.g. the 45-decision MobileNet-like space), the model's pick of the draws climbs the model's
        rating by single edits: at most ``climb_radius`` of them, never farther than ``climb_radius`` edits from the
        centre, one edit farther for each improvement in a row that led to the centre (up to twice ``climb_radius``:
        a trust region that grows after successes). 0, or no surrogate: the pick is proposed as drawn (the paper). No
        effect on NAS-Bench-201 (24 <= 32).
    """

    k: int = 3
    n_steps: int = 1
    hidden_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 2.37e-5
    entropy_weight: float = 5.05e-4
    baseline_decay: float = 0.9
    temperature: float = 5.0
    max_redraws: int = 32
    surrogate: str = "gp"
    exploration: float = 0.0
    restart_pool: int = 256
    n_initial: int = 12
    fallback_radius: int = 3
    climb_radius: int = 3

    def __post_init__(self) -> None:
        for name, least, high in (("k", 1, MAX_K), ("n_steps", 1, MAX_N_STEPS), ("hidden_size", 1, MAX_HIDDEN_SIZE),
                                  ("max_redraws", 1, MAX_REDRAWS), ("restart_pool", 0, MAX_REDRAWS),
                                  ("fallback_radius", 0, MAX_RADIUS), ("climb_radius", 0, MAX_RADIUS),
                                  ("n_initial", 0, MAX_N_INITIAL)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= high:
                raise UsageError(f"{name} must be an integer in {least}..{high}, got {value!r}")
        if self.surrogate not in SURROGATES:
            raise UsageError(f"surrogate must be one of {', '.join(SURROGATES)}, got {self.surrogate!r}")
        for name, low, low_open in (("learning_rate", 0.0, True), ("temperature", 0.0, True),
                                    ("weight_decay", 0.0, False), ("entropy_weight", 0.0, False),
                                    ("baseline_decay", 0.0, False), ("exploration", 0.0, False)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise UsageError(f"{name} must be a finite number, got {value!r}")
            if value < low or (low_open and value == low):
                raise UsageError(f"{name} must be {'>' if low_open else '>='} {low:g}, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.baseline_decay >= 1.0:
            raise UsageError(f"baseline_decay must be in [0, 1), got {self.baseline_decay!r}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def preset(cls, name: str) -> AseNasConfig:
        """A named configuration (:data:`PRESETS`)."""
        try:
            return PRESETS[name]
        except KeyError:
            raise UsageError(f"unknown preset {name!r} (valid: {', '.join(PRESETS)})") from None

    def replace(self, **settings: Any) -> AseNasConfig:
        """A copy with ``settings`` changed; an unknown name is an error naming it."""
        unknown = sorted(set(settings) - set(self.field_names()))
        if unknown:
            raise UsageError(f"unknown ASE-NAS setting {unknown[0]!r} (valid: {', '.join(self.field_names())})")
        return dataclasses.replace(self, **settings)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AseNasConfig:
        return cls().replace(**dict(values))


#: Named configurations. ``default``: the package's defaults (tuned on NAS-Bench-201 seeds 0-49, see
#: ``benchmarks/README.md``); ``paper``: the published settings (Chen et al., arXiv 2210.17180).
PRESETS: dict[str, AseNasConfig] = {
    "default": AseNasConfig(),
    "paper": AseNasConfig(k=3, n_steps=4, learning_rate=9.45e-3, max_redraws=3, surrogate="none", exploration=0.0,
                           restart_pool=0, n_initial=0, fallback_radius=0, climb_radius=0),
}


def resolve_config(config: AseNasConfig | str | None = None, **settings: Any) -> AseNasConfig:
    """The configuration a front end runs with: ``config`` (an object, a preset name, or None for the default)
    with ``settings`` (keyword overrides, validated) applied."""
    if config is None:
        base = AseNasConfig()
    elif isinstance(config, str):
        base = AseNasConfig.preset(config)
    elif isinstance(config, AseNasConfig):
        base = config
    else:
        raise UsageError(f"config must be an AseNasConfig or a preset name, got {type(config).__name__}")
    return base.replace(**settings) if settings else base


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as an int in 0 .. 2**32 - 1 (numpy integers too), or a :class:`UsageError` naming it."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) <= MAX_SEED:
        raise UsageError(f"{what} must be an integer in 0..{MAX_SEED}, got {seed!r}")
    return int(seed)


def random_start_warning(config: AseNasConfig, max_queries: int | None) -> str | None:
    """A one-line warning when the random start (:attr:`AseNasConfig.n_initial`) would take more than half of a
    known query budget, else None. Front ends that know the budget (the tuner's ``max_queries``, ``--max-queries``)
    log it: the search would still run, mostly at random."""
    if max_queries is None or config.n_initial <= max_queries / 2:
        return None
    share = "all" if config.n_initial >= max_queries else f"{config.n_initial}"
    return (f"n_initial {config.n_initial} makes {share} of the {max_queries} queries random before the policy starts; "
            f"a quarter of the budget or less leaves the rest to the policy (n_initial {max(config.k, max_queries // 4)})")
