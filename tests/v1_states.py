"""The saved states of nni-asenas 0.2.0 (state version 1) in ``tests/data/states-v1.pt``, and the spaces and scores
they were made with (imported by the migration tests; ``tests/`` is on sys.path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

PATH = Path(__file__).resolve().parent / "data" / "states-v1.pt"

#: The searcher's and the tuner's space.
SPACE = {"a": [0, 1, 2, 3], "b": ["x", "y", "z"], "c": [1, 2, 3], "d": [True, False]}
NNI_SPACE = {label: {"_type": "choice", "_value": options} for label, options in SPACE.items()}
#: Settings of the searcher and the tuner (seed, then the method's).
SEARCHER_SETTINGS = {"seed": 5, "k": 2, "hidden_size": 8}
TUNER_SETTINGS = {"seed": 1, "k": 2, "hidden_size": 8, "n_initial": 3}
STRATEGY_SETTINGS = {"seed": 2, "k": 2, "hidden_size": 8, "n_initial": 5}


def score(arch: dict[str, Any]) -> float:
    return arch["a"] * 0.7 + "xyz".index(arch["b"]) * 0.3 - arch["c"] * 0.2 + (0.5 if arch["d"] else 0.0)


def grid_score(sample: dict[str, Any]) -> float:
    """The strategy's score on ``grid_space`` of ``tests/adapters/test_strategy.py`` (4 labels x 5 values)."""
    return float(sample["x0"] * 3 - (sample["x1"] - 2) ** 2 + sample["x2"] * sample["x3"] * 0.5)


def load() -> dict[str, Any]:
    """``{"searcher", "searcher_n_initial_0", "tuner", "strategy"}``: each a dict with the saved ``state`` and the
    ``next`` architectures 0.2.0 proposed after loading it (``pending`` / ``running`` / ``in_flight``: what was
    unanswered when it was saved, answered first)."""
    return torch.load(PATH, weights_only=False)
