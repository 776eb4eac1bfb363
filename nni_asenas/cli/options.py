"""Command-line flags for the method's settings, derived from :class:`~nni_asenas.config.AseNasConfig`, and the
mapping of library errors, which name parameters, onto the flags that set them."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any, Callable, Sequence, TypeVar

from nni_asenas.config import PRESETS, SURROGATES, AseNasConfig, random_start_warning, resolve_config
from nni_asenas.errors import UsageError, flag_errors
from nni_asenas.search.initial import read_initial_architectures

__all__ = ["add_method_options", "flag_errors", "method_config", "read_init", "warn_about_random_start"]

T = TypeVar("T")

_HELP = {
    "k": "number of candidate subspaces, K",
    "n_steps": "edits per proposal, M",
    "hidden_size": "width of the graph network and LSTM",
    "learning_rate": "Adam learning rate of the policy",
    "weight_decay": "Adam weight decay of the policy",
    "entropy_weight": "entropy bonus of the REINFORCE loss",
    "baseline_decay": "decay of the REINFORCE baseline's moving average",
    "temperature": "T of the logit squashing c*tanh(x/T)",
    "max_redraws": "policy samples drawn per proposal (ranked by the surrogate, if any)",
    "surrogate": "how a proposal's draws are ranked: gp (a model of the scores seen) or none (first draw)",
    "exploration": "0: rank draws by expected improvement; > 0: by mean + exploration x std (UCB)",
    "restart_pool": "random architectures rated to restart a spent candidate (0: never restart)",
    "n_initial": "random architectures evaluated before the policy starts (at least k)",
    "fallback_radius": "edits a spent subspace widens to for a model-picked fallback (0: nearest neighbour)",
    "climb_radius": "single edits the model's pick may climb its rating, within this many of the centre (0: none)",
}
#: Settings whose values are names: their choices.
_CHOICES = {"surrogate": SURROGATES}


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """``--preset`` and one flag per setting (``--k``, ``--n-steps``, ...); unset flags keep the preset's value."""
    group = parser.add_argument_group("ASE-NAS settings (default: the preset's)")
    group.add_argument("--preset", default="default", choices=list(PRESETS), help="named configuration (default: %(default)s)")
    defaults = AseNasConfig()
    for field in dataclasses.fields(AseNasConfig):
        flags = ["--" + field.name.replace("_", "-")]
        if field.name == "n_steps":
            flags.append("--steps")  # the name before 0.2
        default = getattr(defaults, field.name)
        help_text = f"{_HELP.get(field.name, field.name)} (default: {default})"
        if field.name in _CHOICES:
            group.add_argument(*flags, dest=field.name, choices=_CHOICES[field.name], default=None, help=help_text)
            continue
        kind = int if isinstance(default, int) else float
        group.add_argument(*flags, dest=field.name, type=kind, default=None, metavar="N" if kind is int else "X",
                           help=help_text)


def method_config(args: argparse.Namespace) -> AseNasConfig:
    """The configuration the flags ask for (a :class:`~nni_asenas.errors.UsageError` names a bad one)."""
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(AseNasConfig) if getattr(args, f.name, None) is not None}
    return resolve_config(args.preset, **overrides)


def warn_about_random_start(config: AseNasConfig, max_queries: int | None) -> None:
    """One warning line on stderr when the random start would take more than half of ``max_queries``."""
    warning = random_start_warning(config, max_queries)
    if warning is not None:
        print(f"nni-asenas: warning: {warning}", file=sys.stderr)


def read_init(items: Sequence[str], parse: Callable[[Any], T]) -> list[T]:
    """``--init``: the architectures the items give (:mod:`nni_asenas.search.initial`), through the space's ``parse``;
    an error names the flag."""
    try:
        return read_initial_architectures(items, parse)
    except UsageError as exc:
        raise UsageError(f"--init: {exc}") from None
