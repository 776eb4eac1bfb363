"""The accuracy predictor: the authors' encoding, training quality on a known score, resumable pair collection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nni_asenas.errors import UsageError
from nni_asenas.imagenet.predictor import (
    N_FEATURES,
    AccuracyPredictor,
    PredictorTraining,
    collect_pairs,
    encode,
    encode_many,
    kendall_tau,
    read_pairs,
    sample_architectures,
    train_predictor,
)
from nni_asenas.imagenet.space import canonical_arch, decisions

SPACE = decisions()


def uniform_arch(kernel: int, expand: int, depth: int) -> dict[str, int]:
    return canonical_arch({label: depth if label.endswith("depth") else kernel if label.endswith("kernel")
                           else expand for label in SPACE})


def known_score(seed: int = 1):
    """A synthetic 'accuracy': a random weight per (slot, choice) summed over the slots, plus a mild curvature."""
    weights = np.random.default_rng(seed).normal(0.0, 1.0, (20, 10))

    def score(arch) -> float:
        total = float((encode(arch).reshape(20, 10) * weights).sum())
        return 75.0 + 0.4 * total + 0.01 * total ** 2

    return score


def test_encoding_is_the_authors():
    smallest = uniform_arch(3, 3, 2)
    x = encode(smallest).reshape(20, 10)
    assert x.shape == (20, 10) and N_FEATURES == 200 and (x.sum(axis=1) == 1).all()
    assert [int(row.argmax()) for row in x] == [1, 1, 0, 0] * 5  # (k3, e3) -> 1; absent -> 0
    largest = encode(uniform_arch(7, 6, 4)).reshape(20, 10)
    assert (largest.argmax(axis=1) == 9).all()  # (k7, e6) -> 9
    mixed = dict(uniform_arch(3, 3, 3), s2_b1_kernel=5, s2_b1_expand=4)
    assert encode(mixed).reshape(20, 10)[5].argmax() == 1 + 3 * 1 + 1
    # the decisions of absent blocks do not matter
    assert np.array_equal(encode(dict(smallest, s1_b3_kernel=7)), encode(smallest))
    assert np.array_equal(encode_many([smallest, mixed]), np.stack([encode(smallest), encode(mixed)]))
    with pytest.raises(UsageError, match="s1_b0_kernel=4"):
        encode(dict(smallest, s1_b0_kernel=4))
    with pytest.raises(UsageError, match="unknown decision"):
        encode(dict(smallest, bogus=1))


def test_kendall_tau_matches_the_definition():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 300).astype(float)  # ties on both sides
    y = x + rng.integers(0, 3, 300)
    assert kendall_tau(x, y) == pytest.approx(scipy_stats.kendalltau(x, y).statistic, abs=1e-12)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_predictor_ranks_a_known_score():
    score = known_score()
    stream = sample_architectures(seed=0)
    pairs = [(arch, score(arch)) for arch in (next(stream) for _ in range(600))]
    result = train_predictor(pairs, training=PredictorTraining(epochs=120), seed=0)
    assert (result.n_train, result.n_test) == (540, 60)
    spread = np.std([accuracy for _, accuracy in pairs])
    assert result.kendall_tau >= 0.75, result.metrics()  # measured 0.85
    assert result.mae <= 0.4 * spread, result.metrics()  # measured 0.31 x spread
    # and on fresh architectures it never saw
    fresh = [next(stream) for _ in range(300)]
    assert kendall_tau(result.predictor.predict(fresh), [score(arch) for arch in fresh]) >= 0.75


def test_training_is_seeded_and_saves(tmp_path):
    score = known_score(2)
    stream = sample_architectures(seed=3)
    pairs = [(arch, score(arch)) for arch in (next(stream) for _ in range(60))]
    training = PredictorTraining(epochs=5)
    first, second = (train_predictor(pairs, training=training, seed=4) for _ in range(2))
    assert first.metrics() == second.metrics()
    path = tmp_path / "predictor.pt"
    first.predictor.save(path, metrics=first.metrics())
    loaded = AccuracyPredictor.load(path)
    archs = [arch for arch, _ in pairs[:10]]
    assert np.array_equal(loaded.predict(archs), first.predictor.predict(archs))
    assert loaded.metrics["kendall_tau"] == first.kendall_tau
    assert loaded.score(archs[0]) == pytest.approx(float(first.predictor.predict(archs[:1])[0]))
    damaged = torch.load(path, weights_only=True)
    damaged["config"]["hidden_size"] = 64
    torch.save(damaged, tmp_path / "damaged.pt")
    with pytest.raises(UsageError, match="damaged.pt: damaged"):
        AccuracyPredictor.load(tmp_path / "damaged.pt")
    torch.save({"something": "else"}, tmp_path / "other.pt")
    with pytest.raises(UsageError, match="not a file written by"):
        AccuracyPredictor.load(tmp_path / "other.pt")
    with pytest.raises(UsageError, match="at least 2 training and 2 held-out"):
        train_predictor(pairs[:3], training=training)


DIVERGING_PAIRS = Path(__file__).resolve().parents[1] / "data" / "predictor-diverging-pairs.jsonl"


def test_a_training_that_diverges_is_retried_with_a_smaller_step():
    """Real pairs (tests/data/predictor-diverging-pairs.jsonl) on which the authors' recipe turned every weight NaN
    for seeds 0, 4 and 6: the blow-up is detected and training restarts at half the learning rate."""
    pairs = read_pairs(DIVERGING_PAIRS)
    for seed in (0, 4, 6):
        result = train_predictor(pairs, seed=seed)
        assert result.learning_rate == 0.05 and result.diverged and result.diverged[0].startswith("0.1 (epoch ")
        assert result.predictor.has_finite_weights() and np.isfinite(result.mae)
        assert np.all(np.isfinite(result.predictor.predict([p.arch for p in pairs if p.accuracy is not None])))
    steady = train_predictor(pairs, seed=1)  # one that never diverged keeps the recipe's rate and its numbers
    assert steady.learning_rate == 0.1 and steady.diverged == ()


def test_a_training_that_always_diverges_is_a_one_line_error_and_a_diverged_file_is_refused(tmp_path):
    pairs = read_pairs(DIVERGING_PAIRS)
    with pytest.raises(UsageError, match=r"^predictor training diverged .* at every learning rate tried: 1e\+12 "):
        train_predictor(pairs, training=PredictorTraining(epochs=20, learning_rate=1e12), seed=0)
    predictor = train_predictor(pairs, training=PredictorTraining(epochs=2), seed=1).predictor
    with torch.no_grad():
        next(predictor.parameters()).fill_(float("nan"))
    predictor.save(tmp_path / "nan.pt")
    with pytest.raises(UsageError, match="nan.pt: its weights are not finite"):
        AccuracyPredictor.load(tmp_path / "nan.pt")


def test_collection_resumes_to_the_same_file(tmp_path):
    score = known_score(3)
    whole = tmp_path / "whole.jsonl"
    collect_pairs(score, whole, n=8, seed=5)

    calls = []

    def interrupted(arch):
        calls.append(arch)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return score(arch)

    part = tmp_path / "part.jsonl"
    with pytest.raises(KeyboardInterrupt):
        collect_pairs(interrupted, part, n=8, seed=5)
    assert len(read_pairs(part)) == 3
    with open(part, "a", encoding="utf-8") as handle:
        handle.write('{"arch": {"s1_dep')  # a write cut short by the kill
    resumed = collect_pairs(score, part, n=8, seed=5)

    def content(path):
        return [(pair.arch, pair.accuracy) for pair in read_pairs(path)]

    assert content(part) == content(whole) == [(pair.arch, pair.accuracy) for pair in resumed]
    assert len({tuple(arch.values()) for arch, _ in content(whole)}) == 8


def test_failed_evaluations_are_recorded_not_counted(tmp_path):
    score = known_score(4)
    seen = []

    def flaky(arch):
        seen.append(arch)
        if len(seen) % 3 == 0:
            raise RuntimeError("CUDA out of memory\nsecond line")
        return score(arch)

    path = tmp_path / "pairs.jsonl"
    pairs = collect_pairs(flaky, path, n=4, seed=0)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sum(line["accuracy"] is not None for line in lines) == 4 and len(lines) == len(pairs) == 5
    assert lines[2]["accuracy"] is None and lines[2]["error"] == "RuntimeError: CUDA out of memory"
    again = collect_pairs(flaky, path, n=4, seed=0)  # complete: nothing evaluated, nothing retried
    assert len(again) == 5 and len(seen) == 5
    good = json.dumps({"arch": uniform_arch(3, 3, 2), "accuracy": 70.0})
    (tmp_path / "bad.jsonl").write_text(good + '\n{"oops": 1}\n')
    with pytest.raises(UsageError, match="bad.jsonl line 2: expected an object with 'arch' and 'accuracy'"):
        read_pairs(tmp_path / "bad.jsonl")


def test_sampled_architectures_are_distinct_and_seeded():
    first, second = sample_architectures(7), sample_architectures(7)
    a = [next(first) for _ in range(50)]
    assert a == [next(second) for _ in range(50)] and len({tuple(arch.values()) for arch in a}) == 50
    assert all(canonical_arch(arch) == arch for arch in a)
    other = sample_architectures(8)
    assert [next(other) for _ in range(50)] != a
