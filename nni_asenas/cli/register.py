"""``nni-asenas register``: register the ASE-NAS tuner with NNI as builtin name ``ASENAS``.

It runs ``nnictl algo register --meta_path <nni_asenas/data/asenas_meta.yml>`` with this Python, so experiment
configs can use ``tuner: {name: ASENAS}``. NNI keeps the registration in its config directory (``$NNI_CONFIG_DIR``,
else ``~/.config/nni`` or ``<venv>/nni``); ``nnictl algo unregister ASENAS`` removes it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

META_PATH = Path(__file__).resolve().parent.parent / "data" / "asenas_meta.yml"


def nnictl_command() -> list[str]:
    """The ``nnictl algo register`` command line, run with this interpreter."""
    return [sys.executable, "-m", "nni.tools.nnictl.nnictl", "algo", "register", "--meta_path", str(META_PATH)]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "register",
        help="register the ASE-NAS tuner with NNI (builtin name ASENAS)",
        description=f"Run `nnictl algo register --meta_path {META_PATH}` so experiment configs can use "
        "`tuner: {name: ASENAS}`.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    print(f"nnictl algo register --meta_path {META_PATH}", flush=True)
    return subprocess.run(nnictl_command(), check=False).returncode
