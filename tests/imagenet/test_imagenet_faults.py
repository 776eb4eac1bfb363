"""Faults of the ImageNet trial end cleanly: unreadable images are skipped and counted (too many: a one-line data
error, the epoch's work kept), a damaged checkpoint points to ``best.pth``, and out-of-range flags are named."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from imagefolder_data import make_image_folder

from nni_asenas.imagenet import train
from nni_asenas.imagenet.checkpoints import CHECKPOINT_KEYS
from nni_asenas.imagenet.space import decisions
from nni_asenas.trials import imagenet as program

PROGRAM = "nni_asenas.trials.imagenet"
REPO = Path(__file__).resolve().parents[2]




def corrupt(path: Path) -> None:
    path.write_bytes(b"this is not an image")


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("imagefolder"))


@pytest.fixture
def data(clean_data, tmp_path) -> Path:
    """A private copy each test may damage."""
    return Path(shutil.copytree(clean_data, tmp_path / "data"))


@pytest.fixture(scope="module")
def arch_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("arch") / "arch.json"
    path.write_text(json.dumps({label: options[0] for label, options in decisions().items()}))
    return path


@pytest.fixture
def reports(monkeypatch) -> dict[str, list]:
    captured: dict[str, list] = {"intermediate": [], "final": []}
    monkeypatch.setattr(train.nni, "report_intermediate_result", captured["intermediate"].append)
    monkeypatch.setattr(train.nni, "report_final_result", captured["final"].append)
    return captured


def tiny_args(data: Path, output: Path, arch: Path, *extra: str, epochs: int = 1) -> list[str]:
    return ["--data", str(data), "--output", str(output), "--arch", str(arch), "--epochs", str(epochs),
            "--batch-size", "4", "--img-size", "32", "--width-mult", "0.25", "--workers", "0", "--lr", "0.05",
            "--warmup-epochs", "0.5", "--log-interval", "3", *extra]


def one_line_error(argv: list[str], capsys, prefix: str = "error") -> str:
    assert program.main(argv) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith(f"{PROGRAM}: {prefix}: ") and "\n" not in message, message
    return message


# ------------------------------------------------------------------------------------------- unreadable images

def test_a_few_unreadable_images_are_skipped_logged_and_counted(data, arch_file, tmp_path, reports):
    """Read by a data-loader worker process: what it met reaches the main process with the batch."""
    bad_train, cut_train, bad_val = data / "train/ant/0.jpeg", data / "train/bee/3.jpeg", data / "val/cat/1.jpeg"
    corrupt(bad_train)
    truncate(cut_train)
    corrupt(bad_val)
    output = tmp_path / "run"
    argv = tiny_args(data, output, arch_file, "--max-bad-images-fraction", "0.1", "--workers", "1", epochs=2)
    assert program.main(argv) == 0

    log = (output / "log.txt").read_text()
    for path in (bad_train, cut_train, bad_val):
        assert log.count(f"image {path} (") == 1, path  # logged by path, once although met in both epochs
    assert "UnidentifiedImageError" in log
    (final,) = reports["final"]
    assert final["unreadable_images"] == 3
    assert json.loads((output / "results.json").read_text()) == final
    state = torch.load(output / "last.pth", weights_only=True)
    assert state["epoch"] == 2 and state["step"] == 2 * (24 // 4)  # substituted: every training batch was full


def test_an_unreadable_val_image_does_not_lose_the_epoch(data, arch_file, tmp_path, reports, capsys):
    """Evaluation skips it; with the default share (0.1 %) one bad image of 12 is too many, and the run stops with a
    data error only after the epoch is saved."""
    corrupt(data / "val/ant/2.jpeg")
    output = tmp_path / "run"
    message = one_line_error(tiny_args(data, output, arch_file, epochs=3), capsys, prefix="data error")
    assert f"--data {data}: 1 of the 12 evaluation images cannot be read" in message
    assert "--max-bad-images-fraction 0.001 allows (0)" in message and str(data / "val/ant/2.jpeg") in message
    assert torch.load(output / "last.pth", weights_only=True)["epoch"] == 1  # the trained epoch is kept
    assert len(reports["intermediate"]) == 1
    # NNI gets the library's words (settings, not flags): the same fault
    reported = reports["final"][0]["data_error"]
    assert len(reports["final"]) == 1 and reported.startswith(f"data {data}: 1 of the 12 evaluation images")
    assert reported.replace("max_bad_images_fraction", "--max-bad-images-fraction") == \
        message.split("data error: ", 1)[1].replace("--data", "data", 1)


def test_too_many_unreadable_training_images_stop_before_the_epoch_ends(data, arch_file, tmp_path, reports,
                                                                        capsys):
    for index in range(4):
        corrupt(data / "train/bee" / f"{index}.jpeg")
    output = tmp_path / "run"
    message = one_line_error(tiny_args(data, output, arch_file, "--max-bad-images-fraction", "0.05"), capsys,
                             prefix="data error")
    assert "of the 24 training images cannot be read, more than --max-bad-images-fraction 0.05 allows (1)" in message
    assert not (output / "last.pth").exists()
    assert len(reports["final"]) == 1 and "data_error" in reports["final"][0]
    assert "default" not in reports["final"][0]  # NNI's web UI lists it as a trial without a result


def test_a_run_of_unreadable_training_images_is_a_data_error(data, arch_file, tmp_path, reports, capsys,
                                                              monkeypatch):
    """A substitute is looked for among the next MAX_BAD_IN_A_ROW images only (2 here, 64 by default)."""
    from nni_asenas.imagenet import data as data_module
    from nni_asenas.imagenet import engine

    monkeypatch.setattr(data_module, "MAX_BAD_IN_A_ROW", 2)
    monkeypatch.setattr(engine, "MAX_BAD_IN_A_ROW", 2)
    for index in range(3):
        truncate(data / "train/ant" / f"{index}.jpeg")
    message = one_line_error(tiny_args(data, tmp_path / "run", arch_file, "--max-bad-images-fraction", "0.5"),
                             capsys, prefix="data error")
    assert "2 training images in a row cannot be read, the last " in message and "Truncated File Read" in message
    assert "data_error" in reports["final"][0]


def test_inside_a_search_a_data_error_is_not_held_against_the_architecture(data, clean_data, tmp_path, monkeypatch,
                                                                         capsys):
    """The trial as NNI runs it, its results going to AseNasTuner: the architecture whose trial met broken data is
    proposed again, and once the data is fixed its real result is recorded."""
    from nni_asenas.adapters.tuner import AseNasTuner
    from nni_asenas.imagenet.space import search_space_json

    tuner = AseNasTuner(seed=0)
    tuner.update_search_space(search_space_json())
    monkeypatch.setenv("NNI_PLATFORM", "local")
    monkeypatch.setattr(train.nni, "report_intermediate_result", lambda value: None)

    def trial(parameter_id: int) -> tuple[int, dict]:
        params = tuner.generate_parameters(parameter_id)
        monkeypatch.setattr(train.nni, "get_next_parameter", lambda: dict(params))
        monkeypatch.setattr(train.nni, "report_final_result",
                            lambda metric: tuner.receive_trial_result(parameter_id, params, metric))
        argv = ["--data", str(data), "--output", str(tmp_path / f"trial-{parameter_id}"), "--epochs", "1",
                "--batch-size", "4", "--img-size", "32", "--width-mult", "0.25", "--workers", "0", "--lr", "0.05",
                "--max-madds", "0", "--ema-decay", "0"]
        code = program.main(argv)
        if code:
            tuner.trial_end(parameter_id, False)  # NNI: the trial process failed
        return code, params

    corrupt(data / "val/cat/3.jpeg")
    code, first = trial(0)
    assert code == 2 and "data error: --data" in capsys.readouterr().err
    assert tuner.searcher.history == [] and tuner.searcher.is_pending(first)  # not failed, waiting

    shutil.copy(clean_data / "val/cat/3.jpeg", data / "val/cat/3.jpeg")  # the data is fixed
    code, again = trial(1)
    assert code == 0 and again == first  # the same architecture, proposed again
    (observation,) = tuner.searcher.history
    assert observation.arch == first and observation.score is not None


# ------------------------------------------------------------------------------------------------ checkpoints

@pytest.fixture
def finished_run(data, arch_file, tmp_path, reports) -> Path:
    output = tmp_path / "run"
    assert program.main(tiny_args(data, output, arch_file, "--ema-decay", "0")) == 0
    return output


def test_resume_from_a_truncated_checkpoint_points_to_best(finished_run, data, arch_file, capsys):
    last = finished_run / "last.pth"
    last.write_bytes(last.read_bytes()[:1000])
    before = sorted((p.name, p.stat().st_size) for p in finished_run.iterdir())
    message = one_line_error(tiny_args(data, finished_run, arch_file, "--ema-decay", "0", "--resume", epochs=2),
                             capsys)
    assert f"--resume {last}: it cannot be read as a checkpoint" in message
    best = finished_run / "best.pth"
    assert f"{best} (epoch 1) is readable: continue from it with --resume {best}" in message
    assert sorted((p.name, p.stat().st_size) for p in finished_run.iterdir()) == before  # nothing touched

    assert program.main(tiny_args(data, finished_run, arch_file, "--ema-decay", "0", "--resume", str(best),
                                epochs=2)) == 0  # the hint works
    assert torch.load(last, weights_only=True)["epoch"] == 2


@pytest.mark.parametrize("foreign", [{"weights": torch.zeros(3)}, [1, 2, 3], "pickle"])
def test_resume_from_a_foreign_file_says_so(foreign, data, arch_file, tmp_path, capsys):
    path = tmp_path / "other.pth"
    if foreign == "pickle":
        import pickle

        path.write_bytes(pickle.dumps(object, protocol=2))  # refused by torch.load(weights_only=True)
    else:
        torch.save(foreign, path)
    message = one_line_error(tiny_args(data, tmp_path / "out", arch_file, "--resume", str(path)), capsys)
    assert message.startswith(f"{PROGRAM}: error: --resume {path}: ")
    assert "not a checkpoint of this trial" in message or "cannot be read as a checkpoint" in message
    assert "there is no other checkpoint beside it" in message


def test_a_checkpoint_with_the_keys_but_other_weights_does_not_fit(finished_run, data, arch_file, capsys):
    last = finished_run / "last.pth"
    state = torch.load(last, weights_only=True)
    state["model"] = {"conv.weight": torch.zeros(1)}
    torch.save(state, last)
    message = one_line_error(tiny_args(data, finished_run, arch_file, "--ema-decay", "0", "--resume", epochs=2),
                             capsys)
    assert "the checkpoint does not fit this run" in message and "continue from it with --resume" in message
    assert set(CHECKPOINT_KEYS) <= set(torch.load(finished_run / "best.pth", weights_only=True))


# ------------------------------------------------------------------------------------------------------ flags

@pytest.mark.parametrize("flag, value, expected", [
    ("--lr", "-1", "--lr must be in (0, inf), got -1"),
    ("--lr", "0", "--lr must be in (0, inf), got 0"),
    ("--lr", "nan", "--lr must be in (0, inf), got nan"),
    ("--lr-base", "-0.1", "--lr-base must be in (0, inf)"),
    ("--width-mult", "0", "--width-mult must be in (0, inf)"),
    ("--momentum", "-0.5", "--momentum must be in [0, 1)"),
    ("--weight-decay", "-1e-5", "--weight-decay must be in [0, inf)"),
    ("--dropout", "1", "--dropout must be in [0, 1)"),
    ("--val-subset", "-3", "--val-subset must be in (0, inf)"),
    ("--holdout", "-1", "--holdout must be in [0, inf)"),
    ("--min-lr", "inf", "--min-lr must be in [0, inf), got inf"),
    ("--max-bad-images-fraction", "1", "--max-bad-images-fraction must be in [0, 1)"),
    ("--madds-resolution", "0", "--madds-resolution must be at least 1"),
    ("--seed", "-1", "--seed must be an integer in 0..4294967295, got -1"),
    ("--data-seed", str(2**64), f"--data-seed must be an integer in 0..4294967295, got {2**64}"),
])
def test_out_of_range_flags_are_named_before_any_work(flag, value, expected, data, arch_file, tmp_path, reports,
                                                      capsys):
    output = tmp_path / "out"
    message = one_line_error(tiny_args(data, output, arch_file, f"{flag}={value}"), capsys)
    assert expected in message
    assert not output.exists() and not reports["final"]


# ------------------------------------------------------------------------------------------------------- DDP

def _torchrun(argv: list[str]) -> subprocess.CompletedProcess:
    """Two processes with gloo, inside a network namespace with only a loopback when the machine allows it."""
    prefix: list[str] = []
    if shutil.which("unshare") and subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode == 0:
        prefix = ["unshare", "--net", "sh", "-c", 'ip link set lo up 2>/dev/null; exec "$0" "$@"']
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = prefix + [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
                        "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", PROGRAM, *argv]
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=str(REPO))
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)


@pytest.mark.slow
def test_ddp_ranks_skip_count_and_stop_together(data, clean_data, arch_file, tmp_path):
    """Each rank reads its own shard: the counts are summed over ranks, and a data error stops both ranks at the
    same point (none waits for the other) after the epoch is saved."""
    corrupt(data / "train/cat/5.jpeg")
    corrupt(data / "val/bee/0.jpeg")
    output = tmp_path / "ddp"
    done = _torchrun(tiny_args(data, output, arch_file, "--batch-size", "2", "--max-bad-images-fraction", "0.1"))
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((output / "results.json").read_text())
    assert results["unreadable_images"] == 2
    assert torch.load(output / "last.pth", weights_only=True)["step"] == 24 // 4  # full batches on both ranks

    shutil.copy(clean_data / "train/cat/5.jpeg", data / "train/cat/5.jpeg")  # only the val image is bad now
    stopped = tmp_path / "stopped"
    done = _torchrun(tiny_args(data, stopped, arch_file, "--batch-size", "2", epochs=2))
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith(f"{PROGRAM}: data error: ")]
    assert len(errors) == 2 and all("1 of the 12 evaluation images cannot be read" in line for line in errors)
    assert torch.load(stopped / "last.pth", weights_only=True)["epoch"] == 1
