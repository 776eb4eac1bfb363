"""NNI model space <-> searcher decisions.

``space.simplify()`` of an NNI model space maps labels to mutables. Each one the searcher can search becomes
decisions (``label -> ordered options``); an architecture (``{decision: option}``) becomes an NNI sample
(``{label: value}``) for ``space.freeze``:

* ``Categorical`` -> one decision over its values;
* ``CategoricalMultiple(n_chosen=1)`` -> one decision over its values (sample value ``[v]``);
* ``CategoricalMultiple(n_chosen=k > 1)`` -> one decision over the ``k``-subsets (sample value: the subset);
* ``CategoricalMultiple(n_chosen=None)`` -> one binary decision per value, labelled ``label[i]`` (sample value: the
  chosen values in their listed order);
* annotations and constraints (``MutableAnnotation``) are no decisions: ``space.freeze`` checks them;
* anything else (``Numerical``, custom mutables) cannot be searched here: :class:`~nni_asenas.errors.UsageError`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Mapping

from nni.mutable import Categorical, CategoricalMultiple, Mutable, MutableAnnotation

from nni_asenas.errors import UsageError

__all__ = ["SpaceCodec", "MAX_SUBSETS"]

MAX_SUBSETS = 100_000  # a CategoricalMultiple(n_chosen=k) with more k-subsets than this is refused


@dataclass(frozen=True)
class _Entry:
    """How one NNI label is encoded: ``kind`` is ``single``, ``one_of_list``, ``subset`` or ``bits``."""

    label: str
    kind: str
    values: tuple[Any, ...]
    decisions: tuple[str, ...]
    n_chosen: int = 1


class SpaceCodec:
    """The decisions of a simplified NNI space, and the two conversions between architectures and samples.

    Parameters
    ----------
    space
        ``model_space.simplify()``: label -> mutable.
    """

    def __init__(self, space: Mapping[str, Mutable]) -> None:
        self._entries: list[_Entry] = []
        self.decisions: dict[str, list[Any]] = {}
        for label, mutable in space.items():
            entry = _encode(label, mutable)
            if entry is None:
                continue
            for name in entry.decisions:
                if name in self.decisions:
                    raise UsageError(f"model space: decision label {name!r} is produced twice (rename mutable {label!r})")
            self._entries.append(entry)
            for name, options in zip(entry.decisions, _options(entry)):
                self.decisions[name] = options
        if not self.decisions:
            raise UsageError("model space has no categorical choice to search")

    @property
    def labels(self) -> list[str]:
        """The NNI labels that carry decisions, in space order."""
        return [entry.label for entry in self._entries]

    def to_sample(self, arch: Mapping[str, Any]) -> dict[str, Any]:
        """Architecture (``{decision: option}``) -> NNI sample (``{label: value}``) for ``space.freeze``."""
        sample: dict[str, Any] = {}
        for entry in self._entries:
            if entry.kind == "single":
                sample[entry.label] = arch[entry.label]
            elif entry.kind == "one_of_list":
                sample[entry.label] = [arch[entry.label]]
            elif entry.kind == "subset":
                sample[entry.label] = list(arch[entry.label])
            else:
                sample[entry.label] = [v for v, name in zip(entry.values, entry.decisions) if arch[name]]
        return sample

    def to_arch(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """NNI sample -> architecture. Raises :class:`UsageError` naming a missing label or a value not in the space."""
        arch: dict[str, Any] = {}
        for entry in self._entries:
            if entry.label not in sample:
                raise UsageError(f"sample lacks label {entry.label!r}")
            value = sample[entry.label]
            if entry.kind == "single":
                if value not in entry.values:
                    raise UsageError(f"sample: {entry.label}={value!r} is not one of {list(entry.values)}")
                arch[entry.label] = value
                continue
            chosen = list(value) if isinstance(value, (list, tuple)) else [value]
            unknown = [v for v in chosen if v not in entry.values]
            if unknown:
                raise UsageError(f"sample: {entry.label} holds {unknown[0]!r}, not one of {list(entry.values)}")
            if entry.kind == "bits":
                for v, name in zip(entry.values, entry.decisions):
                    arch[name] = v in chosen
                continue
            if len(chosen) != entry.n_chosen or any(v in chosen[:i] for i, v in enumerate(chosen)):
                raise UsageError(f"sample: {entry.label}={value!r} must hold {entry.n_chosen} distinct value(s)")
            if entry.kind == "one_of_list":
                arch[entry.label] = chosen[0]
            else:
                arch[entry.label] = tuple(v for v in entry.values if v in chosen)
        return arch


def _encode(label: str, mutable: Mutable) -> _Entry | None:
    if isinstance(mutable, MutableAnnotation):
        return None
    if isinstance(mutable, Categorical):
        return _Entry(label, "single", tuple(mutable.values), (label,))
    if isinstance(mutable, CategoricalMultiple):
        values = tuple(mutable.values)
        if mutable.n_chosen is None:
            return _Entry(label, "bits", values, tuple(f"{label}[{i}]" for i in range(len(values))))
        if mutable.n_chosen == 1:
            return _Entry(label, "one_of_list", values, (label,))
        n_subsets = math.comb(len(values), mutable.n_chosen)
        if n_subsets > MAX_SUBSETS:
            raise UsageError(
                f"mutable {label!r}: choosing {mutable.n_chosen} of {len(values)} values gives {n_subsets} subsets "
                f"(at most {MAX_SUBSETS} can be searched)"
            )
        return _Entry(label, "subset", values, (label,), mutable.n_chosen)
    raise UsageError(
        f"mutable {label!r} ({type(mutable).__name__}) cannot be searched by AseNas: "
        "only Categorical and CategoricalMultiple choices can (make it a choice, e.g. nni.choice)"
    )


def _options(entry: _Entry) -> list[list[Any]]:
    if entry.kind in ("single", "one_of_list"):
        return [list(entry.values)]
    if entry.kind == "bits":
        return [[False, True] for _ in entry.decisions]
    return [list(itertools.combinations(entry.values, entry.n_chosen))]
