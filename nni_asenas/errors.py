"""Errors that users can cause and that the CLI reports as one line."""

__all__ = ["UsageError"]


class UsageError(ValueError):
    """Bad input from a user (an argument, a file, an architecture). The message is one line naming the culprit."""
