"""Errors that users can cause and that the CLI reports as one line, and the mapping of library errors (which name
parameters) onto the flags a user typed."""

from __future__ import annotations

import contextlib
import re
from typing import Iterator, Mapping

__all__ = ["DataError", "UsageError", "flag_errors"]


class UsageError(ValueError):
    """Bad input from a user (an argument, a file, an architecture). The message is one line naming the culprit."""


class DataError(UsageError):
    """The data a trial reads is at fault (too many unreadable images), not the architecture it evaluates: a search
    must not hold it against the architecture. The message is one line naming the data."""


@contextlib.contextmanager
def flag_errors(flags: Mapping[str, str]) -> Iterator[None]:
    """Re-raise a library's :class:`UsageError` (or :class:`DataError`) with each parameter name of ``flags``
    (``max_queries``) replaced by its flag (``--max-queries``): the library speaks Python, the user typed flags."""
    try:
        yield
    except UsageError as exc:
        # a name inside a word or a path (``/data/train``, ``data.json``) is not the parameter
        pattern = re.compile(r"(?<![\w\-/\\.])(" + "|".join(map(re.escape, flags)) + r")(?![\w\-/\\]|\.\w)")
        message = pattern.sub(lambda match: flags[match.group(1)], str(exc)) if flags else str(exc)
        raise type(exc)(message) from None
