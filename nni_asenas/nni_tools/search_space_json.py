"""Turn an NNI model space made of plain choices into NNI's search-space JSON (what ``nnictl`` and tuners read).

Each space module builds its JSON through :func:`search_space_json` from its own model space, so the committed files
under ``search_spaces/`` are generated from the Python space and never edited by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["dump_search_space", "search_space_json"]


def search_space_json(model_space: Any) -> dict[str, dict[str, Any]]:
    """``{label: {"_type": "choice", "_value": [...]}}`` for every mutable of ``model_space``, in definition order.

    Only single choices (``nni.choice`` / ``Categorical``) have a tuner-side equivalent; any other mutable raises
    :class:`ValueError` naming its label.
    """
    from nni.mutable import Categorical, CategoricalMultiple

    space: dict[str, dict[str, Any]] = {}
    for label, mutable in model_space.simplify().items():
        if not isinstance(mutable, Categorical) or isinstance(mutable, CategoricalMultiple):
            raise ValueError(f"mutable {label!r} is a {type(mutable).__name__}; only plain choices map to a search-space JSON")
        space[label] = {"_type": "choice", "_value": list(mutable.values)}
    return space


def dump_search_space(space: dict[str, Any], output: str | Path | None = None) -> str:
    """The JSON text of ``space`` (stable: two-space indent, trailing newline), written to ``output`` if given
    (``"-"`` or None: standard output)."""
    text = json.dumps(space, indent=2) + "\n"
    if output is None or str(output) == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
    return text
