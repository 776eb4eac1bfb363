"""``python -m nni_asenas.trials.imagenet``: train and evaluate one MobileNet-like architecture on ImageFolder data.

An NNI trial (the architecture from ``nni.get_next_parameter()``), a stand-alone program (``--arch FILE.json``) and a
``torchrun`` program. The pieces are in :mod:`nni_asenas.imagenet` (``train``, ``data``, ``engine``, ``checkpoints``).
"""

from __future__ import annotations

import sys

from nni_asenas.imagenet.train import build_parser, lr_at, main, run

__all__ = ["build_parser", "lr_at", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
