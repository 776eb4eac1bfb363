import math

import pytest

from nni_asenas.nni_tools.metrics import finite_number, metric_score


@pytest.mark.parametrize(
    "metric, expected",
    [(0.5, 0.5), (3, 3.0), ({"default": 71.2, "test": 1}, 71.2), ({"test": 1}, None), (None, None),
     (True, None), ("0.5", None), (float("nan"), None), ({"default": math.inf}, None)],
)
def test_metric_score(metric, expected):
    assert metric_score(metric) == expected


def test_finite_number_keeps_ints_and_floats_only():
    assert finite_number(2) == 2.0 and isinstance(finite_number(2), float)
    assert finite_number(-math.inf) is None and finite_number([1]) is None
