"""Reading what an earlier search wrote: the final candidate set of a ``result.json`` (ASE-NAS+ starts from it).

``nni-asenas search`` and ``nni-asenas bench`` write ``result.json``; the CLI's ``--init``, the tuner's
``initial_architectures`` and the benchmark's ``asenas+`` runs all read its ``candidates`` through
:func:`read_candidates`. Pure JSON, no heavy imports (the tuner reads it at start-up).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from nni_asenas.errors import UsageError

__all__ = ["read_candidates"]


def read_candidates(path: str | os.PathLike[str]) -> list[Any]:
    """The non-empty ``candidates`` list of the ``result.json`` at ``path``, or a :class:`UsageError` saying why not
    (the message names no file: callers prefix it with what they were reading for)."""
    try:
        document = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(exc.strerror or exc.__class__.__name__) from None
    except ValueError as exc:
        raise UsageError(f"not JSON ({exc})") from None
    candidates = document.get("candidates") if isinstance(document, Mapping) else None
    if not isinstance(candidates, list) or not candidates:
        raise UsageError("no 'candidates' list")
    return list(candidates)
