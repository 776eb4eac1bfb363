"""Errors that users can cause and that the CLI reports as one line."""

__all__ = ["DataError", "UsageError"]


class UsageError(ValueError):
    """Bad input from a user (an argument, a file, an architecture). The message is one line naming the culprit."""


class DataError(UsageError):
    """The data a trial reads is at fault (too many unreadable images), not the architecture it evaluates: a search
    must not hold it against the architecture. The message is one line naming the data."""
