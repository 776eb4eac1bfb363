import json
import subprocess
import sys

import pytest

from nni_asenas.cli import app as cli
from nni_asenas.config import AseNasConfig

RESULT_KEYS = {"strategy", "space", "dataset", "seed", "queries", "simulated_seconds", "wall_seconds", "best",
               "candidates", "trajectory"}


def run_cli(*args):
    return cli.main(["search", "--no-progress", *args])


def test_search_writes_result_json(tmp_path, capsys):
    assert run_cli("--dataset", "cifar100", "--seed", "3", "--max-queries", "30", "--output", str(tmp_path)) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "result.json").read_text())
    assert RESULT_KEYS <= set(result)
    assert set(result["best"]) >= {"arch", "signal", "test_accuracy"}
    assert set(result["trajectory"][0]) >= {"query", "arch", "signal", "simulated_seconds"}
    assert result["queries"] == 30 == len(result["trajectory"]) and result["dataset"] == "cifar100"
    assert len(result["candidates"]) == AseNasConfig().k
    for needle in ("chosen architecture", result["best"]["arch"], "73.5133", "gap to the optimum", "simulated seconds"):
        assert needle in out


def test_a_random_start_over_half_the_queries_is_warned_about_on_stderr(capsys):
    assert run_cli("--max-queries", "20") == 0  # the default start (12) takes over half of 20
    assert "warning: n_initial 12 makes 12 of the 20 queries random before the policy starts" in capsys.readouterr().err
    assert run_cli("--max-queries", "30") == 0
    assert "warning" not in capsys.readouterr().err
    assert run_cli("--max-queries", "30", "--n-initial", "30") == 0
    assert "warning: n_initial 30 makes all of the 30 queries random" in capsys.readouterr().err


def test_a_broken_init_file_is_the_one_line_even_when_the_random_start_would_be_warned_about(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('{"bad": 1')
    assert run_cli("--init", str(broken), "--max-queries", "20") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--init: cannot read initial architectures" in err and "warning" not in err


def test_init_from_a_previous_result_is_asenas_plus(tmp_path, capsys):
    first, second = tmp_path / "c10", tmp_path / "c100"
    assert run_cli("--max-queries", "10", "--output", str(first)) == 0
    assert run_cli("--dataset", "cifar100", "--max-queries", "5", "--init", str(first / "result.json"),
                   "--output", str(second)) == 0
    previous = json.loads((first / "result.json").read_text())
    result = json.loads((second / "result.json").read_text())
    assert result["strategy"] == "asenas+"
    assert [t["arch"] for t in result["trajectory"][:len(previous["candidates"])]] == previous["candidates"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "mnist"], "--dataset: unknown dataset 'mnist'"),
        (["--budget-seconds", "-1"], "--budget-seconds must be a positive number"),
        (["--max-queries", "0"], "--max-queries must be >= 1"),
        (["--k", "0"], "k must be an integer in 1..1000, got 0"),
        (["--n-steps", "1001"], "n_steps must be an integer in 1..1000, got 1001"),
        (["--preset", "nope"], "invalid choice"),
        (["--init", "|nor_conv_9x9~0|"], "--init: initial architecture"),
        (["--init", "missing/result.json"], "cannot read initial architectures from missing/result.json"),
    ],
)
def test_bad_arguments_give_one_line(args, message, capsys):
    assert run_cli(*args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_console_entry_point_reports_errors_without_traceback():
    done = subprocess.run([sys.executable, "-m", "nni_asenas.cli", "search", "--dataset", "nope"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("nni-asenas: error: --dataset") and "Traceback" not in done.stderr
