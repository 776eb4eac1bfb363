import numpy as np
import pytest

from nni_asenas.core.encoding import (
    apply_edits,
    arch_to_indices,
    candidate_graph,
    hamming,
    indices_to_arch,
    neighbours,
    one_hot,
    random_architecture,
    validate_decisions,
)

DECISIONS = {"a": [1, 2, 3], "b": ["x", "y"], "c": [None, "z", 7, 8]}


def test_round_trip_every_architecture():
    labels, options = validate_decisions(DECISIONS)
    sizes = [len(o) for o in options]
    seen = set()
    for code in np.ndindex(*sizes):
        arch = indices_to_arch(tuple(code), labels, options)
        assert arch_to_indices(arch, labels, options) == tuple(code)
        vector = one_hot(tuple(code), sizes)
        assert vector.sum() == len(sizes) and vector.shape == (sum(sizes),)
        seen.add(vector.tobytes())
    assert len(seen) == int(np.prod(sizes))


@pytest.mark.parametrize(
    "decisions, message",
    [
        ({}, "no decisions"),
        ({"a": []}, "'a' has no options"),
        ({"a": "abc"}, "'a': options must be a list"),
        ({"a": [1, 1]}, "'a' lists option 1 twice"),
    ],
)
def test_bad_decisions(decisions, message):
    with pytest.raises(ValueError, match=message):
        validate_decisions(decisions)


def test_bad_architectures_name_the_culprit():
    labels, options = validate_decisions(DECISIONS)
    with pytest.raises(ValueError, match="unknown decision 'd'"):
        arch_to_indices({"a": 1, "b": "x", "c": 7, "d": 0}, labels, options)
    with pytest.raises(ValueError, match="lacks decision 'c'"):
        arch_to_indices({"a": 1, "b": "x"}, labels, options)
    with pytest.raises(ValueError, match="'b' has no option 'q'"):
        arch_to_indices({"a": 1, "b": "q", "c": 7}, labels, options)


def test_graph_edges_point_from_lower_to_higher_score():
    rng = np.random.default_rng(0)
    codes = rng.random((4, 5)).astype(np.float32)
    scores = np.array([0.3, -1.0, 2.0, 0.3], dtype=np.float32)
    nodes, edges, edge_features = candidate_graph(codes, scores)
    assert nodes.shape == (4, 6) and edges.shape == (6, 2)
    assert {tuple(sorted(e)) for e in edges.tolist()} == {(a, b) for a in range(4) for b in range(a + 1, 4)}
    for (start, end), feature in zip(edges, edge_features):
        assert scores[start] <= scores[end]
        np.testing.assert_allclose(feature, nodes[end] - nodes[start])
    # a tie keeps index order
    assert [0, 3] in edges.tolist()


def test_single_candidate_graph_has_no_edges():
    nodes, edges, edge_features = candidate_graph(np.ones((1, 3), np.float32), np.zeros(1, np.float32))
    assert nodes.shape == (1, 4) and edges.shape == (0, 2) and edge_features.shape == (0, 4)


def test_apply_edits_returns_a_new_architecture():
    code = (0, 1, 2)
    assert apply_edits(code, [(0, 2), (2, 0), (0, 1)]) == (1, 1, 0)
    assert code == (0, 1, 2)
    assert apply_edits(code, [(1, 1)]) == code  # an edit to the current option changes nothing


def test_neighbours_come_nearest_first_and_cover_the_space():
    sizes = [3, 2, 4]
    rng = np.random.default_rng(1)
    code = random_architecture(sizes, rng)
    found = list(neighbours(code, sizes, rng, max_distance=3))
    distances = [hamming(code, other) for other in found]
    assert distances == sorted(distances) and min(distances) == 1
    assert len(found) == len(set(found)) == 3 * 2 * 4 - 1
