"""Output folders and files of the CLI: checked before long work starts, written so that a result is never lost."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Mapping

from nni_asenas.errors import UsageError
from nni_asenas.search.result import write_result, write_text

__all__ = ["prepare_output_dir", "write_output"]


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


def write_output(path: Path, content: str | Mapping[str, Any], flag: str = "--output") -> None:
    """Write ``content`` (text as it is, anything else as JSON: :func:`nni_asenas.search.result.write_result`) to
    ``path`` atomically; a file that cannot be written is saved in the temporary folder and the one-line
    :class:`UsageError` names ``flag`` and where the text went."""
    try:
        if isinstance(content, str):
            write_text(path, content)
        else:
            write_result(path, content)
    except UsageError as exc:
        raise UsageError(f"{flag}: {exc}") from None
