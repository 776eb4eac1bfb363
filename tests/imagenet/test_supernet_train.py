"""Supernet training (``python -m nni_asenas.trials.supernet``) on a tiny generated ImageFolder (CPU)."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from nni_asenas.imagenet import space as mobilenet
from nni_asenas.imagenet import supernet_train
from nni_asenas.imagenet.supernet import SubnetSampler, largest_arch, smallest_arch
from nni_asenas.imagenet.supernet_search import build_search_evaluator
from nni_asenas.trials import supernet as program

warnings.filterwarnings("ignore", message=".*is found to be not a nn.Module.*")
REPO = Path(__file__).resolve().parents[2]
TIMING = ("epoch_seconds", "train_images_per_s")


def tiny_args(data: Path, output: Path, *extra: str, epochs: int = 2) -> list[str]:
    return ["--data", str(data), "--output", str(output), "--epochs", str(epochs), "--batch-size", "18",
            "--holdout", "6", "--img-size", "32", "--width-mult", "0.25", "--workers", "0", "--lr", "0.05",
            "--warmup-epochs", "0.5", "--calib-images", "6", "--random-subnets", "1", "--log-interval", "1", *extra]


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


def same_state(left: Any, right: Any, where: str = "state") -> None:
    if isinstance(left, torch.Tensor):
        assert torch.equal(left, right), where
    elif isinstance(left, dict):
        assert left.keys() == right.keys(), where
        for key in left:
            same_state(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, (list, tuple)):
        assert len(left) == len(right), where
        for index, (a, b) in enumerate(zip(left, right)):
            same_state(a, b, f"{where}[{index}]")
    else:
        assert left == right, where


def expected_digest(seed: int, steps: range, **plan: Any) -> str:
    digest = ""
    sampler = SubnetSampler(seed=seed, width_mult=0.25, num_classes=3)
    for step in steps:
        digest = supernet_train._digest(supernet_train.step_archs(sampler, step, **plan), digest)
    return digest


@pytest.fixture
def reports(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    captured: dict[str, list] = {"intermediate": [], "final": []}
    monkeypatch.setattr(supernet_train.nni, "report_intermediate_result", captured["intermediate"].append)
    monkeypatch.setattr(supernet_train.nni, "report_final_result", captured["final"].append)
    return captured


def test_step_plans() -> None:
    sampler = SubnetSampler(seed=2)
    sandwich = supernet_train.step_archs(sampler, 5, sampling="sandwich", random_subnets=2)
    assert sandwich[:2] == [mobilenet.canonical_arch(largest_arch()), mobilenet.canonical_arch(smallest_arch())]
    assert sandwich[2:] == [sampler.sample(5, 0), sampler.sample(5, 1)]
    assert supernet_train.step_archs(sampler, 5, sampling="uniform", random_subnets=2) == [sampler.sample(5, 0)]


def test_trains_writes_its_files_reports_and_resumes_exactly(image_folder: Path, tmp_path: Path,
                                                             reports: dict[str, list],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    straight = tmp_path / "straight"
    assert program.main(tiny_args(image_folder, straight)) == 0
    assert {p.name for p in straight.iterdir()} >= {"args.yaml", "summary.csv", "log.txt", "last.pth", "results.json"}
    state = torch.load(straight / "last.pth", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 2 and state["holdout"] == 6  # 18 images: one step per epoch
    table = rows(straight / "summary.csv")
    assert [row["epoch"] for row in table] == ["1", "2"]
    assert table[1]["subnets"] == expected_digest(0, range(1, 2), sampling="sandwich", random_subnets=1)
    results = json.loads((straight / "results.json").read_text())
    assert reports["final"] == [results] and len(reports["intermediate"]) == 2
    assert results["default"] == results["largest_top1"] == float(table[1]["largest_top1"])
    resolved = yaml.safe_load((straight / "args.yaml").read_text())["resolved"]
    assert resolved["train_images"] == 18 and resolved["subnets_per_step"] == 3

    # the search scores the largest sub-net exactly as the trainer's last epoch did (same split, same BN recipe)
    _, evaluator, meta = build_search_evaluator(str(straight / "last.pth"), str(image_folder), calib_images=6,
                                                batch_size=18, device="cpu")
    assert meta["holdout"] == 6 and evaluator.evaluation_images == 6
    assert evaluator(largest_arch()) == results["largest_top1"]

    def killed_after_first_epoch(value: float) -> None:
        raise KeyboardInterrupt

    interrupted = tmp_path / "interrupted"
    monkeypatch.setattr(supernet_train.nni, "report_intermediate_result", killed_after_first_epoch)
    assert program.main(tiny_args(image_folder, interrupted)) == 130
    assert torch.load(interrupted / "last.pth", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(supernet_train.nni, "report_intermediate_result", lambda value: None)
    assert program.main(tiny_args(image_folder, interrupted, "--resume")) == 0
    same_state(torch.load(straight / "last.pth", weights_only=True),
               torch.load(interrupted / "last.pth", weights_only=True))
    assert rows(straight / "summary.csv") == rows(interrupted / "summary.csv")
    assert "resumed from" in (interrupted / "log.txt").read_text()


def test_uniform_sampling_under_a_madds_limit(image_folder: Path, tmp_path: Path, reports: dict[str, list]) -> None:
    limit = 30e6
    output = tmp_path / "uniform"
    assert program.main(tiny_args(image_folder, output, "--sampling", "uniform", "--max-madds", str(limit),
                                         "--batch-size", "9", epochs=1)) == 0
    plan = dict(sampling="uniform", random_subnets=1)
    sampler = SubnetSampler(seed=0, max_madds=limit, width_mult=0.25, num_classes=3)
    digest = ""
    for step in range(2):
        archs = supernet_train.step_archs(sampler, step, **plan)
        assert all(sampler.madds(arch) <= limit for arch in archs)
        digest = supernet_train._digest(archs, digest)
    assert rows(output / "summary.csv")[0]["subnets"] == digest


def test_bad_inputs_are_named(image_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert program.main(tiny_args(image_folder, tmp_path / "a", "--batch-size", "19")) == 2
    assert "fewer than one global batch" in capsys.readouterr().err
    assert program.main(tiny_args(image_folder, tmp_path / "b", "--max-madds", "1e6")) == 2
    assert "below the smallest network" in capsys.readouterr().err
    with pytest.raises(Exception, match="no such file"):
        supernet_train.load_supernet(tmp_path / "missing.pth")
    torch.save({"model": {}}, tmp_path / "other.pth")
    with pytest.raises(Exception, match="not a checkpoint of"):
        supernet_train.load_supernet(tmp_path / "other.pth")


# ------------------------------------------------------------------------------------------- two processes

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _torchrun(argv: list[str]) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "nni_asenas.trials.supernet",
               *argv]
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0:
        command = ["unshare", "--net", "sh", "-c", 'ip link set lo up 2>/dev/null; exec "$0" "$@"'] + command
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
                            start_new_session=True)


def _finish(process: subprocess.Popen, timeout: float = 600) -> str:
    try:
        out, _ = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, out[-3000:]
    return out


@pytest.mark.slow
def test_two_processes_train_the_same_subnets_and_resume_exactly_after_a_kill(image_folder: Path,
                                                                             tmp_path: Path) -> None:
    # 2 processes x 9 images = one step per epoch: two epochs are the two steps
    straight = tmp_path / "straight"
    out = _finish(_torchrun(tiny_args(image_folder, straight, "--batch-size", "9")))
    assert out.count("Final result:") == 1
    table = rows(straight / "summary.csv")
    plan = dict(sampling="sandwich", random_subnets=1)
    assert [row["subnets"] for row in table] == [expected_digest(0, range(1), **plan),
                                                 expected_digest(0, range(1, 2), **plan)]
    resolved = yaml.safe_load((straight / "args.yaml").read_text())["resolved"]
    assert resolved["world_size"] == 2 and resolved["global_batch"] == 18

    killed = tmp_path / "killed"
    process = _torchrun(tiny_args(image_folder, killed, "--batch-size", "9"))
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and process.poll() is None:
            last = killed / "last.pth"
            if last.exists() and torch.load(last, weights_only=True)["epoch"] == 1:
                break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the whole torchrun tree, mid-way through the second step
        process.wait()
    assert torch.load(killed / "last.pth", weights_only=True)["epoch"] == 1
    _finish(_torchrun(tiny_args(image_folder, killed, "--batch-size", "9", "--resume")))
    same_state(torch.load(straight / "last.pth", weights_only=True), torch.load(killed / "last.pth", weights_only=True))
    assert rows(straight / "summary.csv") == rows(killed / "summary.csv")



def test_unreadable_training_images_are_counted_or_stop_the_run(image_folder: Path, tmp_path: Path,
                                                                reports: dict[str, list],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from torchvision.datasets import ImageFolder

    from nni_asenas.imagenet.data import stratified_subset

    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    folder = ImageFolder(str(data / "train"))
    held = set(stratified_subset(folder.targets, 6, 0, what="--holdout"))  # as --holdout 6 --data-seed 0
    rest = [index for index in range(len(folder)) if index not in held]
    calibration = {rest[i] for i in stratified_subset([folder.targets[i] for i in rest], 6, 3, what="calibration")}
    victim = next(index for index in rest if index not in calibration)  # trained on, never scored
    Path(folder.samples[victim][0]).write_bytes(b"not a jpeg")
    common = ["--sampling", "uniform", "--batch-size", "9", "--max-bad-images-fraction"]
    assert program.main(tiny_args(data, tmp_path / "strict", *common, "0", epochs=1)) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert program.main(tiny_args(data, tmp_path / "lenient", *common, "0.2", epochs=1)) == 0
    assert [row["train_bad_images"] for row in rows(tmp_path / "lenient" / "summary.csv")] == ["1.0"]
