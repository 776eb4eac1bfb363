"""The NNI 3.0 listing patch on a copy of NNI's compat.js: exact input, exact output, idempotent, byte-identical
revert, foreign files left alone, and the patched file parses with NNI's own node."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
from pathlib import Path

import pytest

from nni_asenas.errors import UsageError
from nni_asenas.nni_tools import nni_patch


def installed_original() -> bytes:
    """NNI 3.0's original compat.js, from the installed NNI (rebuilt if a developer has applied the patch there)."""
    try:
        found = nni_patch.status()
    except UsageError as exc:
        pytest.skip(str(exc))
    if found.state == "original":
        return found.path.read_bytes()
    if found.state == "patched":
        return nni_patch.original_source(found.path.read_bytes())
    pytest.skip(f"the installed NNI is not 3.0: {found.describe()}")


@pytest.fixture
def compat_js(tmp_path: Path) -> Path:
    path = tmp_path / "nni_node" / nni_patch.COMPAT_JS
    path.parent.mkdir(parents=True)
    path.write_bytes(installed_original())
    path.chmod(0o640)
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_patch_turns_the_exact_original_into_the_exact_patched_file(compat_js: Path) -> None:
    original = compat_js.read_bytes()
    patched = nni_patch.patched_source(original)
    assert hashlib.sha256(patched).hexdigest() == nni_patch.PATCHED_SHA256
    text = patched.decode()
    assert "this.parameters.push" not in text and nni_patch.MARKER in text
    assert text.count("this.allocatedParameters.set(trialId, form.hyperParameters.value)") == 1  # before createTrial
    assert nni_patch.original_source(patched) == original
    with pytest.raises(UsageError, match="not NNI 3.0's compat.js"):
        nni_patch.patched_source(original + b"\n")


def test_patched_file_parses_with_nnis_node(compat_js: Path) -> None:
    spec = importlib.util.find_spec("nni_node")
    assert spec is not None and spec.submodule_search_locations
    node = Path(list(spec.submodule_search_locations)[0], "node")
    nni_patch.apply(compat_js)
    done = subprocess.run([str(node), "--check", str(compat_js)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_apply_is_idempotent_and_revert_restores_byte_for_byte(compat_js: Path) -> None:
    original = compat_js.read_bytes()
    assert nni_patch.status(compat_js).state == "original"
    found, changed = nni_patch.apply(compat_js)
    assert changed and found.state == "patched" and sha(compat_js) == nni_patch.PATCHED_SHA256
    assert found.backup is not None and found.backup.read_bytes() == original
    assert compat_js.stat().st_mode & 0o777 == 0o640
    again, changed = nni_patch.apply(compat_js)
    assert not changed and again.state == "patched" and sha(compat_js) == nni_patch.PATCHED_SHA256
    reverted, changed = nni_patch.revert(compat_js)
    assert changed and reverted.state == "original" and compat_js.read_bytes() == original
    assert reverted.backup is None and sorted(p.name for p in compat_js.parent.iterdir()) == ["compat.js"]
    assert compat_js.stat().st_mode & 0o777 == 0o640
    again, changed = nni_patch.revert(compat_js)
    assert not changed and compat_js.read_bytes() == original


def test_revert_without_the_backup_rebuilds_the_original(compat_js: Path) -> None:
    original = compat_js.read_bytes()
    found, _ = nni_patch.apply(compat_js)
    assert found.backup is not None
    found.backup.unlink()
    _, changed = nni_patch.revert(compat_js)
    assert changed and compat_js.read_bytes() == original


@pytest.mark.parametrize("action", [nni_patch.apply, nni_patch.revert])
def test_a_foreign_file_is_left_alone(compat_js: Path, action: object) -> None:
    compat_js.write_bytes(compat_js.read_bytes() + b"// local change\n")
    before = compat_js.read_bytes()
    assert nni_patch.status(compat_js).state == "unknown"
    with pytest.raises(UsageError, match=r"sha256 [0-9a-f]{64}.*left alone") as exc:
        action(compat_js)  # type: ignore[operator]
    assert str(compat_js) in str(exc.value) and "\n" not in str(exc.value)
    assert compat_js.read_bytes() == before and sorted(p.name for p in compat_js.parent.iterdir()) == ["compat.js"]


def test_a_foreign_file_in_the_backups_place_stops_apply(compat_js: Path) -> None:
    original = compat_js.read_bytes()
    backup = compat_js.with_name("compat.js" + nni_patch.BACKUP_SUFFIX)
    backup.write_text("someone else's file")
    with pytest.raises(UsageError, match="move it away"):
        nni_patch.apply(compat_js)
    assert compat_js.read_bytes() == original and backup.read_text() == "someone else's file"


def test_missing_nni_node_code(tmp_path: Path) -> None:
    path = tmp_path / "compat.js"
    assert nni_patch.status(path).state == "missing"
    with pytest.raises(UsageError, match="does not exist"):
        nni_patch.apply(path)


def test_listing_warning_names_the_command_only_for_the_unfixed_file(compat_js: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nni_patch, "compat_js_path", lambda: compat_js)
    warning = nni_patch.listing_warning()
    assert warning is not None and "nni-asenas nni-patch apply" in warning and str(compat_js) in warning
    nni_patch.apply(compat_js)
    assert nni_patch.listing_warning() is None
    compat_js.write_bytes(b"another NNI")
    assert nni_patch.listing_warning() is None
