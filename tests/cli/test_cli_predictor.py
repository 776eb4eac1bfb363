"""``nni-asenas predictor collect|train`` and ``nni-asenas search --space mobilenet --predictor``, end to end.

The supernet is OFA's w1.2 layout with random weights and 4 classes; sub-nets are scored by a minimal evaluator
of this test (BatchNorm recalibration on generated images, then top-1 on other generated images).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nni_asenas.cli import app as cli
from nni_asenas.cli import predictor as predictor_cli
from nni_asenas.imagenet.ofa import OfaSupernetWeights, ofa_layout
from nni_asenas.imagenet.predictor import AccuracyPredictor, read_pairs
from nni_asenas.imagenet.space import count_madds


class GeneratedDataEvaluator:
    """Recalibrate BN on 16 generated 32 px images, then top-1 (percent) on 32 others with fixed labels."""

    def __init__(self, extract, *, seed: int = 0, num_classes: int = 4) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.extract = extract
        self.calibration = torch.randn(16, 3, 32, 32, generator=generator)
        self.images = torch.randn(32, 3, 32, 32, generator=generator)
        self.labels = torch.randint(0, num_classes, (32,), generator=generator)

    def __call__(self, arch) -> float:
        net = self.extract(arch)
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.momentum = None
        with torch.no_grad():
            net.train()(self.calibration)
            logits = net.eval()(self.images)
        return float((logits.argmax(1) == self.labels).float().mean() * 100)


@pytest.fixture
def supernet(tmp_path, monkeypatch):
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in ofa_layout(num_classes=4).items():
        value = torch.randn(shape, generator=generator) * 0.3
        state[key] = value.abs() + 0.5 if key.endswith("running_var") else value
    path = tmp_path / "ofa_w12.pth"
    torch.save({"state_dict": state}, path)
    data = tmp_path / "data"
    data.mkdir()

    def evaluator(args):
        assert Path(args.data) == data  # a str where the supernet search defines --data
        return GeneratedDataEvaluator(OfaSupernetWeights.from_checkpoint(args.ofa).extract)

    monkeypatch.setattr(predictor_cli, "supernet_evaluator", evaluator)
    return path, data


def run(*argv: str) -> int:
    return cli.main(list(argv))


def test_collect_train_search_and_rescore(tmp_path, supernet, capsys):
    checkpoint, data = supernet
    pairs = tmp_path / "pairs.jsonl"
    collect = ("predictor", "collect", "--ofa", str(checkpoint), "--data", str(data), "--output", str(pairs),
               "--no-progress")
    assert run(*collect, "--n", "6") == 0
    assert run(*collect, "--n", "8") == 0  # resumes: two more
    assert "8 measured sub-nets (2 new)" in capsys.readouterr().out
    collected = read_pairs(pairs)
    assert len(collected) == 8 and all(0 <= pair.accuracy <= 100 for pair in collected)

    predictor_file = tmp_path / "predictor.pt"
    assert run("predictor", "train", str(pairs), "--output", str(predictor_file), "--epochs", "20",
               "--train-fraction", "0.5") == 0
    assert "held-out 4: Kendall tau" in capsys.readouterr().out

    out = tmp_path / "search"
    assert run("search", "--space", "mobilenet", "--predictor", str(predictor_file), "--max-queries", "40",
               "--max-madds", "400e6", "--rescore", "2", "--ofa", str(checkpoint), "--data", str(data),
               "--output", str(out), "--no-progress") == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    predictor = AccuracyPredictor.load(predictor_file)
    assert result["queries"] == 40 == len(result["trajectory"]) and result["evaluator"] == {"kind": "predictor", "predictor": str(predictor_file)}
    assert all(count_madds(entry["arch"]) <= 400e6 for entry in result["trajectory"])
    for entry in result["trajectory"][:5]:
        assert entry["top1"] == pytest.approx(predictor.score(entry["arch"]), abs=1e-5)
    assert result["best_predicted"]["top1"] == max(entry["top1"] for entry in result["trajectory"])
    assert len(result["rescored"]) == 2
    assert result["rescored"][0]["predicted_top1"] == result["best_predicted"]["top1"]
    evaluator = GeneratedDataEvaluator(OfaSupernetWeights.from_checkpoint(checkpoint).extract)
    assert result["rescored"][0]["top1"] == evaluator(result["rescored"][0]["arch"])
    assert result["best"]["top1"] == max(item["top1"] for item in result["rescored"])
    assert json.loads((out / "arch.json").read_text()) == result["best"]["arch"]
    assert "measured" in printed and "best (measured top-1" in printed

    # ASE-NAS+: start from the final candidates of that search
    plus = tmp_path / "plus"
    assert run("search", "--space", "mobilenet", "--predictor", str(predictor_file), "--max-queries", "5",
               "--max-madds", "400e6", "--init", str(out / "result.json"), "--output", str(plus), "--no-progress") == 0
    plus_result = json.loads((plus / "result.json").read_text())
    assert plus_result["strategy"] == "asenas+"
    assert [entry["arch"] for entry in plus_result["trajectory"][:len(result["candidates"])]] == result["candidates"]


@pytest.mark.parametrize("argv, needle", [
    (("search", "--space", "mobilenet", "--predictor", "missing.pt"), "predictor missing.pt does not exist"),
    (("search", "--predictor", "p.pt"), "needs --space mobilenet"),
    (("search", "--space", "mobilenet", "--predictor", "p.pt", "--rescore", "2"), "--rescore needs --data"),
    (("search", "--space", "mobilenet", "--predictor", "p.pt", "--max-madds", "-1"), "--max-madds must be"),
    (("search", "--space", "mobilenet", "--predictor", "p.pt", "--max-madds", "3e7", "--max-queries", "5"),
     "--max-madds 30.0 M is below the smallest network of the space (193.1 M MAdds at 224 px)"),
    (("search", "--space", "mobilenet", "--predictor", "p.pt", "--init", "none.json"),
     "--init: cannot read initial architectures from none.json: No such file or directory"),
    (("predictor", "train", "missing.jsonl", "--output", "p.pt"), "pairs file missing.jsonl does not exist"),
    (("predictor", "train", "x.jsonl", "--output", "p.pt", "--epochs", "0"), "epochs must be a positive integer"),
    (("predictor", "collect", "--ofa", "x.pth", "--data", "nowhere", "--n", "3", "--output", "o.jsonl"),
     "--data nowhere is not a directory"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    AccuracyPredictor().save(tmp_path / "p.pt")
    assert run(*argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


DIVERGING_PAIRS = Path(__file__).resolve().parents[1] / "data" / "predictor-diverging-pairs.jsonl"


def test_train_on_pairs_that_used_to_diverge(tmp_path, capsys):
    """Seed 0 diverged at the recipe's learning rate on these real pairs: now it is retried and says so, and a
    training that diverges at every rate tried writes nothing and is one line, exit 2."""
    out = tmp_path / "p.pt"
    assert run("predictor", "train", str(DIVERGING_PAIRS), "--output", str(out), "--seed", "0") == 0
    printed = capsys.readouterr().out
    assert "training diverged at learning rate 0.1 (epoch" in printed and "trained at 0.05" in printed
    assert "nan" not in printed and AccuracyPredictor.load(out).metrics["learning_rate"] == 0.05
    bad = tmp_path / "bad.pt"
    assert run("predictor", "train", str(DIVERGING_PAIRS), "--output", str(bad), "--learning-rate", "1e12",
               "--epochs", "20") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "predictor training diverged" in err and not bad.exists()
