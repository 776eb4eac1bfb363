"""OFA sub-nets scored by the supernet route's evaluator, through ``nni-asenas predictor collect`` and
``nni-asenas search --predictor ... --rescore`` (runs where :mod:`nni_asenas.imagenet.evaluator` is installed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

evaluator_module = pytest.importorskip("nni_asenas.imagenet.evaluator",
                                       reason="needs the supernet route's sub-net evaluator")

from nni_asenas.cli import app as cli  # noqa: E402
from nni_asenas.imagenet.ofa import OfaSupernetWeights, build_ofa_evaluator, ofa_layout  # noqa: E402
from nni_asenas.imagenet.predictor import read_pairs  # noqa: E402

CLASSES = ("ant", "bee", "cat")


def _image_folder(root: Path) -> Path:
    from PIL import Image

    generator = torch.Generator().manual_seed(0)
    for label, name in enumerate(CLASSES):
        folder = root / "train" / name
        folder.mkdir(parents=True)
        for index in range(4):
            noise = torch.randint(0, 60, (20, 26, 3), generator=generator, dtype=torch.uint8)
            Image.fromarray((noise + 90 * label).clamp(max=255).numpy()).save(folder / f"{index}.jpeg")
    return root


def test_ofa_subnets_are_scored_on_held_out_training_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _image_folder(tmp_path / "data")
    generator = torch.Generator().manual_seed(0)
    state = {key: torch.randn(shape, generator=generator) * 0.3 for key, shape in ofa_layout(len(CLASSES)).items()}
    state = {key: value.abs() + 0.5 if key.endswith("running_var") else value for key, value in state.items()}
    checkpoint = tmp_path / "ofa.pth"
    torch.save({"state_dict": state}, checkpoint)
    flags = ["--ofa", str(checkpoint), "--data", str(data), "--holdout", "3", "--calib-images", "3", "--device", "cpu"]
    pairs = tmp_path / "pairs.jsonl"
    assert cli.main(["predictor", "collect", *flags, "--n", "2", "--output", str(pairs), "--no-progress"]) == 0
    collected = read_pairs(pairs)
    evaluate = build_ofa_evaluator(checkpoint, data, holdout=3, calib_images=3, device="cpu")
    assert evaluate.evaluation_images == 3 and evaluate.calibration_images == 3
    # the score is the evaluator's own recipe on the extracted network
    calibration, evaluation, _ = evaluator_module.image_folder_batches(str(data), holdout=3, calib_images=3)
    prepare = evaluate.prepare
    for pair in collected:
        net = OfaSupernetWeights(state).extract(pair.arch)
        evaluator_module.recalibrate_batchnorm(net, calibration, prepare=prepare)
        assert pair.accuracy == evaluator_module.top1_percent(net, evaluation, prepare=prepare) == evaluate(pair.arch)

    assert cli.main(["predictor", "collect", "--ofa", str(checkpoint), "--data", str(data), "--n", "1",
                     "--output", str(tmp_path / "x.jsonl")]) == 2
    assert "needs --holdout N" in capsys.readouterr().err
    predictor = tmp_path / "p.pt"
    more = tmp_path / "more.jsonl"
    for index in range(4):  # predictor training needs 4 pairs: add two synthetic ones to the measured two
        with open(more, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"arch": collected[index % 2].arch, "accuracy": 50.0 + index}) + "\n")
    assert cli.main(["predictor", "train", str(pairs), str(more), "--output", str(predictor), "--epochs", "2",
                     "--train-fraction", "0.5"]) == 0
    out = tmp_path / "search"
    assert cli.main(["search", "--space", "mobilenet", "--predictor", str(predictor), "--max-queries", "5",
                     "--rescore", "1", *flags, "--output", str(out), "--no-progress"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["best"]["top1"] == evaluate(result["best"]["arch"])
