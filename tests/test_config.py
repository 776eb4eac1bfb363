"""AseNasConfig: one definition of the method's settings, validated once, with presets."""

from __future__ import annotations

import numpy as np
import pytest

from nni_asenas.config import MAX_SEED, PRESETS, AseNasConfig, check_seed, random_start_warning, resolve_config
from nni_asenas.errors import UsageError


def test_defaults_presets_and_overrides() -> None:
    assert resolve_config() == AseNasConfig() == PRESETS["default"]
    assert resolve_config("paper").learning_rate == pytest.approx(9.45e-3)
    paper = AseNasConfig(k=5, n_steps=4, learning_rate=9.45e-3, max_redraws=3, surrogate="none", exploration=0.0,
                         restart_pool=0, n_initial=0, fallback_radius=0, climb_radius=0)
    assert resolve_config("paper", k=5) == paper
    config = AseNasConfig(k=4)
    assert resolve_config(config, n_steps=2) == AseNasConfig(k=4, n_steps=2)
    assert AseNasConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"k": 0}, "k must be an integer in 1..1000, got 0"),
        ({"k": True}, "k must be an integer"),
        ({"n_steps": 10**6}, "n_steps must be an integer in 1..1000"),
        ({"hidden_size": 2.0}, "hidden_size must be an integer"),
        ({"learning_rate": 0}, "learning_rate must be > 0"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
        ({"weight_decay": -1e-3}, "weight_decay must be >= 0"),
        ({"baseline_decay": 1.0}, "baseline_decay must be in [0, 1)"),
        ({"temperature": "5"}, "temperature must be a finite number"),
        ({"hidden_sise": 8}, "unknown ASE-NAS setting 'hidden_sise'"),
        ({"surrogate": "forest"}, "surrogate must be one of gp, none, got 'forest'"),
        ({"exploration": -1.0}, "exploration must be >= 0"),
        ({"restart_pool": -1}, "restart_pool must be an integer in 0..1000"),
        ({"n_initial": 2.5}, "n_initial must be an integer in 0..1000000, got 2.5"),
        ({"fallback_radius": -2}, "fallback_radius must be an integer in 0..1000, got -2"),
    ],
)
def test_bad_settings_name_the_setting(settings: dict, message: str) -> None:
    with pytest.raises(UsageError) as info:
        resolve_config(**settings)
    assert message in str(info.value)


def test_unknown_preset_and_config_type() -> None:
    with pytest.raises(UsageError, match="unknown preset 'papr'"):
        resolve_config("papr")
    with pytest.raises(UsageError, match="config must be an AseNasConfig"):
        resolve_config(3)  # type: ignore[arg-type]


def test_floats_are_normalised() -> None:
    assert isinstance(AseNasConfig(learning_rate=1).learning_rate, float)


@pytest.mark.parametrize("seed", [0, 1, MAX_SEED, np.int64(5)])
def test_seed_range(seed: int) -> None:
    assert check_seed(seed) == int(seed)


@pytest.mark.parametrize("seed", [-1, MAX_SEED + 1, 2**64, 1.5, "3", None, True])
def test_bad_seeds_name_the_seed(seed: object) -> None:
    with pytest.raises(UsageError, match=r"tuner seed must be an integer in 0\.\.4294967295"):
        check_seed(seed, "tuner seed")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip(name: str) -> None:
    preset = AseNasConfig.preset(name)
    assert AseNasConfig.from_dict(preset.to_dict()) == preset == resolve_config(name)
    assert resolve_config(name, **preset.to_dict()) == preset


def test_the_paper_preset_is_the_published_method() -> None:
    paper = PRESETS["paper"]
    assert (paper.k, paper.n_steps, paper.hidden_size) == (3, 4, 64)
    assert (paper.learning_rate, paper.weight_decay, paper.entropy_weight) == (9.45e-3, 2.37e-5, 5.05e-4)
    assert (paper.surrogate, paper.restart_pool) == ("none", 0)  # no ranking of draws, no restarts
    assert paper.fallback_radius == 0  # a spent subspace falls back to the nearest unvisited neighbour
    assert paper.climb_radius == 0  # the pick of the draws is proposed as drawn


def test_random_start_warning_only_when_it_takes_over_half_of_a_known_budget() -> None:
    config = AseNasConfig(n_initial=48)
    assert random_start_warning(config, None) is None
    assert random_start_warning(config, 96) is None
    assert random_start_warning(config, 95) == (
        "n_initial 48 makes 48 of the 95 queries random before the policy starts; "
        "a quarter of the budget or less leaves the rest to the policy (n_initial 23)")
    assert "makes all of the 6 queries" in str(random_start_warning(config, 6))
    assert str(random_start_warning(config, 6)).endswith(f"(n_initial {config.k})")  # never below k
    assert random_start_warning(PRESETS["paper"], 5) is None
