"""Output folders and files of the CLI: checked before long work starts, written so that a result is never lost."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from nni_asenas.errors import UsageError

__all__ = ["prepare_output_dir", "write_result"]


def prepare_output_dir(path: Path, flag: str = "--output") -> Path:
    """Create ``path`` (and its parents) and check that a file can be written in it, so that a search or benchmark
    does not find out only at its end; a one-line :class:`UsageError` naming ``flag`` and the culprit otherwise."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir():
                culprit = "exists and is not a directory" if parent == path else f"is under {parent}, a file"
                raise UsageError(f"{flag} {path} {culprit}")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".nni-asenas-write-check-"):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


def write_result(path: Path, text: str, flag: str = "--output") -> None:
    """Write ``text`` to ``path`` atomically. If that fails (the folder went away or became read-only during a long
    run), the text goes to a file in the system's temporary folder and the :class:`UsageError` says where."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
        return
    except OSError as exc:
        reason = exc.strerror or str(exc)
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass
    handle, rescue = tempfile.mkstemp(prefix=f"nni-asenas-{path.stem}-", suffix=path.suffix)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    raise UsageError(f"{flag}: cannot write {path} ({reason}); the result is saved in {rescue} instead")
