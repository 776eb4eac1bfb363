"""Pure helpers on architectures: index codes, one-hot codes, the candidate graph, edits and neighbours.

An architecture is a tuple of option indices, one per decision (``arch[l]`` in ``range(sizes[l])``).
Nothing here keeps state; random choices take a :class:`numpy.random.Generator`.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np

Arch = tuple[int, ...]
Edit = tuple[int, int]  # (decision index, option index)

__all__ = [
    "Arch",
    "Edit",
    "apply_edits",
    "arch_to_indices",
    "candidate_graph",
    "hamming",
    "indices_to_arch",
    "neighbours",
    "one_hot",
    "option_index",
    "random_architecture",
    "validate_decisions",
]


def validate_decisions(decisions: Mapping[str, Sequence[Any]]) -> tuple[list[str], list[list[Any]]]:
    """Check a ``label -> options`` mapping and return its labels and option lists in order."""
    if not decisions:
        raise ValueError("the search space has no decisions")
    labels, options = [], []
    for label, values in decisions.items():
        if not isinstance(label, str) or not label:
            raise ValueError(f"decision label {label!r} is not a non-empty string")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise ValueError(f"decision {label!r}: options must be a list, got {type(values).__name__}")
        if len(values) == 0:
            raise ValueError(f"decision {label!r} has no options")
        for i, value in enumerate(values):
            if value in list(values[:i]):
                raise ValueError(f"decision {label!r} lists option {value!r} twice")
        labels.append(label)
        options.append(list(values))
    return labels, options


def arch_to_indices(arch: Mapping[str, Any], labels: Sequence[str], options: Sequence[Sequence[Any]]) -> Arch:
    """``{label: value}`` -> option indices. Raises ValueError naming a missing/unknown label or value."""
    known = set(labels)
    unknown = [key for key in arch if key not in known]
    if unknown:
        raise ValueError(f"architecture has unknown decision {unknown[0]!r}")
    code = []
    for label, values in zip(labels, options):
        if label not in arch:
            raise ValueError(f"architecture lacks decision {label!r}")
        value = arch[label]
        try:
            code.append(values.index(value))
        except ValueError:
            raise ValueError(f"decision {label!r} has no option {value!r} (options: {list(values)!r})") from None
    return tuple(code)


def option_index(options: Sequence[Sequence[Any]]) -> list[dict[Any, int]] | None:
    """Per decision, option -> its index (the first of equal options, as ``list.index``): a lookup table for
    :func:`arch_to_indices`' common case. None if an option is unhashable."""
    try:
        return [{value: i for i, value in reversed(list(enumerate(values)))} for values in options]
    except TypeError:
        return None


def indices_to_arch(code: Arch, labels: Sequence[str], options: Sequence[Sequence[Any]]) -> dict[str, Any]:
    return {label: values[i] for label, values, i in zip(labels, options, code)}


def one_hot(code: Arch, sizes: Sequence[int]) -> np.ndarray:
    """Concatenated one-hot vectors, one per decision."""
    out = np.zeros(int(sum(sizes)), dtype=np.float32)
    offset = 0
    for i, n in zip(code, sizes):
        out[offset + i] = 1.0
        offset += n
    return out


def candidate_graph(codes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidate set as a complete directed graph.

    ``codes`` is (K, D) one-hot codes, ``scores`` (K,) standardised scores. Node features are ``[code, score]``.
    Every pair gets one edge pointing from the lower-scoring to the higher-scoring node (ties: lower index first),
    with feature ``end - start``. Returns ``(node_features (K, D+1), edges (E, 2) as [start, end], edge_features (E, D+1))``.
    """
    nodes = np.concatenate([codes, scores[:, None]], axis=1).astype(np.float32)
    edges = []
    for a in range(len(scores)):
        for b in range(a + 1, len(scores)):
            edges.append((b, a) if scores[b] < scores[a] else (a, b))
    edge_index = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    edge_features = nodes[edge_index[:, 1]] - nodes[edge_index[:, 0]]
    return nodes, edge_index, edge_features


def apply_edits(code: Arch, edits: Sequence[Edit]) -> Arch:
    """A new architecture: ``code`` with each ``(decision, option)`` edit applied in order."""
    out = list(code)
    for decision, option in edits:
        out[decision] = option
    return tuple(out)


def hamming(a: Arch, b: Arch) -> int:
    return sum(x != y for x, y in zip(a, b))


def random_architecture(sizes: Sequence[int], rng: np.random.Generator) -> Arch:
    return tuple(int(rng.integers(n)) for n in sizes)


def neighbours(code: Arch, sizes: Sequence[int], rng: np.random.Generator, *, max_distance: int) -> Iterator[Arch]:
    """Architectures at Hamming distance 1, 2, ... ``max_distance`` from ``code``, nearest first, each ring shuffled.

    Rings are drawn lazily: distance d costs O(C(L, d) * prod(n - 1)) only if the nearer rings were exhausted.
    """
    from itertools import combinations, product

    positions = range(len(sizes))
    for distance in range(1, max_distance + 1):
        ring = []
        for where in combinations(positions, distance):
            alternatives = [[o for o in range(sizes[p]) if o != code[p]] for p in where]
            for values in product(*alternatives):
                ring.append(apply_edits(code, list(zip(where, values))))
        for i in rng.permutation(len(ring)):
            yield ring[int(i)]
