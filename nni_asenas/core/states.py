"""Versions of saved states: the check that every reader of a saved state (``upgrade_state`` of the searcher, the
strategy and the tuner; the trial ledger) starts with."""

from __future__ import annotations

from typing import Any, Collection, Mapping

__all__ = ["saved_version"]


def saved_version(state: Any, what: str, known: Collection[int]) -> int:
    """The ``version`` of a saved state of ``what`` (``"searcher"``, ``"AseNas"``, ...), one of ``known``; a
    :class:`ValueError` naming ``what`` for anything that is not a state dict or has another version."""
    if not isinstance(state, Mapping):
        raise ValueError(f"a saved {what} state is a dict, got {type(state).__name__}")
    version = state.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in known:
        raise ValueError(f"unsupported {what} state version {version!r}")
    return version
