"""``nni-asenas db build [--out DIR] [--only nasbench201|nasbench101]``: write NNI-schema benchmark databases.

NNI's own ``query_nb201_trial_stats`` / ``query_nb101_trial_stats`` and ``NasBench201Benchmark`` /
``NasBench101Benchmark`` then read them offline (see :mod:`nni_asenas.nasbench.databases`).
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

from nni_asenas.errors import UsageError

_NAMES = ("nasbench201", "nasbench101")
_DESCRIPTIONS = {
    "nasbench201": "NAS-Bench-201, all 15,625 cells, 12 and 200 epochs, cifar10-valid/cifar10/cifar100/imagenet16-120",
    "nasbench101": "NAS-Bench-101 SUBSET: 20,001 of 423,624 cells, validation accuracy only (no test accuracy)",
}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "db",
        help="build the NAS-Bench-201 / NAS-Bench-101 databases NNI's benchmark queries read",
        description="Databases in NNI's schema, read by NNI's own benchmark queries and evaluators offline.",
    )
    actions = parser.add_subparsers(dest="db_action", metavar="ACTION", parser_class=type(parser))
    build = actions.add_parser(
        "build",
        help="write nasbench201.db and nasbench101-subset20k.db",
        description="Write nasbench201.db (from the embedded NAS-Bench-201 table) and nasbench101-subset20k.db "
        "(a 20,001-cell NAS-Bench-101 subset with validation accuracy only).",
    )
    build.add_argument(
        "--out", type=Path, metavar="DIR",
        help="output directory (default: $NNI_ASENAS_DB_DIR, else ~/.cache/nni-asenas, where they are found "
        "without further setup)",
    )
    build.add_argument("--only", choices=_NAMES, help="build one database only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.db_action != "build":
        raise UsageError("missing ACTION: use `nni-asenas db build`")
    from nni_asenas.nasbench import databases as benchmark  # imports nni.nas (seconds): only when a build is asked for

    out = args.out if args.out is not None else benchmark.default_db_dir()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a directory")
    builders: dict[str, Callable[[Path], Path]] = {"nasbench201": benchmark.build_nasbench201_db, "nasbench101": benchmark.build_nasbench101_db}
    for name in [args.only] if args.only else _NAMES:
        start = time.perf_counter()
        try:
            path = builders[name](out)
        except OSError as exc:
            raise UsageError(f"cannot write {name} database into {out}: {exc.strerror or exc}") from None
        except sqlite3.Error as exc:  # "database or disk is full", "disk I/O error": the partial file is gone
            raise UsageError(f"cannot write {name} database into {out}: {exc}") from None
        print(f"{name}: wrote {path} ({path.stat().st_size / 1e6:.1f} MB, {time.perf_counter() - start:.1f} s)")
        print(f"  {_DESCRIPTIONS[name]}")
    if args.out is not None and args.out.expanduser().resolve() != benchmark.default_db_dir().resolve():
        print(f"To read them without calling nni_asenas.nasbench.databases.use_database: export "
              f"{benchmark.ENV_DB_DIR}={args.out.expanduser().resolve()}")
    return 0
