"""The NAS-Bench-201 cell space as an NNI model space, and its NNI search-space JSON.

Six edges (labels ``0_1 0_2 1_2 0_3 1_3 2_3``, the order of the benchmark's arch strings), five ops each (the
table's names: ``none skip_connect nor_conv_1x1 nor_conv_3x3 avg_pool_3x3``). The space holds plain choices only: its
architectures are evaluated by looking them up in the embedded table (:mod:`nni_asenas.nasbench.nb201`), not by
training, so a frozen model just carries its ``arch`` dict.

``search_spaces/nasbench201.json`` is generated from this module::

    python -m nni_asenas.nasbench.nb201_space --output search_spaces/nasbench201.json
"""

from __future__ import annotations

import argparse
from typing import Any, Mapping, Sequence

import nni
from nni.mutable import ensure_frozen
from nni.nas.nn.pytorch import ModelSpace
from nni.nas.space import model_context

from nni_asenas.nasbench.nb201 import EDGES, OPS
from nni_asenas.nni_tools.search_space_json import dump_search_space, search_space_json

__all__ = ["NasBench201Space", "search_space"]


class NasBench201Space(ModelSpace):
    """NAS-Bench-201 as ``nni.choice`` per edge. ``space.freeze({"0_1": "nor_conv_3x3", ...}).arch`` is the
    validated architecture (``{edge: op}`` in :data:`~nni_asenas.nasbench.nb201.EDGES` order)."""

    def __init__(self) -> None:
        super().__init__()
        self.arch: dict[str, str] = {
            edge: ensure_frozen(self.add_mutable(nni.choice(edge, list(OPS))), strict=False) for edge in EDGES
        }

    def freeze(self, sample: Mapping[str, Any]) -> NasBench201Space:
        with model_context(dict(sample)):
            return self.__class__()


def search_space() -> dict[str, dict[str, Any]]:
    """NNI's search-space JSON for :class:`NasBench201Space`: ``{"0_1": {"_type": "choice", "_value": [...]}, ...}``."""
    return search_space_json(NasBench201Space())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nni_asenas.nasbench.nb201_space", description=__doc__.split("\n")[0])
    parser.add_argument("--output", default="-", help="where to write the search-space JSON (default: standard output)")
    args = parser.parse_args(argv)
    dump_search_space(search_space(), args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
