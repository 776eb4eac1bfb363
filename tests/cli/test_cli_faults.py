"""Faults of ``nni-asenas`` end in one line and exit 2, checked before long work starts, and nothing is lost:
unwritable ``--output``, seeds out of range, huge seed lists, n_steps out of range, a failed database rename,
deeply nested ``query`` arguments."""

from __future__ import annotations

import functools
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nni_asenas.cli import app as cli
from nni_asenas.nasbench import databases, simulator

REPO = Path(__file__).resolve().parents[2]


def one_line_error(capsys, *argv: str) -> str:
    assert cli.main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nni-asenas: error: ") and "\n" not in err, err
    return err


@pytest.fixture
def no_search(monkeypatch):
    """Fails the test if a search starts: the errors must come before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("the search started before the arguments were checked")

    monkeypatch.setattr(simulator, "run_asenas", refuse)


# ------------------------------------------------------------------------------------------- unwritable output

def test_search_output_under_a_file_is_refused_before_the_search(tmp_path, capsys, no_search):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    err = one_line_error(capsys, "search", "--no-progress", "--output", str(blocker / "run"))
    assert f"--output {blocker / 'run'} is under {blocker}, a file" in err
    err = one_line_error(capsys, "search", "--no-progress", "--output", str(blocker))
    assert f"--output {blocker} exists and is not a directory" in err


def test_bench_output_under_a_file_is_refused_before_any_run(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    started = time.perf_counter()
    err = one_line_error(capsys, "bench", "--seeds", "0", "--strategies", "random", "--dataset", "cifar10",
                         "--no-progress", "--output", str(blocker / "deep" / "dir"))
    assert f"--output {blocker / 'deep' / 'dir'} is under {blocker}, a file" in err
    assert not (blocker.parent / "deep").exists() and time.perf_counter() - started < 30


def read_only_command(directory: Path, argv: list[str]) -> list[str]:
    """``argv`` run where ``directory`` is read-only for it: by permissions for a normal user; for root, whom
    permissions do not stop, in a private mount namespace where it is bind-mounted read-only."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return argv
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("running as root without mount namespaces: no way to make a directory read-only for root")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
    return ["unshare", "--mount", "sh", "-c", script, "sh", str(directory), *argv]


@pytest.mark.parametrize("command", ["search", "bench"])
def test_output_in_a_read_only_folder_is_refused_up_front(command, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    extra = ["--strategies", "random", "--seeds", "0", "--dataset", "cifar10"] if command == "bench" else []
    argv = [sys.executable, "-m", "nni_asenas.cli", command, "--no-progress", "--max-queries", "5", *extra,
            "--output", str(folder / "run")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run(read_only_command(folder, argv), capture_output=True, text=True, env=env, timeout=300)
    folder.chmod(0o755)
    assert done.returncode == 2, done.stderr
    err = done.stderr.strip()
    assert err == f"nni-asenas: error: --output {folder / 'run'}: cannot write there (Read-only file system)" or \
        err == f"nni-asenas: error: --output {folder / 'run'}: cannot write there (Permission denied)", err
    assert done.stdout == "" and list(folder.iterdir()) == []  # nothing ran, nothing half-written
    assert time.perf_counter() - started < 120


def test_a_search_whose_output_vanishes_keeps_its_result(tmp_path, capsys, monkeypatch):
    """The folder was checked before the search; if it is replaced by a file meanwhile, the result goes to a file
    in the temporary folder and the error says which."""
    output = tmp_path / "run"
    real = simulator.run_asenas

    def search_then_break_the_folder(*args, **kwargs):
        result = real(*args, **kwargs)
        shutil.rmtree(output)
        output.write_text("in the way")
        return result

    monkeypatch.setattr(simulator, "run_asenas", search_then_break_the_folder)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    assert cli.main(["search", "--no-progress", "--max-queries", "4", "--n-initial", "2", "--seed", "7",
                     "--output", str(output)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"nni-asenas: error: --output: cannot write {output / 'result.json'} (Not a directory); "
                          f"the result is saved in {tmp_path / 'tmp'}") and "\n" not in err
    rescued = Path(err.rsplit(" is saved in ", 1)[1].removesuffix(" instead"))
    result = json.loads(rescued.read_text())
    assert result["seed"] == 7 and result["queries"] == 4
    assert result["best"]["arch"] in captured.out  # the summary was printed as well


# ------------------------------------------------------------------------------------------- seeds and sizes

@pytest.mark.parametrize("seed", ["-1", str(2**32), str(2**64)])
def test_search_names_a_seed_out_of_range(seed, capsys, no_search):
    err = one_line_error(capsys, "search", "--no-progress", f"--seed={seed}")
    assert err == f"nni-asenas: error: --seed must be an integer in 0..4294967295, got {seed}"


def test_search_and_bench_accept_the_same_seed_range():
    from nni_asenas.cli.bench import parse_seeds
    from nni_asenas.config import MAX_SEED

    assert parse_seeds(f"{MAX_SEED - 1}-{MAX_SEED}") == [MAX_SEED - 1, MAX_SEED]
    with pytest.raises(ValueError, match=f"a seed must be an integer in 0..{MAX_SEED}, got {MAX_SEED + 1}"):
        parse_seeds(f"0-{MAX_SEED + 1}")


@pytest.mark.parametrize("seeds, count", [("0-9999999", 10_000_000), ("0-4294967295", 2**32),
                                          ("0-6000,3000-12000", 12_001)])
def test_bench_refuses_a_huge_seed_list_before_allocating(seeds, count, tmp_path, capsys):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    err = one_line_error(capsys, "bench", "--seeds", seeds, "--no-progress", "--output", str(tmp_path / "out"))
    assert f"--seeds {seeds}: {count} seeds, more than the 10000 one invocation runs" in err
    assert time.perf_counter() - started < 5
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: no gigabytes
    assert not (tmp_path / "out").exists()


def test_bench_accepts_exactly_the_limit():
    from nni_asenas.cli.bench import MAX_SEEDS, parse_seeds

    assert len(parse_seeds(f"0-{MAX_SEEDS // 2 - 1},{MAX_SEEDS // 2}-{MAX_SEEDS - 1},5")) == MAX_SEEDS


@pytest.mark.parametrize("flag", ["--n-steps", "--steps"])
def test_n_steps_has_an_upper_bound(flag, capsys, no_search):
    err = one_line_error(capsys, "search", "--no-progress", flag, "1001")
    assert "n_steps must be an integer in 1..1000, got 1001" in err


# --------------------------------------------------------------------------------------------------- db build

def test_db_build_leaves_no_partial_file_when_the_final_rename_fails(tmp_path, capsys, monkeypatch):
    with gzip.open(databases.NB101_SUBSET_PATH, "rt", encoding="utf-8") as stream:
        records = json.load(stream)[:50]
    subset = tmp_path / "subset.json.gz"
    with gzip.open(subset, "wt", encoding="utf-8") as stream:
        json.dump(records, stream)
    monkeypatch.setattr(databases, "build_nasbench101_db",
                        functools.partial(databases.build_nasbench101_db, subset_path=subset))
    out = tmp_path / "dbs"
    (out / "nasbench101-subset20k.db").mkdir(parents=True)  # a directory where the database goes
    (out / "nasbench101-subset20k.db" / "keep.txt").write_text("mine")
    err = one_line_error(capsys, "db", "build", "--out", str(out), "--only", "nasbench101")
    assert f"cannot write nasbench101 database into {out}" in err
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "nasbench101-subset20k.db", "nasbench101-subset20k.db/keep.txt"]  # no partial file, the user's file kept

    shutil.rmtree(out / "nasbench101-subset20k.db")
    assert cli.main(["db", "build", "--out", str(out), "--only", "nasbench101"]) == 0  # and it works once freed
    assert sorted(p.name for p in out.iterdir()) == ["nasbench101-subset20k.db"]


# ------------------------------------------------------------------------------------------------------ query

@pytest.mark.parametrize("arch, expected", [
    ("[" * 100_000 + "]" * 100_000, "ARCH is 200000 characters long; an architecture takes at most 2000"),
    ("[" * 1000 + "]" * 1000, "ARCH"),
    ('{"a":' * 900 + "1" + "}" * 900, "ARCH"),
    ("(" * 999 + ")" * 999, "ARCH"),
])
def test_query_with_deeply_nested_input_is_a_clear_error(arch, expected, capsys):
    err = one_line_error(capsys, "query", arch)
    assert expected in err and len(err) < 300
