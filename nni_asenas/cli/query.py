"""``nni-asenas query ARCH [--dataset D] [--json]``: print the NAS-Bench-201 figures of one architecture."""

from __future__ import annotations

import argparse
import ast
import json
from typing import Any, Sequence

from nni_asenas.errors import UsageError
from nni_asenas.nasbench.nb201 import (
    DATASETS,
    EDGES,
    FIELD_DESCRIPTIONS,
    ArchLike,
    NasBench201Table,
    load_table,
    normalize_dataset,
)

_FORMATS = {
    "cost_seconds": "{:.1f}",
    "train_time200_s": "{:.1f}",
    "params_M": "{:.6f}",
    "flops_M": "{:.5f}",
    "latency_s": "{:.6f}",
    "nb201_params_MB": "{:.6f}",
    "valid_val_loss200": "{:.6f}",
}  # everything else is an accuracy in percent: 4 decimals
_MISSING = "-"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "query",
        help="print the NAS-Bench-201 figures of one architecture",
        description="Print the NAS-Bench-201 figures of one architecture (all datasets unless --dataset is given).",
    )
    parser.add_argument(
        "arch",
        metavar="ARCH",
        help="benchmark index (0..15624), arch string '|nor_conv_3x3~0|+|...|', 6-digit op code like 334131, "
        "or a JSON/Python dict {'0_1': 'conv_3x3', ...} (labels may carry NNI's 'cell/' prefix)",
    )
    parser.add_argument("--dataset", help=f"one of {', '.join(DATASETS)} (aliases such as cifar10-valid accepted)")
    parser.add_argument("--json", action="store_true", help="print the row as JSON instead of a table")
    parser.set_defaults(func=run)


#: The longest ARCH argument read: an architecture spelled out in full takes under 200 characters.
MAX_ARCH_LENGTH = 2000


def parse_arch_argument(text: str) -> ArchLike:
    """An architecture from a command-line word: up to 5 digits is an index, ``{...}``/``[...]`` a literal,
    anything else an arch string or 6-digit code (checked later by :meth:`NasBench201Table.index`). A word longer
    than :data:`MAX_ARCH_LENGTH` or nested too deeply to parse is a :class:`UsageError`."""
    text = text.strip()
    if len(text) > MAX_ARCH_LENGTH:
        raise UsageError(f"ARCH is {len(text)} characters long; an architecture takes at most {MAX_ARCH_LENGTH}")
    if text.isdigit() and len(text) < len(EDGES):
        return int(text)
    if text[:1] in "{[(" and text:
        try:
            return json.loads(text)
        except ValueError:
            pass
        except RecursionError:
            raise UsageError(f"ARCH {text[:20]}... is nested too deeply to be an architecture") from None
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise UsageError(f"ARCH {text if len(text) <= 60 else text[:57] + '...'!r} is neither JSON nor a "
                             "Python literal") from None
    return text


def _format(field: str, value: Any) -> str:
    if value is None:
        return _MISSING
    if isinstance(value, list):
        return "/".join(f"{v:.4f}".rstrip("0").rstrip(".") for v in value)
    return _FORMATS.get(field, "{:.4f}").format(value)


def format_row(table: NasBench201Table, index: int, datasets: Sequence[str]) -> str:
    """The aligned text table ``nni-asenas query`` prints: one figure per line, one column per dataset."""
    figures = {dataset: table.figures(index, dataset) for dataset in datasets}
    lines = [["figure", *datasets, "meaning"]]
    for field, meaning in FIELD_DESCRIPTIONS.items():
        cells = [_format(field, figures[d].get(field)) for d in datasets]
        if any(cell != _MISSING for cell in cells):
            lines.append([field, *cells, meaning])
    ranks = []
    for dataset in datasets:
        test = table.test_array(dataset)
        ranks.append(f"{int((test > test[index]).sum()) + 1}/{len(table)}")
    lines.append(["test200 rank", *ranks, "rank by test200 among all architectures (1 = best)"])

    widths = [max(len(line[col]) for line in lines) for col in range(len(lines[0]) - 1)]
    body = []
    for line in lines:
        cells = [line[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(line[1:-1], widths[1:])]
        body.append("  ".join(cells + [line[-1]]))
    head = [
        f"NAS-Bench-201 architecture {index}: {table.arch_str(index)}",
        f"op code {''.join(map(str, table.op_ids(index)))} (edges {' '.join(EDGES)}); "
        f"NNI: {table.arch_dict(index, nni_names=True)}",
        "",
    ]
    return "\n".join(head + body)


def run(args: argparse.Namespace) -> int:
    table = load_table()
    try:
        dataset = None if args.dataset is None else normalize_dataset(args.dataset)
        index = table.index(parse_arch_argument(args.arch))
    except UsageError:
        raise
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(table.row(index, dataset), indent=2))
    else:
        print(format_row(table, index, DATASETS if dataset is None else (dataset,)))
    return 0
