"""The ImageNet trial module on a tiny generated ImageFolder (CPU): training, reports, files, resume, errors, DDP."""

from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from imagefolder_data import make_image_folder

from nni_asenas.imagenet import train as imagenet
from nni_asenas.imagenet.data import stratified_subset
from nni_asenas.imagenet.engine import lr_at
from nni_asenas.imagenet.space import MobileNetLike, count_madds, decisions, search_space_json, within_madds
from nni_asenas.trials import imagenet as program

REPO = Path(__file__).resolve().parents[2]
TIMING_COLUMNS = ("epoch_seconds", "train_images_per_s")


def uniform(index: int) -> dict[str, int]:
    return {label: options[index] for label, options in decisions().items()}




@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("imagefolder"))


@pytest.fixture(scope="module")
def arch_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("arch") / "arch.json"
    path.write_text(json.dumps(dict(uniform(0), s3_depth=3, s3_b2_kernel=5, s3_b2_expand=4)))
    return path


class Reports:
    def __init__(self) -> None:
        self.intermediate: list[float] = []
        self.final: list[dict] = []


@pytest.fixture
def reports(monkeypatch) -> Reports:
    captured = Reports()
    monkeypatch.setattr(imagenet.nni, "report_intermediate_result", captured.intermediate.append)
    monkeypatch.setattr(imagenet.nni, "report_final_result", captured.final.append)
    return captured


def tiny_args(data: Path, output: Path, *extra: str, arch: Path | None = None, epochs: int = 1) -> list[str]:
    args = ["--data", str(data), "--output", str(output), "--epochs", str(epochs), "--batch-size", "4",
            "--img-size", "32", "--width-mult", "0.25", "--workers", "0", "--lr", "0.05", "--warmup-epochs", "0.5",
            "--log-interval", "3"]
    if arch is not None:
        args += ["--arch", str(arch)]
    return args + list(extra)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_state(left: object, right: object, where: str = "checkpoint") -> None:
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor) and torch.equal(left, right), where
    elif isinstance(left, dict):
        assert isinstance(right, dict) and left.keys() == right.keys(), where
        for key in left:
            assert_same_state(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, (list, tuple)):
        assert len(left) == len(right), where
        for index, (a, b) in enumerate(zip(left, right)):
            assert_same_state(a, b, f"{where}[{index}]")
    else:
        assert left == right, where


# -------------------------------------------------------------------------------------------------- pure helpers

def test_lr_warms_up_linearly_then_follows_a_cosine():
    lrs = [lr_at(step, total_steps=100, warmup_steps=10, base_lr=0.4, min_lr=0.01) for step in range(100)]
    assert lrs[:10] == pytest.approx([0.04 * (i + 1) for i in range(10)])
    assert lrs[10] == pytest.approx(0.4)
    assert lrs[55] == pytest.approx(0.01 + 0.5 * 0.39)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(100, total_steps=100, warmup_steps=10, base_lr=0.4, min_lr=0.01) == pytest.approx(0.01)
    assert lr_at(0, total_steps=5, warmup_steps=0, base_lr=0.1) == pytest.approx(0.1)


def test_stratified_subset_is_balanced_seeded_and_exact():
    targets = [0] * 60 + [1] * 30 + [2] * 10
    half = stratified_subset(targets, 0.5, seed=3)
    assert [sum(targets[i] == c for i in half) for c in range(3)] == [30, 15, 5]
    assert half == stratified_subset(targets, 0.5, seed=3) != stratified_subset(targets, 0.5, seed=4)
    counted = stratified_subset(targets, 20, seed=0)
    assert len(counted) == 20 and [sum(targets[i] == c for i in counted) for c in range(3)] == [12, 6, 2]
    assert stratified_subset(targets, 1.0, seed=0) == list(range(100))
    for amount, message in ((101, "exceeds the 100 images"), (2.5, "must be whole"), (0, "must be positive")):
        with pytest.raises(imagenet.UsageError, match=message):
            stratified_subset(targets, amount, seed=0, what="--val-subset")


# ------------------------------------------------------------------------------------------------------ training

def test_one_epoch_trains_writes_its_files_and_reports(data, arch_file, tmp_path, reports):
    output = tmp_path / "run"
    assert program.main(tiny_args(data, output, arch=arch_file)) == 0

    assert sorted(p.name for p in output.iterdir()) == ["args.yaml", "best.pth", "last.pth", "log.txt",
                                                        "results.json", "summary.csv"]
    saved = yaml.safe_load((output / "args.yaml").read_text())
    assert saved["args"]["epochs"] == 1 and saved["resolved"]["num_classes"] == 3
    assert saved["resolved"]["train_images"] == 24 and saved["resolved"]["eval_images"] == 12
    rows = read_rows(output / "summary.csv")
    assert len(rows) == 1 and rows[0]["epoch"] == "1"
    assert float(rows[0]["train_loss"]) > 0 and float(rows[0]["train_images_per_s"]) > 0
    assert "images/s" in (output / "log.txt").read_text()

    arch = json.loads(arch_file.read_text())
    network = MobileNetLike(arch, width_mult=0.25, num_classes=3)
    assert reports.intermediate == [pytest.approx(float(rows[0]["ema_top1"]))]  # the EMA is what is kept
    (final,) = reports.final
    assert final == json.loads((output / "results.json").read_text())
    assert final["default"] == final["top1"] == reports.intermediate[0]
    assert final["top5"] == pytest.approx(float(rows[0]["ema_top5"])) == 100.0  # 3 classes: top-5 is everything
    assert final["madds"] == count_madds(arch, width_mult=0.25, num_classes=3)
    assert final["params"] == sum(p.numel() for p in network.parameters())
    state = torch.load(output / "last.pth", weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 24 // 4
    network.load_state_dict(state["model"])  # the checkpoint holds exactly this architecture


def test_resume_continues_with_identical_state(data, arch_file, tmp_path, reports, monkeypatch):
    straight = tmp_path / "straight"
    assert program.main(tiny_args(data, straight, arch=arch_file, epochs=2)) == 0
    assert len(reports.intermediate) == 2

    def killed_after_first_epoch(value: float) -> None:
        raise KeyboardInterrupt

    interrupted = tmp_path / "interrupted"
    monkeypatch.setattr(imagenet.nni, "report_intermediate_result", killed_after_first_epoch)
    assert program.main(tiny_args(data, interrupted, "--workers", "1", arch=arch_file, epochs=2)) == 130
    assert torch.load(interrupted / "last.pth", weights_only=True)["epoch"] == 1

    resumed: list[float] = []
    monkeypatch.setattr(imagenet.nni, "report_intermediate_result", resumed.append)
    assert program.main(tiny_args(data, interrupted, "--resume", arch=arch_file, epochs=2)) == 0
    assert resumed == [reports.intermediate[1]]
    assert reports.final[1] == reports.final[0]
    assert_same_state(torch.load(straight / "last.pth", weights_only=True),
                      torch.load(interrupted / "last.pth", weights_only=True))
    drop = lambda rows: [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]  # noqa: E731
    assert drop(read_rows(straight / "summary.csv")) == drop(read_rows(interrupted / "summary.csv"))
    assert "resumed from" in (interrupted / "log.txt").read_text()


def test_nni_parameters_search_mode_bf16_and_channels_last(data, tmp_path, reports, monkeypatch):
    arch = uniform(1)
    monkeypatch.setenv("NNI_PLATFORM", "local")
    monkeypatch.setattr(imagenet.nni, "get_next_parameter", lambda: dict(arch))
    output = tmp_path / "search"
    argv = tiny_args(data, output, "--train-subset", "0.5", "--holdout", "6", "--val-subset", "3", "--ema-decay", "0",
                     "--amp", "bf16", "--channels-last", "--opt", "rmsprop", "--randaugment", "2,5")
    assert program.main(argv) == 0
    resolved = yaml.safe_load((output / "args.yaml").read_text())["resolved"]
    assert resolved["arch"] == arch and resolved["amp"] == "bfloat16" and resolved["channels_last"] is True
    assert resolved["train_images"] == 9  # (24 - 6 held out) / 2
    assert resolved["eval_images"] == 3 and "held out of train" in resolved["eval_set"]
    rows = read_rows(output / "summary.csv")
    assert rows[0]["ema_top1"] == "" and reports.intermediate == [pytest.approx(float(rows[0]["top1"]))]
    assert reports.final[0]["madds"] == count_madds(arch, width_mult=0.25, num_classes=3)


# -------------------------------------------------------------------------------------------------------- errors

def run_error(argv: list[str], capsys) -> str:
    assert program.main(argv) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("nni_asenas.trials.imagenet: error: ") and "\n" not in message
    return message


def test_over_budget_architecture_is_rejected_before_training(data, tmp_path, reports, capsys):
    (tmp_path / "big.json").write_text(json.dumps(uniform(2)))
    output = tmp_path / "big"
    argv = tiny_args(data, output, "--width-mult", "1.2", arch=tmp_path / "big.json")
    message = run_error(argv, capsys)
    assert "MAdds at 224 px, over --max-madds 600.0 M" in message
    assert not output.exists() and not reports.intermediate and not reports.final


def break_missing_root(root: Path) -> tuple[Path, str]:
    return root / "nowhere", "no such directory"


def break_no_val(root: Path) -> tuple[Path, str]:
    shutil.rmtree(root / "val")
    return root, "val is missing"


def break_no_classes(root: Path) -> tuple[Path, str]:
    shutil.rmtree(root / "train")
    (root / "train").mkdir()
    (root / "train" / "stray.jpeg").write_bytes(b"")
    return root, "has no class folders"


def break_empty_class(root: Path) -> tuple[Path, str]:
    for image in (root / "train" / "bee").iterdir():
        image.unlink()
    return root, "bee holds no images"


def break_val_classes(root: Path) -> tuple[Path, str]:
    (root / "val" / "cat").rename(root / "val" / "dog")
    return root, "'dog' is only in val"


@pytest.mark.parametrize("breakage", [break_missing_root, break_no_val, break_no_classes, break_empty_class,
                                      break_val_classes])
def test_bad_dataset_gives_a_clear_error(breakage, data, arch_file, tmp_path, reports, capsys):
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    root, expected = breakage(copy)
    message = run_error(tiny_args(root, tmp_path / "out", arch=arch_file), capsys)
    assert expected in message and f"--data {root}" in message
    assert not reports.final


def test_bad_architecture_gives_a_clear_error(data, tmp_path, capsys):
    out = tmp_path / "out"
    assert "no such file" in run_error(tiny_args(data, out, arch=tmp_path / "missing.json"), capsys).lower()
    (tmp_path / "broken.json").write_text("{not json")
    assert "not valid JSON" in run_error(tiny_args(data, out, arch=tmp_path / "broken.json"), capsys)
    (tmp_path / "foreign.json").write_text(json.dumps(dict(uniform(0), s1_depth=5)))
    assert "s1_depth=5 is not one of [2, 3, 4]" in run_error(tiny_args(data, out, arch=tmp_path / "foreign.json"),
                                                             capsys)
    assert "no architecture" in run_error(tiny_args(data, out), capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without CUDA")
def test_cuda_requested_but_absent(data, arch_file, tmp_path, capsys):
    message = run_error(tiny_args(data, tmp_path / "out", "--device", "cuda", arch=arch_file), capsys)
    assert "--device cuda: CUDA is not available" in message


def test_existing_checkpoint_needs_resume_and_bad_flags_are_named(data, arch_file, tmp_path, reports, capsys):
    output = tmp_path / "run"
    assert program.main(tiny_args(data, output, "--ema-decay", "0", arch=arch_file)) == 0
    assert "already holds a checkpoint" in run_error(tiny_args(data, output, arch=arch_file), capsys)
    assert "no such checkpoint" in run_error(tiny_args(data, tmp_path / "x", "--resume", str(tmp_path / "no.pth"),
                                                       arch=arch_file), capsys)
    assert "--train-subset" in run_error(tiny_args(data, tmp_path / "x", "--train-subset", "1.5", arch=arch_file),
                                         capsys)
    assert "--randaugment" in run_error(tiny_args(data, tmp_path / "x", "--randaugment", "9", arch=arch_file), capsys)
    assert "fewer than one global batch" in run_error(
        tiny_args(data, tmp_path / "x", "--batch-size", "64", arch=arch_file), capsys)


# ---------------------------------------------------------------------------------------------------- experiment

def test_experiment_runs_this_trial_in_search_mode_and_the_tuner_honours_the_budget():
    from nni.experiment.config import ExperimentConfig

    from nni_asenas.adapters.tuner import AseNasTuner

    config = ExperimentConfig.load(str(REPO / "experiments" / "imagenet-mobilenet.yml"))
    config.validate()
    config = config.canonical_copy()
    assert config.search_space == search_space_json()
    assert (config.trial_gpu_number, config.trial_concurrency) == (1, 8)
    assert config.training_service.gpu_indices == list(range(8))
    argv = shlex.split(config.trial_command)
    assert argv[:3] == ["python3", "-m", "nni_asenas.trials.imagenet"]
    args = program.parse_settings(argv[3:])
    assert args.epochs <= 10 and args.train_subset < 1 and args.holdout > 0 and args.max_madds == 600e6

    class_args = dict(config.tuner.class_args)
    assert class_args["constraint"] == "nni_asenas.imagenet.space:within_madds"
    for max_madds in (class_args["constraint_kwargs"]["max_madds"], 300e6):
        tuner = AseNasTuner(**dict(class_args, constraint_kwargs={"max_madds": max_madds}))
        tuner.update_search_space(config.search_space)
        proposals = [tuner.generate_parameters(i) for i in range(6)]
        assert all(within_madds(p, max_madds=max_madds) for p in proposals), max_madds


# ----------------------------------------------------------------------------------------------------------- DDP

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _private_network_prefix() -> list[str]:
    """Run inside a network namespace with only a loopback when the machine allows it (nothing can listen outside)."""
    if shutil.which("unshare") and subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0:
        return ["unshare", "--net", "sh", "-c", 'ip link set lo up 2>/dev/null; exec "$0" "$@"']
    return []


def torchrun(argv: list[str]) -> subprocess.CompletedProcess:
    command = _private_network_prefix() + [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), "-m", "nni_asenas.trials.imagenet", *argv]
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_two_process_ddp_under_torchrun_with_gloo_and_resume(data, arch_file, tmp_path):
    output = tmp_path / "ddp"
    done = torchrun(tiny_args(data, output, "--batch-size", "2", arch=arch_file, epochs=2))
    log = done.stdout + done.stderr
    assert log.count("Intermediate result:") == 2 and log.count("Final result:") == 1  # rank 0 only
    assert "[rank 1]" not in (output / "log.txt").read_text() and "[rank 0]" in (output / "log.txt").read_text()
    resolved = yaml.safe_load((output / "args.yaml").read_text())["resolved"]
    assert resolved["world_size"] == 2 and resolved["global_batch"] == 4
    state = torch.load(output / "last.pth", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 2 * (24 // 4)
    results = json.loads((output / "results.json").read_text())
    assert results["default"] == results["top1"] and 0 <= results["top1"] <= 100

    done = torchrun(tiny_args(data, output, "--batch-size", "2", "--resume", arch=arch_file, epochs=3))
    log = done.stdout + done.stderr
    assert log.count("Intermediate result:") == 1 and "resumed from" in log
    state = torch.load(output / "last.pth", weights_only=True)
    assert state["epoch"] == 3 and state["step"] == 3 * (24 // 4)
    assert [row["epoch"] for row in read_rows(output / "summary.csv")] == ["1", "2", "3"]
