"""ASE-NAS on a supernet: ask/tell with the sub-net evaluator under a MAdds limit, and the CLI around it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Mapping

import pytest
import torch

from nni_asenas.cli.app import main as cli_main
from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet.supernet import MobileNetSupernet
from nni_asenas.imagenet.supernet_search import build_search_evaluator, run_supernet_search
from nni_asenas.imagenet.supernet_train import checkpoint_state

warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")
LIMIT = 40e6  # at 224 px, width 0.25, 3 classes the space spans about 17-65 M MAdds


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, image_folder: Path) -> Path:
    torch.manual_seed(0)
    supernet = MobileNetSupernet(width_mult=0.25, num_classes=3)
    path = tmp_path_factory.mktemp("supernet") / "last.pth"
    torch.save(checkpoint_state(supernet, classes=["ant", "bee", "cat"], holdout=6, data_seed=0, img_size=32), path)
    return path


def test_search_never_proposes_an_over_limit_network(checkpoint: Path, image_folder: Path) -> None:
    supernet, evaluator, _ = build_search_evaluator(str(checkpoint), str(image_folder), calib_images=6,
                                                    batch_size=6, device="cpu")
    asked: list[Mapping[str, Any]] = []

    def scored(arch: Mapping[str, Any]) -> float:
        asked.append(arch)
        return evaluator(arch)

    counters = dict(width_mult=0.25, num_classes=3)
    result = run_supernet_search(scored, max_queries=30, seed=1, max_madds=LIMIT, k=3, **counters)
    assert result["queries"] == len(asked) == len(result["trajectory"]) == 30
    assert all(mobilenet.count_madds(arch, **counters) <= LIMIT for arch in asked)
    assert all(entry["madds"] <= LIMIT for entry in result["trajectory"])
    best = result["best"]
    assert best["top1"] == max(entry["top1"] for entry in result["trajectory"])
    assert best["madds"] == mobilenet.count_madds(best["arch"], **counters) <= LIMIT
    assert best["params"] == mobilenet.count_params(best["arch"], **counters)
    assert len(result["candidates"]) == 3 and result["failed_queries"] == 0
    # deterministic: the same seed and scores give the same search
    again = run_supernet_search(evaluator, max_queries=30, seed=1, max_madds=LIMIT, k=3, **counters)
    assert [e["arch"] for e in again["trajectory"]] == [e["arch"] for e in result["trajectory"]]
    assert evaluator.n_evaluated < evaluator.n_queries  # the second search was answered from the cache


def test_asenas_strategy_with_the_supernet_as_nni_evaluator(checkpoint: Path, image_folder: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import nni.trial
    from nni.nas.execution import SequentialExecutionEngine
    from nni.nas.space import ModelStatus, RawFormatModelSpace

    from nni_asenas import AseNas
    from nni_asenas.imagenet.nni_space import MobileNetLikeSpace
    from nni_asenas.imagenet.supernet_search import as_nni_evaluator

    _, evaluator, _ = build_search_evaluator(str(checkpoint), str(image_folder), calib_images=6, batch_size=6,
                                             device="cpu")
    space = RawFormatModelSpace(MobileNetLikeSpace(width_mult=0.25, num_classes=3, max_madds=LIMIT),
                                as_nni_evaluator(evaluator))
    strategy = AseNas(seed=0, k=2)
    engine = SequentialExecutionEngine(max_model_count=6)
    # the in-process engine leaves its last trial's parameters in NNI's trial module: keep them out of later tests
    monkeypatch.setattr(nni.trial, "_params", getattr(nni.trial, "_params", None), raising=False)
    strategy(space, engine)
    models = list(engine.list_models())
    assert len(models) == 6 and all(model.status == ModelStatus.Trained for model in models)
    for model in models:
        arch = mobilenet.canonical_arch(model.sample)
        assert mobilenet.count_madds(arch, width_mult=0.25, num_classes=3) <= LIMIT
        assert model.metric == evaluator(arch)
    assert evaluator.n_evaluated == len({json.dumps(sorted(mobilenet.canonical_arch(m.sample).items()))
                                         for m in models})


def test_failed_queries_do_not_end_the_search() -> None:
    calls: list[int] = []

    def flaky(arch: Mapping[str, Any]) -> float:
        calls.append(1)
        if len(calls) % 3 == 0:
            raise RuntimeError("out of memory")
        return float(sum(arch[f"s{i}_depth"] for i in range(1, 6)))

    result = run_supernet_search(flaky, max_queries=12, seed=0, max_madds=None)
    assert result["queries"] == 12 and result["failed_queries"] == 4
    assert [entry["top1"] is None for entry in result["trajectory"]] == [i % 3 == 2 for i in range(12)]


def test_cli_search_on_a_supernet(checkpoint: Path, image_folder: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "search"
    argv = ["search", "--space", "mobilenet", "--supernet", str(checkpoint), "--data", str(image_folder),
            "--max-madds", str(LIMIT), "--max-queries", "6", "--calib-images", "6", "--device", "cpu",
            "--no-progress", "--output", str(out), "--seed", "3"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert json.loads((out / "arch.json").read_text()) == result["best"]["arch"]
    assert result["space"] == "mobilenet" and result["queries"] == 6 and result["max_madds"] == LIMIT
    assert result["evaluator"]["evaluation_images"] == 6 and result["evaluator"]["seconds_per_query"] > 0
    assert "its MAdds" in printed and "its parameters" in printed and f"{result['best']['top1']:.2f}" in printed

    assert cli_main(["search", "--space", "mobilenet", "--data", str(image_folder)]) == 2
    assert "needs --supernet CKPT and --data DIR" in capsys.readouterr().err
    assert cli_main([*argv[:-2], "--max-madds", "1e6"]) == 2
    assert "--max-madds 1.0 M is below the smallest network" in capsys.readouterr().err
    assert cli_main(["search", "--supernet", str(checkpoint)]) == 2
    assert "--supernet is for --space mobilenet" in capsys.readouterr().err
