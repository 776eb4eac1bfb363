"""``nni-asenas query``: argument forms, the printed table, JSON output and one-line errors."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from nni_asenas.cli import app as cli
from nni_asenas.cli.query import parse_arch_argument
from nni_asenas.errors import UsageError

REPO = Path(__file__).parents[2]
BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
HUB_SAMPLE = (
    '{"cell/0_1": "conv_3x3", "cell/0_2": "conv_3x3", "cell/1_2": "conv_3x3", '
    '"cell/0_3": "skip_connect", "cell/1_3": "conv_3x3", "cell/2_3": "conv_1x1"}'
)


@pytest.fixture
def main(monkeypatch):
    """``cli.main`` with only this subcommand registered, so the test does not depend on the others."""
    assert "query" in cli.COMMANDS
    monkeypatch.setattr(cli, "COMMANDS", ("query",))
    return cli.main


def test_parse_arch_argument():
    assert parse_arch_argument("6111") == 6111
    assert parse_arch_argument(" 0 ") == 0
    assert parse_arch_argument("333132") == "333132"  # six digits: an op code, never an index
    assert parse_arch_argument(BEST_C10) == BEST_C10
    assert parse_arch_argument(HUB_SAMPLE)["cell/2_3"] == "conv_1x1"
    assert parse_arch_argument("{'0_1': 'none'}") == {"0_1": "none"}  # as NNI prints a sample
    assert parse_arch_argument("[3, 3, 3, 1, 3, 2]") == [3, 3, 3, 1, 3, 2]
    with pytest.raises(UsageError, match=r"ARCH \"\{'0_1': none\}\" is neither JSON nor a Python literal"):
        parse_arch_argument("{'0_1': none}")


@pytest.mark.parametrize("arch", ["6111", "333132", BEST_C10, HUB_SAMPLE, "[3, 3, 3, 1, 3, 2]"])
def test_query_prints_all_datasets(main, capsys, arch):
    assert main(["query", arch]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"NAS-Bench-201 architecture 6111: {BEST_C10}"
    header = next(line for line in lines if line.startswith("figure"))
    assert header.split()[:4] == ["figure", "cifar10", "cifar100", "imagenet16-120"]
    test200 = next(line for line in lines if line.startswith("test200 "))
    assert test200.split()[1:4] == ["94.3733", "73.2200", "46.7111"]
    assert next(line for line in lines if line.startswith("test200 rank")).split()[2] == "1/15625"
    assert next(line for line in lines if line.startswith("val200_seeds")).split()[1] == "91.684/91.72/91.416"


def test_query_columns_are_aligned(main, capsys):
    assert main(["query", "857"]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[lines.index("") + 1:]
    meaning_column = table[0].index("meaning")
    for line, field in zip(table[1:], ["val12", "test12", "val200"]):
        assert line.startswith(field)
        assert line[meaning_column - 2: meaning_column] == "  " and line[meaning_column] != " "


def test_query_one_dataset_as_json(main, capsys):
    assert main(["query", "9930", "--dataset", "CIFAR-100", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["index"] == 9930 and row["dataset"] == "cifar100"
    assert row["test200"] == pytest.approx(73.5133, abs=1e-3)
    assert row["cost_seconds"] == pytest.approx(0.06 * row["train_time200_s"])


def test_query_all_datasets_as_json(main, capsys):
    assert main(["query", "857", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["imagenet16-120"]["test200"] == pytest.approx(47.3111, abs=1e-3)
    assert set(row) == {"index", "arch_str", "cifar10", "cifar100", "imagenet16-120"}


def test_query_one_dataset_table(main, capsys):
    assert main(["query", "857", "--dataset", "imagenet16-120"]) == 0
    out = capsys.readouterr().out
    assert "cifar10" not in out and "valid_test200" not in out
    assert next(line for line in out.splitlines() if line.startswith("test200 ")).split()[1] == "47.3111"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["query", "20000"], "index 20000 is out of range 0..15624"),
        (["query", "334191"], "digit code '334191': edge 1_3: op id 9 is out of range 0-4"),
        (["query", BEST_C10.replace("skip_connect", "max_pool")], "edge 0_3: unknown op 'max_pool'"),
        (["query", '{"cell/0_1": "conv_3x3"}'], "missing label(s) 0_2, 1_2, 0_3, 1_3, 2_3"),
        (["query", "{oops"], "is neither JSON nor a Python literal"),
        (["query", "6111", "--dataset", "svhn"], "unknown dataset 'svhn' (valid: cifar10, cifar100, imagenet16-120)"),
    ],
)
def test_query_errors_are_one_line(main, capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("nni-asenas: error: ") and message in captured.err
    assert captured.err.count("\n") == 1


needs_full_cli = pytest.mark.skipif(
    importlib.util.find_spec("nni_asenas.cli.search") is None,
    reason="the CLI parser needs every module in cli.COMMANDS",
)


@needs_full_cli
def test_cli_process():
    ok = subprocess.run(
        [sys.executable, "-m", "nni_asenas.cli", "query", "6111", "--dataset", "cifar10"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "94.3733" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "nni_asenas.cli", "query", "|none~0|"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == "nni-asenas: error: arch string '|none~0|' has 1 node group(s) separated by '+', expected 3\n"
