"""``nni-asenas db build``: what it writes, what it says, and its one-line errors."""

from __future__ import annotations

import sqlite3

import pytest

from nni_asenas.cli import app as cli
from nni_asenas.nasbench import databases


@pytest.fixture
def main(monkeypatch):
    """``cli.main`` with only this subcommand registered, so the test does not depend on the others."""
    assert "db" in cli.COMMANDS
    monkeypatch.setattr(cli, "COMMANDS", ("db",))
    return cli.main


def test_build_nasbench101_says_it_is_a_subset(main, tmp_path, capsys):
    assert main(["db", "build", "--out", str(tmp_path / "dbs"), "--only", "nasbench101"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "dbs" / "nasbench101-subset20k.db"
    assert f"nasbench101: wrote {path}" in out
    assert "SUBSET: 20,001 of 423,624 cells, validation accuracy only" in out
    assert f"export {databases.ENV_DB_DIR}={(tmp_path / 'dbs').resolve()}" in out
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM nb101trialconfig").fetchone() == (20001 * 4,)
    assert not (tmp_path / "dbs" / "nasbench201.db").exists()


def test_default_directory_comes_from_the_environment(main, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(databases.ENV_DB_DIR, str(tmp_path / "configured"))
    assert main(["db", "build", "--only", "nasbench101"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "configured" / "nasbench101-subset20k.db").is_file()
    assert "export" not in out  # already where the queries look


def test_missing_action(main, capsys):
    assert main(["db"]) == 2
    assert "nni-asenas: error: missing ACTION: use `nni-asenas db build`" in capsys.readouterr().err


def test_unknown_benchmark(main, capsys):
    assert main(["db", "build", "--only", "nds"]) == 2
    assert "argument --only: invalid choice: 'nds'" in capsys.readouterr().err


def test_out_must_be_a_directory(main, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["db", "build", "--out", str(blocker)]) == 2
    assert f"nni-asenas: error: --out {blocker} is not a directory" in capsys.readouterr().err


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(main, tmp_path, capsys, monkeypatch):
    """SQLite reports a full disk as an OperationalError in the middle of the inserts (measured on a 1 MiB tmpfs):
    simulated here by a connection whose inserts fail the same way."""
    real_connect = sqlite3.connect

    class FullDisk:
        def __init__(self, *args, **kwargs):
            self._conn = real_connect(*args, **kwargs)

        def executemany(self, *args, **kwargs):
            raise sqlite3.OperationalError("database or disk is full")

        def __getattr__(self, name):
            return getattr(self._conn, name)

    monkeypatch.setattr(databases.sqlite3, "connect", FullDisk)
    assert main(["db", "build", "--out", str(tmp_path), "--only", "nasbench101"]) == 2
    err = capsys.readouterr().err
    assert err == f"nni-asenas: error: cannot write nasbench101 database into {tmp_path}: database or disk is full\n"
    assert list(tmp_path.iterdir()) == []


def test_a_storage_error_anywhere_in_a_command_is_one_line(tmp_path, capsys, monkeypatch):
    import errno

    from nni_asenas.cli import query as query_command

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.json"))

    monkeypatch.setattr(query_command, "run", full)
    monkeypatch.setattr(cli, "COMMANDS", ("query",))
    assert cli.main(["query", "0"]) == 2
    assert capsys.readouterr().err == f"nni-asenas: error: {tmp_path / 'out.json'}: No space left on device\n"

    def bug(args):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(query_command, "run", bug)
    with pytest.raises(OSError):  # not a storage failure: a bug, kept as a traceback
        cli.main(["query", "0"])
