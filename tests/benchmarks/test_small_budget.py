"""benchmarks/small_budget.py: AseNas() and NNI's Random through NasExperiment on a 180-architecture mixed space."""

from __future__ import annotations

import itertools
from types import ModuleType

import numpy as np
import pytest
from benchmark_scripts import load_script


def _script() -> ModuleType:
    return load_script("small_budget")


def test_the_landscape_spans_0_to_1_over_180_architectures():
    script = _script()
    landscape = script.Landscape(3)
    scores = [landscape(dict(zip(script.DECISIONS, values))) for values in itertools.product(*script.DECISIONS.values())]
    assert len(scores) == 180 and min(scores) == 0.0 and max(scores) == 1.0
    assert len(set(np.round(scores, 12))) > 170  # a landscape, not a plateau
    first = {label: options[0] for label, options in script.DECISIONS.items()}
    assert script.Landscape(4)(first) != landscape(first)  # a new landscape per seed


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_one_nas_experiment_reads_the_built_network_and_reports_its_best():
    script = _script()
    best = script.run("asenas", seed=0, trials=15)
    landscape = script.Landscape(0)
    every = [landscape(dict(zip(script.DECISIONS, v))) for v in itertools.product(*script.DECISIONS.values())]
    assert any(abs(best - s) < 1e-9 for s in every)  # a score of one of the 180 architectures
    assert 0.0 <= best <= 1.0


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_asenas_beats_random_at_40_trials_over_10_seeds():
    script = _script()
    asenas = [script.run("asenas", seed, 40) for seed in range(10)]
    random = [script.run("random", seed, 40) for seed in range(10)]
    assert np.mean(asenas) > np.mean(random) + 0.05
