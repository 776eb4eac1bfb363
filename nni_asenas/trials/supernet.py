"""``python -m nni_asenas.trials.supernet``: train the MobileNet-like weight-sharing supernet on ImageFolder data.

A stand-alone program, a ``torchrun`` program (DDP, NCCL / gloo) and an NNI trial (it reports the largest
sub-net's held-out top-1). The pieces are in :mod:`nni_asenas.imagenet.supernet_train`.
"""

from __future__ import annotations

import sys

from nni_asenas.imagenet.supernet_train import build_parser, main, run

__all__ = ["build_parser", "main", "run"]

if __name__ == "__main__":
    sys.exit(main())
