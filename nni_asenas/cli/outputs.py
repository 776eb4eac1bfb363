"""Output folders and files of the CLI: checked before long work starts, written so that a result is never lost."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from nni_asenas.errors import UsageError
from nni_asenas.search.result import write_result, write_text

__all__ = ["prepare_output_dir", "query_progress", "write_output", "write_winner"]


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


@contextlib.contextmanager
def query_progress(total: int, enabled: bool = True) -> Iterator[Callable[[dict[str, Any]], None] | None]:
    """A progress bar on stderr over ``total`` queries of a MobileNet-like search, showing the best top-1 so far;
    yields the search's ``on_query`` callback (None when ``enabled`` is False) and closes the bar afterwards."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    progress = tqdm(total=total, unit="query", desc="best -", file=sys.stderr, leave=False,
                    bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} queries [{elapsed}<{remaining}]")

    def on_query(entry: dict[str, Any]) -> None:
        best = entry["best_top1"]
        progress.set_description(f"query {entry['query']} best {best:.2f}" if best is not None else "best -",
                                 refresh=False)
        progress.update(1)

    try:
        yield on_query
    finally:
        progress.close()


def write_winner(output: Path, result: Mapping[str, Any]) -> None:
    """``output/result.json`` and, when there is a best architecture, ``output/arch.json`` (the winner, as the
    ImageNet trial's ``--arch`` reads it); prints what was written."""
    write_output(output / "result.json", result)
    if result["best"] is not None:
        write_output(output / "arch.json", result["best"]["arch"])
    print(f"wrote {output / 'result.json'}" + (" and arch.json" if result["best"] is not None else ""))
