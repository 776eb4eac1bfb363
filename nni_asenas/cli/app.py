"""The ``nni-asenas`` command: one argparse parser, one module per subcommand under :mod:`nni_asenas.cli`."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
import warnings
from typing import NoReturn, Sequence

from nni_asenas.errors import UsageError

# Each module exposes ``add_parser(subparsers)`` (which sets ``func=run``) and ``run(args) -> int``.
COMMANDS: tuple[str, ...] = ("search", "query", "db", "register", "bench", "nni_patch", "predictor")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse's own errors, as one line and exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nni-asenas", description="ASE-NAS for Microsoft NNI: searches, benchmarks, table queries.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"nni_asenas.cli.{name}").add_parser(subparsers)
    return parser


#: errno values that mean the storage failed, not the program: reported in one line.
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}


def _quiet_nni_import_warnings() -> None:
    """NNI 3.0 warns, once per unknown class, that this torch has classes that are not nn.Modules (harmless: they
    are not layers); under a command those lines would come before its output or its one-line error."""
    warnings.filterwarnings("ignore", message=r".* is found to be not a nn\.Module", category=RuntimeWarning,
                            module=r"nni\.nas\.nn\.pytorch\.layers")


def main(argv: Sequence[str] | None = None) -> int:
    _quiet_nni_import_warnings()
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's own errors (one line, status 2) and --help (status 0)
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"nni-asenas: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in _STORAGE_ERRORS:
            raise
        # a full disk, a quota, a read-only or failing file system under a file being written: one line naming it
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"nni-asenas: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nni-asenas: interrupted", file=sys.stderr)
        return 130
