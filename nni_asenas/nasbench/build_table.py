"""Convert the NAS-Bench-201 CSV table into the compact ``nb201.npz`` shipped inside the package.

Usage: ``python -m nni_asenas.nasbench.build_table SRC.csv.gz OUT.npz``

Every CSV column is kept, losslessly:

* ``op_ids`` (a six-digit code such as ``334131``) becomes a ``(15625, 6)`` uint8 array of op ids;
* ``index`` and ``arch_str`` are not stored: the builder checks that ``index`` is the row number and that
  ``arch_str`` is exactly the string spelled by ``op_ids``, so the loader derives both;
* numeric columns stay float64: the CSV holds full double-precision values (seed means such as
  ``85.86333333333334``), which float32 would change in the sixth or seventh significant digit;
* the ``*_seeds`` list columns become ``(15625, max_seeds)`` float64 arrays padded with NaN.

The archive also records the CSV's column order under ``__columns__``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from nni_asenas.nasbench.nb201 import COLUMNS_KEY, EDGES, N_ARCHS, format_arch_str

DERIVED_COLUMNS = ("index", "arch_str")

def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw:
        rows = list(csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))
    if not rows:
        raise ValueError(f"{path}: empty CSV")
    return rows[0], rows[1:]


def _parse_op_ids(codes: list[str]) -> np.ndarray:
    out = np.empty((len(codes), len(EDGES)), dtype=np.uint8)
    for row, code in enumerate(codes):
        if len(code) != len(EDGES) or any(c not in "01234" for c in code):
            raise ValueError(f"row {row}: op_ids {code!r} is not six digits 0-4")
        out[row] = [int(c) for c in code]
    return out


def _parse_seed_lists(name: str, texts: list[str]) -> np.ndarray:
    lists = []
    for row, text in enumerate(texts):
        values = json.loads(text)
        if not isinstance(values, list) or not values:
            raise ValueError(f"row {row}: column {name} holds {text!r}, expected a non-empty list")
        lists.append([float(v) for v in values])
    out = np.full((len(lists), max(map(len, lists))), np.nan)
    for row, values in enumerate(lists):
        out[row, : len(values)] = values
    return out


def convert(header: list[str], rows: list[list[str]]) -> dict[str, np.ndarray]:
    """Turn parsed CSV text into the arrays stored in the npz (checks the derivable columns on the way)."""
    if len(rows) != N_ARCHS:
        raise ValueError(f"expected {N_ARCHS} rows, got {len(rows)}")
    for required in ("index", "arch_str", "op_ids"):
        if required not in header:
            raise ValueError(f"missing column {required!r}")
    columns = {name: [r[j] for r in rows] for j, name in enumerate(header)}

    if columns["index"] != [str(i) for i in range(N_ARCHS)]:
        raise ValueError("column index is not 0..15624 in row order")
    op_ids = _parse_op_ids(columns["op_ids"])
    if len({bytes(r) for r in op_ids}) != N_ARCHS:
        raise ValueError("op_ids are not unique")
    for row, (text, ids) in enumerate(zip(columns["arch_str"], op_ids)):
        if text != format_arch_str(ids):
            raise ValueError(f"row {row}: arch_str {text!r} does not match op_ids {columns['op_ids'][row]}")

    arrays: dict[str, np.ndarray] = {COLUMNS_KEY: np.array(header), "op_ids": op_ids}
    for name, texts in columns.items():
        if name in DERIVED_COLUMNS or name == "op_ids":
            continue
        if name.endswith("_seeds"):
            arrays[name] = _parse_seed_lists(name, texts)
        else:
            try:
                arrays[name] = np.array([float(t) for t in texts], dtype=np.float64)
            except ValueError as exc:
                raise ValueError(f"column {name}: {exc}") from None
    return arrays


def build(src: Path, out: Path) -> dict[str, np.ndarray]:
    """Read ``src`` (CSV, optionally gzipped), write ``out`` (compressed npz) and return the stored arrays."""
    header, rows = _read_csv(src)
    arrays = convert(header, rows)
    write_npz(out, arrays)
    return arrays


def write_npz(out: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``numpy.savez_compressed``, but with fixed zip timestamps so that rebuilding gives the same bytes."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nni_asenas.nasbench.build_table", description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="nb201.csv.gz (the source table, tests/data/nb201.csv.gz; see docs/data.md)")
    parser.add_argument("out", type=Path, help="output .npz, e.g. nni_asenas/data/nb201.npz")
    args = parser.parse_args(argv)
    try:
        arrays = build(args.src, args.out)
    except (OSError, ValueError) as exc:
        print(f"build_nb201: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {len(arrays) - 1} arrays, {args.out.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
