"""AseNas() (and its ``paper`` preset) against NNI's Random through ``NasExperiment`` at a real-NAS trial budget.

Trained trials (the ImageNet trial) afford 20-60 trials, so this is where a strategy has to be good without being
tuned for it. The space: 180 architectures of mixed NNI mutables (integer, string and float choices); the score of an
architecture is a seeded random landscape over them (per-decision effects plus pairwise interactions, scaled to
0..1 with the optimum at 1), a new landscape per seed. The strategies run through ``NasExperiment`` on NNI's
sequential engine with ``max_trial_number`` 40, with their default settings (AseNas sees no budget).

    python benchmarks/small_budget.py [--seeds 0-9] [--trials 40]

Prints the mean best score of each strategy (and how often each found the optimum) and writes them as JSON to
``benchmarks/results/small_budget-TRIALS.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

#: Decision label -> options: 3 x 3 x 4 x 5 = 180 architectures.
DECISIONS: dict[str, list[Any]] = {
    "width": [16, 32, 64],
    "activation": ["relu", "gelu", "tanh"],
    "depth": [1, 2, 3, 4],
    "dropout": [0.0, 0.1, 0.2, 0.3, 0.5],
}
STRATEGIES = ("asenas", "asenas-paper", "random")
RESULTS = Path(__file__).resolve().parent / "results"


class Landscape:
    """A seeded score over the space: ``sum_l a_l[x_l] + sum_{l<m} b_lm[x_l, x_m]``, scaled to 0..1."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        labels = list(DECISIONS)
        sizes = [len(DECISIONS[label]) for label in labels]
        self._single = [rng.normal(size=size) for size in sizes]
        self._pairs = {(i, j): 0.7 * rng.normal(size=(sizes[i], sizes[j]))
                       for i, j in itertools.combinations(range(len(labels)), 2)}
        raw = [self._raw(codes) for codes in itertools.product(*(range(size) for size in sizes))]
        self._low, self._high = min(raw), max(raw)

    def _raw(self, codes: tuple[int, ...]) -> float:
        return float(sum(a[c] for a, c in zip(self._single, codes))
                     + sum(b[codes[i], codes[j]] for (i, j), b in self._pairs.items()))

    def __call__(self, sample: dict[str, Any]) -> float:
        codes = tuple(DECISIONS[label].index(sample[label]) for label in DECISIONS)
        return (self._raw(codes) - self._low) / (self._high - self._low)


def _model_space() -> Any:
    """A small PyTorch model space over :data:`DECISIONS`: a width (``nni.choice``), an activation
    (``LayerChoice``), a depth (``Repeat``) and a dropout rate (``nni.choice``)."""
    import nni
    from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableDropout, MutableLinear, Repeat
    from torch import nn

    activations = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}

    class SmallNet(ModelSpace):
        def __init__(self) -> None:
            super().__init__()
            width = nni.choice("width", DECISIONS["width"])
            self.stem = MutableLinear(8, width)
            self.activation = LayerChoice({name: activations[name]() for name in DECISIONS["activation"]},
                                          label="activation")
            self.blocks = Repeat(lambda index: MutableLinear(width, width), nni.choice("depth", DECISIONS["depth"]))
            self.dropout = MutableDropout(nni.choice("dropout", DECISIONS["dropout"]))
            self.head = MutableLinear(width, 2)

        def forward(self, x: Any) -> Any:
            return self.head(self.dropout(self.blocks(self.activation(self.stem(x)))))

    return SmallNet()


def _architecture(model: Any) -> dict[str, Any]:
    """The decisions a frozen SmallNet was built with, read from its layers."""
    activation = next(name for name in DECISIONS["activation"]
                      if type(model.activation).__name__.lower() == name)
    return {"width": model.stem.out_features, "activation": activation, "depth": len(model.blocks),
            "dropout": model.dropout.p}


def run(strategy_name: str, seed: int, trials: int) -> float:
    """The best score one search reaches in ``trials`` trials through ``NasExperiment``."""
    import nni
    from nni.nas.evaluator import FunctionalEvaluator
    from nni.nas.experiment import NasExperiment, NasExperimentConfig
    from nni.nas.strategy import Random

    from nni_asenas import AseNas

    landscape = Landscape(seed)

    def evaluate(model: Any) -> None:
        nni.report_final_result(landscape(_architecture(model)))

    strategies = {"asenas": lambda: AseNas(seed=seed), "asenas-paper": lambda: AseNas("paper", seed=seed),
                  "random": lambda: Random(seed=seed, dedup=True)}
    strategy = strategies[strategy_name]()
    config = NasExperimentConfig("sequential", "simplified")
    config.max_trial_number = trials
    experiment = NasExperiment(_model_space(), FunctionalEvaluator(evaluate), strategy, config=config)
    try:
        experiment.run()
        metrics = [float(m.metric) for m in strategy.list_models()]
    finally:
        experiment.stop()
    return max(metrics)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-9", help="a-b (default 0-9)")
    parser.add_argument("--trials", type=int, default=40, help="max_trial_number (default 40)")
    args = parser.parse_args()
    first, last = map(int, args.seeds.split("-"))
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    report: dict[str, Any] = {"trials": args.trials, "seeds": f"{first}-{last}", "architectures": 180}
    for name in STRATEGIES:
        started = time.time()
        best = [run(name, seed, args.trials) for seed in range(first, last + 1)]
        report[name] = {"best": best, "mean_best": float(np.mean(best)),
                        "found": int(sum(b >= 1.0 - 1e-12 for b in best)), "seconds": round(time.time() - started, 1)}
        print(f"{name:12s} mean best {np.mean(best):.3f} (std {np.std(best):.3f}), optimum found in "
              f"{report[name]['found']} of {len(best)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"small_budget-{args.trials}.json").write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
