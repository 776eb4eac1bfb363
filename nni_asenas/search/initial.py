"""The one reader of initial architectures (ASE-NAS+ starts): ``--init``, ``initial_architectures`` and the tuner.

An item is an architecture or a JSON file of them:

- a mapping (``{label: option}``) is an architecture;
- a text that names a file (it ends in ``.json``, holds a path separator, or exists) is read as JSON: a
  ``result.json`` (an object with ``candidates``, or with other :data:`~nni_asenas.search.result.RESULT_KEYS`) gives
  its final candidates, a list gives its items, any other object is one architecture;
- any other text is an architecture in a route's text form (a NAS-Bench-201 arch string, a table index, ...).

The route's ``parse`` turns each architecture into its canonical form (a ``ValueError`` names the architecture);
duplicates are dropped, first occurrence kept.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

from nni_asenas.errors import UsageError
from nni_asenas.search.result import RESULT_KEYS, candidates_of, read_json

__all__ = ["names_a_file", "read_initial_architectures"]

T = TypeVar("T")


def read_initial_architectures(items: str | os.PathLike[str] | Iterable[Any],
                               parse: Callable[[Any], T] | None = None) -> list[T]:
    """The architectures ``items`` give (one item, or an iterable of them; see the module docstring), each through
    ``parse`` (None: as read, mappings and texts alike). A :class:`UsageError` names the file or architecture at
    fault: ``cannot read initial architectures from FILE: why`` or ``initial architecture ARCH: why``."""
    if isinstance(items, (str, os.PathLike, Mapping)):
        items = [items]
    found: list[T] = []
    seen: set[str] = set()
    for item in items:
        for arch in _architectures_of(item):
            if parse is None:
                value = arch
            else:
                try:
                    value = parse(arch)
                except ValueError as exc:
                    raise UsageError(f"initial architecture {_short(arch)}: {_first_line(exc)}") from None
            key = json.dumps(value, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                found.append(value)
    return found


def names_a_file(item: Any) -> bool:
    """Whether ``item`` is read as a JSON file (see the module docstring)."""
    if isinstance(item, os.PathLike):
        return True
    if not isinstance(item, str):
        return False
    if item.endswith(".json") or "/" in item or os.sep in item:
        return True
    try:
        return Path(item).exists()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte: not a file
        return False


def _architectures_of(item: Any) -> list[Any]:
    if not names_a_file(item):
        return [item]
    try:
        document = read_json(item)
        if isinstance(document, list):
            return list(document)
        if isinstance(document, Mapping) and ("candidates" in document or not document
                                             or set(document) & set(RESULT_KEYS)):
            return candidates_of(document)
        return [document]
    except UsageError as exc:
        raise UsageError(f"cannot read initial architectures from {os.fspath(item)}: {exc}") from None


def _short(arch: Any) -> str:
    text = repr(arch)
    return text if len(text) <= 200 else text[:197] + "..."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
