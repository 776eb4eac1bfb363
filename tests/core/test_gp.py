"""The Gaussian process that rates ASE-NAS's draws: kernel, fit, prediction, acquisition, training subset."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

from nni_asenas.core.gp import GaussianProcess, KernelParams, log_expected_improvement, training_subset
from nni_asenas.core.gp._fit import _negative_log_posterior, fit_kernel_params
from nni_asenas.core.gp._kernel import OneHot, matern52, weighted_distances

pytestmark = pytest.mark.quick


def _data(seed: int = 0, n: int = 40, sizes: tuple[int, ...] = (4, 4, 3, 5)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, size, n) for size in sizes], axis=1)
    scores = 2.0 * (codes[:, 0] == 1) + 0.5 * (codes[:, 2] == 2) + 0.01 * rng.standard_normal(n)  # decision 1, 3 inert
    return codes, scores


def test_weighted_distances_sum_the_weights_of_differing_decisions():
    rng = np.random.default_rng(1)
    sizes = np.array([3, 2, 5])
    one_hot = OneHot(sizes)
    a, b = (np.stack([rng.integers(0, s, 9) for s in sizes], axis=1) for _ in range(2))
    weights = np.array([0.3, 2.0, 1.5])
    expected = ((a[:, None, :] != b[None, :, :]) * weights).sum(axis=-1)
    got = weighted_distances(one_hot.encode(a), one_hot.encode(b), weights, one_hot.decision)
    assert got == pytest.approx(expected)


def test_matern52_value_and_slope():
    d2 = np.array([0.0, 0.3, 2.0])
    value, slope = matern52(d2)
    r = np.sqrt(5 * d2)
    assert value == pytest.approx((1 + r + r * r / 3) * np.exp(-r))
    eps = 1e-6
    numeric = (matern52(d2[1:] + eps)[0] - matern52(d2[1:] - eps)[0]) / (2 * eps)
    assert slope[1:] == pytest.approx(numeric, rel=1e-5)


def test_the_fit_objective_has_the_analytic_gradient():
    codes, scores = _data()
    one_hot = OneHot(np.array([4, 4, 3, 5]))
    x, y = one_hot.encode(codes), (scores - scores.mean()) / scores.std()
    raw = np.array([0.2, -1.0, 0.5, 0.1, 0.3, -3.0])
    _, gradient = _negative_log_posterior(raw, x, y, one_hot)
    eps = 1e-6
    for i in range(len(raw)):
        step = np.zeros_like(raw)
        step[i] = eps
        numeric = (_negative_log_posterior(raw + step, x, y, one_hot)[0]
                   - _negative_log_posterior(raw - step, x, y, one_hot)[0]) / (2 * eps)
        assert gradient[i] == pytest.approx(numeric, rel=1e-4, abs=1e-6)


def test_the_fit_finds_which_decisions_matter_and_is_a_pure_function_of_the_data():
    codes, scores = _data()
    model = GaussianProcess(codes, scores, [4, 4, 3, 5])
    weights = model.params.weights
    assert min(weights[0], weights[2]) > 5 * max(weights[1], weights[3])  # the inert decisions are down-weighted
    again = fit_kernel_params(model.x, model.y, model.one_hot)
    assert np.array_equal(again.weights, weights) and (again.scale, again.noise) == (model.params.scale,
                                                                                    model.params.noise)


def test_prediction_follows_the_scores_in_any_unit_and_is_uncertain_far_away():
    codes, scores = _data()
    model = GaussianProcess(codes, scores, [4, 4, 3, 5])
    mean, std = model.predict(codes)
    assert np.corrcoef(mean, scores)[0, 1] > 0.99
    best, worst = np.array([[1, 0, 2, 0]]), np.array([[0, 0, 0, 0]])
    assert model.predict(best)[0][0] > model.predict(worst)[0][0]
    scaled = GaussianProcess(codes, 100 * scores + 7, [4, 4, 3, 5])
    assert scaled.predict(codes)[0] == pytest.approx(mean, abs=1e-6)  # scores are standardised inside
    few = GaussianProcess(codes[:2], scores[:2], [4, 4, 3, 5], KernelParams.initial(4))
    near, far = few.predict(np.array([codes[0], (codes[0] + 1) % 3]))[1]
    assert far > near


def test_given_params_are_reused_without_a_fit():
    codes, scores = _data()
    params = KernelParams(np.full(4, 0.5), 1.2, 0.01)
    model = GaussianProcess(codes, scores, [4, 4, 3, 5], params)
    assert model.params is params


def test_log_expected_improvement_matches_the_closed_form_and_stays_ordered_far_below():
    mean = np.array([-1.0, 0.0, 0.5, 2.0])
    std = np.array([0.5, 1.0, 0.2, 1.5])
    z = (mean - 0.3) / std
    expected = np.log(std * (np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) + z * special.ndtr(z)))
    assert log_expected_improvement(mean, std, 0.3) == pytest.approx(expected)
    far = log_expected_improvement(np.array([-30.0, -20.0, -10.0]), np.ones(3), 0.0)
    assert np.all(np.isfinite(far)) and far[0] < far[1] < far[2]  # where EI itself is 0.0 in float64
    edge = log_expected_improvement(np.array([-6.0 - 1e-9, -6.0 + 1e-9]), np.ones(2), 0.0)
    assert edge[0] == pytest.approx(edge[1], abs=1e-6)  # the two forms meet


def test_degenerate_inputs():
    empty = GaussianProcess(np.zeros((0, 2), dtype=np.int64), np.zeros(0), [2, 2])
    mean, std = empty.predict(np.array([[0, 1], [1, 1]]))
    assert mean.tolist() == [0.0, 0.0] and np.all(std > 0)
    flat = GaussianProcess(np.array([[0, 1], [1, 0]]), np.array([0.3, 0.3]), [2, 2])
    assert flat.predict(np.array([[0, 0]]))[0].tolist() == [0.0]


def test_training_subset_keeps_the_best_and_the_most_recent():
    scores = np.arange(10.0)[::-1]  # the first results are the best
    assert training_subset(scores, 20).tolist() == list(range(10))
    assert training_subset(scores, 4).tolist() == [0, 1, 8, 9]
