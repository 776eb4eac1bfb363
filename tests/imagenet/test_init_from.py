"""``python -m nni_asenas.trials.imagenet --init-from SUPERNET_CKPT``: fine-tuning starts from the supernet's weights."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from nni_asenas.imagenet import train as imagenet
from nni_asenas.imagenet.supernet import MobileNetSupernet
from nni_asenas.imagenet.supernet_train import checkpoint_state
from nni_asenas.trials import imagenet as program

warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")
ARCH = {"s1_depth": 3, "s2_depth": 2, "s3_depth": 4, "s4_depth": 2, "s5_depth": 3,
        **{f"s{s}_b{b}_kernel": (3, 5, 7)[(s + b) % 3] for s in range(1, 6) for b in range(4)},
        **{f"s{s}_b{b}_expand": (3, 4, 6)[(s * b) % 3] for s in range(1, 6) for b in range(4)}}


@pytest.fixture(scope="module")
def supernet_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, MobileNetSupernet]:
    torch.manual_seed(1)
    supernet = MobileNetSupernet(width_mult=0.25, num_classes=3)
    with torch.no_grad():
        for module in supernet.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("supernet") / "last.pth"
    torch.save(checkpoint_state(supernet, classes=["ant", "bee", "cat"], holdout=6, data_seed=0, img_size=32), path)
    return path, supernet


def test_first_step_starts_from_the_supernet_weights(image_folder: Path, supernet_file: Any, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    path, supernet = supernet_file
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps(ARCH))
    seen: dict[str, Any] = {}
    real_epoch = imagenet.train_one_epoch

    def first_epoch(loop: Any, loader: Any, epoch: int, log_interval: int, *rest: Any, **options: Any) -> Any:
        images, _, _ = next(iter(loader))
        loop.raw.eval()
        with torch.no_grad():
            seen["outputs"] = loop.raw(images)
        seen["state"] = {key: value.clone() for key, value in loop.raw.state_dict().items()}
        return real_epoch(loop, loader, epoch, log_interval, *rest, **options)

    monkeypatch.setattr(imagenet, "train_one_epoch", first_epoch)
    monkeypatch.setattr(imagenet.nni, "report_intermediate_result", lambda value: None)
    monkeypatch.setattr(imagenet.nni, "report_final_result", lambda value: None)
    argv = ["--data", str(image_folder), "--arch", str(arch_file), "--init-from", str(path), "--epochs", "1",
            "--batch-size", "6", "--img-size", "32", "--width-mult", "0.25", "--workers", "0", "--holdout", "6",
            "--max-madds", "0", "--ema-decay", "0", "--output", str(tmp_path / "tuned")]
    assert program.main(argv) == 0
    subnet = supernet.extract(ARCH).eval()
    assert all(torch.equal(value, seen["state"][key]) for key, value in subnet.state_dict().items())
    first_batch = seen["outputs"]
    assert first_batch.shape == (6, 3)
    with torch.no_grad():  # the trial's first batch through the extracted sub-net gives the same outputs
        assert torch.equal(subnet(_first_batch(image_folder, argv)), first_batch)
    assert "weights from the supernet" in (tmp_path / "tuned" / "log.txt").read_text()


def _first_batch(image_folder: Path, argv: list[str]) -> torch.Tensor:
    """The trial's first training batch, rebuilt with its own data pipeline and seeds."""
    from nni_asenas.imagenet.data import build_datasets, build_loaders

    args = program.parse_settings(argv)
    train_set, eval_set, _ = build_datasets(args, ["ant", "bee", "cat"])
    sampler, loader, _ = build_loaders(train_set, eval_set, batch_size=args.batch_size, world=1, rank=0,
                                       seed=args.seed, workers=0, prefetch_factor=2, pin_memory=False)
    sampler.set_epoch(0)
    images, _, _ = next(iter(loader))
    return images


def test_mismatched_supernet_is_named(image_folder: Path, supernet_file: Any, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = supernet_file
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps(ARCH))
    base = ["--data", str(image_folder), "--arch", str(arch_file), "--epochs", "1", "--batch-size", "6",
            "--img-size", "32", "--workers", "0", "--holdout", "6", "--max-madds", "0"]
    assert program.main([*base, "--width-mult", "0.5", "--init-from", str(path), "--output", str(tmp_path / "a")]) == 2
    assert "the supernet has width 0.25, not --width-mult 0.5" in capsys.readouterr().err
    assert program.main([*base, "--width-mult", "0.25", "--init-from", str(tmp_path / "none.pth"),
                          "--output", str(tmp_path / "b")]) == 2
    assert "--init-from: supernet checkpoint" in capsys.readouterr().err


def test_first_step_starts_from_ofa_weights(image_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nni_asenas.imagenet.ofa import OfaSupernetWeights, ofa_layout

    generator = torch.Generator().manual_seed(0)
    state = {key: torch.randn(shape, generator=generator) * 0.1 for key, shape in ofa_layout(3).items()}
    state = {key: value.abs() + 0.5 if key.endswith("running_var") else value for key, value in state.items()}
    path = tmp_path / "ofa.pth"
    torch.save({"state_dict": state}, path)
    arch_file = tmp_path / "arch.json"
    arch_file.write_text(json.dumps(ARCH))
    seen: dict[str, Any] = {}
    real_epoch = imagenet.train_one_epoch

    def first_epoch(loop: Any, loader: Any, epoch: int, log_interval: int, *rest: Any, **options: Any) -> Any:
        seen["state"] = {key: value.clone() for key, value in loop.raw.state_dict().items()}
        return real_epoch(loop, loader, epoch, log_interval, *rest, **options)

    monkeypatch.setattr(imagenet, "train_one_epoch", first_epoch)
    monkeypatch.setattr(imagenet.nni, "report_intermediate_result", lambda value: None)
    monkeypatch.setattr(imagenet.nni, "report_final_result", lambda value: None)
    argv = ["--data", str(image_folder), "--arch", str(arch_file), "--init-from", str(path), "--epochs", "1",
            "--batch-size", "6", "--img-size", "32", "--workers", "0", "--holdout", "6", "--max-madds", "0",
            "--ema-decay", "0", "--output", str(tmp_path / "tuned")]
    assert program.main(argv) == 0
    expected = OfaSupernetWeights(state).subnet_state_dict(ARCH)
    assert all(torch.equal(value, seen["state"][key]) for key, value in expected.items())
