"""An explicit, reversible fix for NNI 3.0's trial listing: ``nni-asenas nni-patch apply | revert | status``.

NNI 3.0 runs local and remote experiments through ``nni_node/training_service/v3/compat.js``. There, a submitted
trial's parameters go onto one queue and the queue's head goes to whichever trial process asks first, while the
manager lists each trial with the parameters it was submitted with. When several trials start together, the web UI
table, "Copy as json", ``/api/v1/nni/trial-jobs`` and ``nnictl experiment export`` then show a trial with another
trial's parameters (microsoft/nni#5693, #5726; NNI is no longer maintained). The metric a trial reports carries the
parameter id it really ran, so tuners pair results correctly; only the listing is wrong.

Nothing outside NNI's JavaScript can fix that: the trial asks for "a parameter" and the queue decides. So this module
rewrites that one file, and only when the user runs the command: the trial's id is chosen before the trial is
created and its parameters are bound to that id, so the trial that asks gets exactly the parameters NNI lists for it
(resumed trials, which NNI already bound by id, are bound before they start too). The patch

* applies only to the exact NNI 3.0 file (checked by sha256) and produces one exact file (also checked);
* is idempotent (applying twice, or reverting an unpatched file, changes nothing);
* keeps the original next to it (``compat.js.nni-asenas-orig``) and ``revert`` restores it byte for byte (if the
  backup is gone, the original is rebuilt from the patched file and checked against the same sha256);
* writes through a temporary file and an atomic rename, keeping the file's mode.

Nothing here runs at import time; :func:`listing_warning` only reads the file (the tuner logs its message).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from nni_asenas.errors import UsageError

__all__ = [
    "BACKUP_SUFFIX", "ORIGINAL_SHA256", "PATCHED_SHA256", "PatchStatus", "apply", "compat_js_path", "listing_warning",
    "original_source", "patched_source", "revert", "status",
]

COMPAT_JS = Path("training_service", "v3", "compat.js")  # inside the nni_node package
ORIGINAL_SHA256 = "9334774e798bd14efc5ccc0c78eef8d5fd14f91ead38ab71e9f468cdf9c05e99"  # nni 3.0 wheel
PATCHED_SHA256 = "8ebb1bb787dcfc25620d29976539075282be53787c8dea8672adedaf6643296d"  # patched_source(original)
BACKUP_SUFFIX = ".nni-asenas-orig"
MARKER = "nni-asenas nni-patch"

# (original text, patched text): each original occurs exactly once in NNI 3.0's compat.js.
_EDITS: tuple[tuple[str, str], ...] = (
    (
        'const factory_1 = require("./factory");\n',
        'const factory_1 = require("./factory");\n'
        f'const utils_asenas_1 = require("common/utils"); // {MARKER}\n',
    ),
    (  # resuming a trial: bind its parameters before it can ask for them
        "                trialId = await this.v3.createTrial(form.envId, this.config.trialCommand, 'trial_code', "
        "form.sequenceId, form.id);\n",
        "                trialId = await this.asenasCreateTrial(form.envId, form, form.id);\n",
    ),
    (  # the first-come-first-served queue goes
        "        if (trialId === null) {\n"
        "            this.parameters.push(form.hyperParameters.value);\n"
        "        }\n"
        "        else {\n"
        "            this.allocatedParameters.set(trialId, form.hyperParameters.value);\n"
        "        }\n",
        "",
    ),
    (  # a new trial: choose its id, bind its parameters, then create it
        "                trialId = await this.v3.createTrial(envId, this.config.trialCommand, 'trial_code', "
        "form.sequenceId);\n",
        "                trialId = await this.asenasCreateTrial(envId, form, null);\n",
    ),
    (
        "    async updateTrialJob(_trialJobId, _form) {\n",
        "    async asenasCreateTrial(envId, form, wantedId) {\n"
        f"        // {MARKER}: the trial id is chosen here and the trial's parameters are bound to it before the trial\n"
        "        // starts, so every trial runs the parameters NNI lists for it (upstream hands queued parameters to\n"
        "        // whichever trial asks first, microsoft/nni#5726). Undo with `nni-asenas nni-patch revert`.\n"
        "        let trialId = wantedId;\n"
        "        while (!trialId || (wantedId === null && (this.trialJobs[trialId] !== undefined\n"
        "                || this.allocatedParameters.has(trialId)))) {\n"
        "            trialId = (0, utils_asenas_1.uniqueString)(5);\n"
        "        }\n"
        "        this.allocatedParameters.set(trialId, form.hyperParameters.value);\n"
        "        let created = null;\n"
        "        try {\n"
        "            created = await this.v3.createTrial(envId, this.config.trialCommand, 'trial_code', form.sequenceId, "
        "trialId);\n"
        "        }\n"
        "        finally {\n"
        "            if (created !== trialId) {\n"
        "                this.allocatedParameters.delete(trialId);\n"
        "                if (created) {\n"
        "                    this.allocatedParameters.set(created, form.hyperParameters.value);\n"
        "                }\n"
        "            }\n"
        "        }\n"
        "        if (created) {\n"
        f"            logger.info('Trial', created, 'is bound to the parameters of sequence', form.sequenceId, "
        f"'({MARKER})');\n"
        "        }\n"
        "        return created;\n"
        "    }\n"
        "    async updateTrialJob(_trialJobId, _form) {\n",
    ),
)


def patched_source(original: bytes) -> bytes:
    """NNI 3.0's compat.js with the listing fix. Raises :class:`UsageError` for any other file."""
    if _sha256(original) != ORIGINAL_SHA256:
        raise UsageError(f"nni-patch: not NNI 3.0's compat.js (sha256 {_sha256(original)}, expected {ORIGINAL_SHA256})")
    text = original.decode("utf-8")
    for old, new in _EDITS:
        text = text.replace(old, new, 1)
    return text.encode("utf-8")


def original_source(patched: bytes) -> bytes:
    """The inverse of :func:`patched_source` (used by revert when the backup is gone), checked by sha256."""
    text = patched.decode("utf-8")
    for old, new in reversed(_EDITS):
        if new:
            text = text.replace(new, old, 1)
        else:  # the removed queue block came right before the loop that creates a new trial
            anchor = "        while (trialId === null) {\n"
            text = text.replace(anchor, old + anchor, 1)
    data = text.encode("utf-8")
    if _sha256(data) != ORIGINAL_SHA256:
        raise UsageError("nni-patch: cannot rebuild NNI 3.0's compat.js from the patched file")
    return data


@dataclass(frozen=True)
class PatchStatus:
    """What :func:`status` found: ``state`` is ``original`` (NNI 3.0 as installed, listing unfixed), ``patched``,
    ``unknown`` (another file: not touched) or ``missing`` (no NNI node code at ``path``)."""

    path: Path
    state: str
    sha256: str | None
    backup: Path | None  # the saved original, if present

    def describe(self) -> str:
        if self.state == "patched":
            return f"applied: {self.path} lists every trial with the parameters it runs"
        if self.state == "original":
            return (f"not applied: {self.path} is NNI 3.0's original, which can list a trial with another trial's "
                    "parameters when several start together; `nni-asenas nni-patch apply` fixes it")
        if self.state == "missing":
            return f"not applicable: {self.path} does not exist (NNI 3.0's node code is not installed there)"
        return (f"not applicable: {self.path} has sha256 {self.sha256}, neither NNI 3.0's original nor this patch "
                "(another NNI version?); it is left alone")


def compat_js_path() -> Path:
    """compat.js of the NNI this interpreter imports (found without importing NNI)."""
    spec = importlib.util.find_spec("nni_node")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise UsageError("nni-patch: NNI's node code (package nni_node, part of the nni wheel) is not installed")
    return Path(locations[0], COMPAT_JS)


def status(path: Path | None = None) -> PatchStatus:
    """Where the compat.js at ``path`` (default: the installed NNI's) stands."""
    path = compat_js_path() if path is None else Path(path)
    backup = _backup_path(path)
    present = backup if backup.is_file() else None
    try:
        digest = _sha256(path.read_bytes())
    except FileNotFoundError:
        return PatchStatus(path, "missing", None, present)
    except OSError as exc:
        raise UsageError(f"nni-patch: cannot read {path}: {exc.strerror or exc}") from None
    state = {ORIGINAL_SHA256: "original", PATCHED_SHA256: "patched"}.get(digest, "unknown")
    return PatchStatus(path, state, digest, present)


def apply(path: Path | None = None) -> tuple[PatchStatus, bool]:
    """Patch NNI 3.0's compat.js (backup first). Returns the new status and whether anything changed."""
    before = status(path)
    if before.state == "patched":
        return before, False
    _require_known(before)
    original = before.path.read_bytes()
    backup = _backup_path(before.path)
    if backup.exists() and _sha256(_read(backup)) != ORIGINAL_SHA256:
        raise UsageError(f"nni-patch: {backup} exists and is not NNI 3.0's compat.js; move it away first")
    if not backup.exists():
        _write_atomic(backup, original, like=before.path)
    _write_atomic(before.path, patched_source(original), like=before.path)
    after = status(before.path)
    if after.state != "patched":  # somebody else wrote the file in between
        raise UsageError(f"nni-patch: {after.path} changed while it was being patched (sha256 {after.sha256})")
    return after, True


def revert(path: Path | None = None) -> tuple[PatchStatus, bool]:
    """Restore NNI 3.0's original compat.js byte for byte. Returns the new status and whether anything changed."""
    before = status(path)
    backup = _backup_path(before.path)
    if before.state == "original":
        if before.backup is not None and _sha256(_read(backup)) == ORIGINAL_SHA256:
            _unlink(backup)  # a leftover identical copy
        return status(before.path), False
    _require_known(before)
    data = _read(backup) if before.backup is not None else b""
    if _sha256(data) != ORIGINAL_SHA256:
        data = original_source(before.path.read_bytes())
    _write_atomic(before.path, data, like=before.path)
    after = status(before.path)
    if after.state != "original":
        raise UsageError(f"nni-patch: {after.path} changed while it was being reverted (sha256 {after.sha256})")
    if backup.exists():
        _unlink(backup)
    return status(before.path), True


def listing_warning() -> str | None:
    """A warning for the log when the installed NNI is 3.0's unfixed compat.js, else None. Reads, never writes."""
    try:
        found = status()
    except UsageError:
        return None
    if found.state != "original":
        return None
    return (f"NNI 3.0 ({found.path}) can list a trial with another trial's parameters when several trials start "
            "together (web UI, nnictl experiment export; microsoft/nni#5726). Run `nni-asenas nni-patch apply` once "
            "to fix it (README, section nnictl). Until then, each final metric's parameter_id names the parameters "
            "its trial ran.")


# ---------------------------------------------------------------------------------------------------- internals


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _backup_path(path: Path) -> Path:
    return path.with_name(path.name + BACKUP_SUFFIX)


def _require_known(found: PatchStatus) -> None:
    if found.state in ("missing", "unknown"):
        raise UsageError(f"nni-patch: {found.describe()}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"nni-patch: cannot read {path}: {exc.strerror or exc}") from None


def _write_atomic(path: Path, data: bytes, *, like: Path) -> None:
    tmp = path.with_name(path.name + ".nni-asenas-tmp")
    try:
        mode = like.stat().st_mode & 0o7777
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise UsageError(f"nni-patch: cannot write {path}: {exc.strerror or exc} (run it as the user who installed NNI)"
                         ) from None


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError as exc:
        raise UsageError(f"nni-patch: cannot remove {path}: {exc.strerror or exc}") from None
