"""``nni-asenas nni-patch`` end to end, in a child interpreter that imports a copy of NNI's node package (the
installed NNI is never touched): status codes, one-line messages, idempotence, byte-identical revert."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nni_asenas.errors import UsageError
from nni_asenas.nni_tools import nni_patch

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def nni_node_copy(tmp_path: Path) -> Path:
    """``tmp_path/nni_node`` holding NNI 3.0's original compat.js; returns that file."""
    try:
        found = nni_patch.status()
    except UsageError as exc:
        pytest.skip(str(exc))
    if found.state == "unknown":
        pytest.skip(f"the installed NNI is not 3.0: {found.describe()}")
    data = found.path.read_bytes()
    original = nni_patch.original_source(data) if found.state == "patched" else data
    package = tmp_path / "nni_node"
    (package / nni_patch.COMPAT_JS).parent.mkdir(parents=True)
    (package / "__init__.py").write_text('"""A copy of NNI\'s node package for a test."""\n')
    (package / nni_patch.COMPAT_JS).write_bytes(original)
    return package / nni_patch.COMPAT_JS


def cli(compat_js: Path, *args: str) -> subprocess.CompletedProcess[str]:
    search_path = os.pathsep.join([str(compat_js.parents[3]), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "nni_asenas.cli", "nni-patch", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": search_path})


def test_status_apply_revert_round_trip(nni_node_copy: Path) -> None:
    original = nni_node_copy.read_bytes()
    status = cli(nni_node_copy, "status")
    assert status.returncode == 1 and "not applied" in status.stdout and str(nni_node_copy) in status.stdout
    applied = cli(nni_node_copy, "apply")
    assert applied.returncode == 0 and applied.stdout.startswith("nni-patch: applied to"), applied.stderr
    assert nni_patch.status(nni_node_copy).state == "patched"
    assert cli(nni_node_copy, "status").returncode == 0
    again = cli(nni_node_copy, "apply")
    assert again.returncode == 0 and "already applied" in again.stdout
    reverted = cli(nni_node_copy, "revert")
    assert reverted.returncode == 0 and "reverted" in reverted.stdout and nni_node_copy.read_bytes() == original
    assert sorted(p.name for p in nni_node_copy.parent.iterdir()) == ["compat.js"]
    again = cli(nni_node_copy, "revert")
    assert again.returncode == 0 and "nothing changed" in again.stdout and nni_node_copy.read_bytes() == original


def test_a_foreign_file_exits_2_with_one_line(nni_node_copy: Path) -> None:
    nni_node_copy.write_bytes(nni_node_copy.read_bytes() + b"// another version\n")
    before = nni_node_copy.read_bytes()
    for action in ("apply", "revert"):
        done = cli(nni_node_copy, action)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("nni-asenas: error: nni-patch:") and len(done.stderr.strip().splitlines()) == 1
        assert str(nni_node_copy) in done.stderr
    assert cli(nni_node_copy, "status").returncode == 2
    assert nni_node_copy.read_bytes() == before


def test_unknown_action_is_a_usage_error(nni_node_copy: Path) -> None:
    done = cli(nni_node_copy, "remove")
    assert done.returncode == 2 and "invalid choice" in done.stderr and len(done.stderr.strip().splitlines()) == 1
