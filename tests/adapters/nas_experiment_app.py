"""A tiny real PyTorch NAS experiment on NNI's training-service engine, driven by AseNas.

Run by the slow tests in ``tests/adapters/test_strategy.py`` in a private network namespace (the NNI manager and its web UI
then listen on a loopback-only network). Trials import this module by name, so it runs from its own directory::

    python -c "import sys, nas_experiment_app as app; sys.exit(app.main(sys.argv[1:]))" run WORKDIR PORT OUT.json
    ... resume WORKDIR PORT OUT.json

``ASENAS_TEST_CRASH_MARKER`` names a file: the first trial to create it crashes on purpose.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from typing import Any, Sequence

import nni
import torch
from nni.nas.evaluator import FunctionalEvaluator
from nni.nas.nn.pytorch import LayerChoice, ModelSpace, MutableLinear
from torch import nn

EXPERIMENT_ID = "asenas-ts-test"
N_TRIALS = 4


class TinyNet(ModelSpace):
    """Two linear layers: a hidden width and an activation to choose (9 architectures)."""

    def __init__(self) -> None:
        super().__init__()
        width = nni.choice("width", [4, 8, 16])
        self.fc1 = MutableLinear(2, width)
        self.act = LayerChoice([nn.ReLU(), nn.Tanh(), nn.Sigmoid()], label="act")
        self.fc2 = MutableLinear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def fit(model: nn.Module) -> None:
    """Train briefly on a fixed XOR-like set and report training accuracy (the first trial crashes instead)."""
    try:
        os.close(os.open(os.environ["ASENAS_TEST_CRASH_MARKER"], os.O_CREAT | os.O_EXCL))
        raise RuntimeError("deliberate crash of the first trial")
    except FileExistsError:
        pass
    torch.manual_seed(0)
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    y = ((x[:, 0] * x[:, 1]) > 0).long()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(50):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    with torch.no_grad():
        nni.report_final_result((model(x).argmax(1) == y).float().mean().item())


def _rest(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/nni/{path}", timeout=10) as response:
        return json.load(response)


def main(argv: Sequence[str]) -> int:
    from nni.nas.experiment import NasExperiment, NasExperimentConfig

    from nni_asenas import AseNas

    mode, workdir, port_text, out = argv
    port = int(port_text)
    config = NasExperimentConfig("ts", "simplified", "local")
    config.max_trial_number = N_TRIALS
    config.trial_concurrency = 2
    config.experiment_working_directory = workdir
    strategy = AseNas(seed=0)
    experiment = NasExperiment(TinyNet(), FunctionalEvaluator(fit), strategy, config=config, id=EXPERIMENT_ID)
    summary: dict[str, Any] = {"mode": mode, "max_trial_number": N_TRIALS}
    try:
        if mode == "run":
            experiment.run(port=port)
            summary["history"] = [
                {"id": o.id, "arch": o.arch, "score": o.score}
                for o in strategy.searcher.history
            ]
            summary["top"] = experiment.export_top_models(top_k=3, formatter="dict")
            summary["trial_jobs"] = [job["status"] for job in _rest(port, "trial-jobs")]
            summary["final_metrics"] = [m for m in _rest(port, "metric-data") if m["type"] == "FINAL"]
        else:
            try:
                experiment.resume(port=port)
            except RuntimeError as exc:
                summary["error"] = str(exc)
    finally:
        experiment.stop()
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(summary, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
