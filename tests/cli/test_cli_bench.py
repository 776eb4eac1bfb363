"""``nni-asenas bench``: argument parsing, one-line errors, the files it writes, resuming."""

from __future__ import annotations

import json

import pytest

import nni_asenas
from nni_asenas.cli import app as cli
from nni_asenas.cli import bench as command
from nni_asenas.comparison import harness, peers
from nni_asenas.errors import UsageError


@pytest.fixture
def main(monkeypatch):
    """``cli.main`` with only this subcommand registered, so the test does not depend on the others."""
    assert "bench" in cli.COMMANDS
    monkeypatch.setattr(cli, "COMMANDS", ("bench",))
    return lambda *args: cli.main(["bench", "--no-progress", "--jobs", "1", *args])


def test_strategy_names_match_the_harness():
    assert command.STRATEGY_NAMES == tuple(harness.STRATEGIES)


def test_parse_seeds():
    assert command.parse_seeds("0-49") == list(range(50))
    assert command.parse_seeds("7") == [7]
    assert command.parse_seeds("5, 0-2,2") == [0, 1, 2, 5]
    for bad, message in [("a", "'a' is not a seed"), ("-1", "'-1' is not a seed"), ("5-3", "'5-3' is empty"),
                         ("1,", "'' is not a seed"), (str(2**32), r"a seed must be an integer in 0\.\.4294967295, got 4294967296")]:
        with pytest.raises(UsageError, match=message):
            command.parse_seeds(bad)


def test_parse_datasets_and_strategies():
    assert command.parse_datasets("all") == ["cifar10", "cifar100", "imagenet16-120"]
    assert command.parse_datasets("CIFAR-100,c100,ImageNet16-120") == ["cifar100", "imagenet16-120"]
    assert command.parse_strategies("tpe, asenas+,tpe") == ["tpe", "asenas+"]
    with pytest.raises(UsageError, match="unknown strategy 'rea'"):
        command.parse_strategies("asenas,rea")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset", "mnist"], "--dataset: unknown dataset 'mnist'"),
        (["--strategies", "asenas,bohb"], "--strategies: unknown strategy 'bohb'"),
        (["--seeds", "3-1"], "--seeds: range '3-1' is empty"),
        (["--budget-seconds", "0"], "--budget-seconds must be a positive number"),
        (["--max-queries", "0"], "--max-queries must be >= 1"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--seeds-for", "optuna-gp"], "--seeds-for: 'optuna-gp' is not STRATEGY=SEEDS"),
        (["--strategies", "random", "--seeds-for", "tpe=0-3"], "--seeds-for: 'tpe' is not one of the strategies run"),
        (["--strategies", "random", "--seeds-for", "random=4-2"], "--seeds-for random: range '4-2' is empty"),
    ],
)
def test_bad_arguments_give_one_line(main, tmp_path, args, message, capsys):
    assert main("--output", str(tmp_path / "out"), *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_budget_and_query_cap_are_exclusive_and_output_is_required(main, tmp_path, capsys):
    assert main("--output", str(tmp_path), "--budget-seconds", "10", "--max-queries", "5") == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert main() == 2
    assert "--output" in capsys.readouterr().err


def test_output_that_is_a_file_is_refused(main, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main("--output", str(tmp_path / "file")) == 2
    assert "exists and is not a directory" in capsys.readouterr().err


def test_bench_writes_every_output_and_resumes(main, tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["--dataset", "cifar10,cifar100", "--strategies", "asenas,asenas+,random", "--seeds", "1",
            "--max-queries", "6", "--output", str(out)]
    assert main(*args) == 0
    printed = capsys.readouterr().out
    assert "| asenas+ |" in printed and "*ASE-NAS, authors (20 seeds)*" in printed and "Signal regret" in printed
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("result.json"))
    assert files == sorted(f"{d}/{s}/seed-{n}/result.json" for d in ("cifar10", "cifar100")
                           for s in ("asenas", "asenas+", "random") for n in (1,))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["max_queries"] == 6 and summary["failures"] == []
    entry = summary["results"]["cifar100"]["strategies"]["asenas+"]
    assert entry["n"] == 1 and entry["queries_mean"] == 6 and entry["seeds"] == [1]
    assert {"mean", "std", "ci95", "found_signal_optimum", "decision_ms_per_query", "wall_seconds", "regret",
            "regrets", "regret_vs_asenas"} <= set(entry)
    assert "ASE-NAS+, authors (20 seeds)" in summary["reference"]["published"]
    assert (out / "summary.md").read_text().startswith("# NAS-Bench-201")
    assert (out / "curves.png").stat().st_size > 0
    # asenas+ on CIFAR-100 started from the CIFAR-10 asenas candidates of the same seed, as written
    source = json.loads((out / "cifar10/asenas/seed-1/result.json").read_text())
    plus = json.loads((out / "cifar100/asenas+/seed-1/result.json").read_text())
    assert plus["settings"]["initial_architectures"] == source["candidates"]

    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("result.json")}
    assert main(*args) == 0  # everything finished: nothing runs again
    assert {p: p.stat().st_mtime_ns for p in out.rglob("result.json")} == stamps
    invocations = json.loads((out / "summary.json").read_text())["invocations"]
    assert [(i["runs_planned"], i["runs_executed"]) for i in invocations] == [(6, 6), (6, 0)]
    assert invocations[0]["code"].startswith(nni_asenas.__version__)
    capsys.readouterr()
    assert main(*args[:-4], "--max-queries", "7", "--output", str(out)) == 2
    assert "holds runs with other settings" in capsys.readouterr().err


def test_seeds_for_gives_one_strategy_other_seeds(main, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main("--dataset", "cifar10", "--strategies", "random,tpe", "--seeds", "0-2", "--seeds-for", "tpe=1",
                "--max-queries", "4", "--output", str(out)) == 0
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("result.json"))
    assert files == [f"cifar10/random/seed-{n}/result.json" for n in range(3)] + ["cifar10/tpe/seed-1/result.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["seeds_for"] == {"tpe": [1]}
    assert summary["results"]["cifar10"]["strategies"]["tpe"]["n"] == 1
    assert summary["results"]["cifar10"]["strategies"]["random"]["n"] == 3


def test_rl_without_its_extra_is_skipped_with_the_reason(main, tmp_path, capsys):
    if peers.rl_unavailable() is None:
        pytest.skip("the 'peers' extra is installed here: rl runs")
    assert main("--strategies", "rl", "--output", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "rl skipped: " in err and "--strategies: nothing left to run" in err


def test_optuna_without_its_extra_is_skipped_with_a_clear_line(main, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(peers, "optuna_unavailable", lambda: "No module named 'optuna' (install the 'peers' extra)")
    out = tmp_path / "bench"
    assert main("--strategies", "optuna-tpe,optuna-tpe-mv,optuna-gp,random", "--dataset", "cifar10", "--seeds", "0",
                "--max-queries", "3", "--output", str(out), "--no-progress") == 0
    err = capsys.readouterr().err
    assert "optuna-tpe skipped: No module named 'optuna'" in err and "optuna-tpe-mv skipped: " in err
    assert "optuna-gp skipped: " in err
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["skipped"]) == {"optuna-tpe", "optuna-tpe-mv", "optuna-gp"}
    assert list(summary["results"]["cifar10"]["strategies"]) == ["random"]
