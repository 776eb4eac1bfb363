"""The npz builder: lossless conversion, checks on the derivable columns, reproducible output."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest

from nni_asenas.nasbench import build_table as build_nb201
from nni_asenas.nasbench.nb201 import DATA_PATH, NasBench201Table, format_arch_str, load_table

CSV_PATH = Path(__file__).resolve().parents[1] / "data" / "nb201.csv.gz"  # the source table (tests/data/README.md)
HEADER = ["index", "arch_str", "op_ids", "c10_test200", "c100_val200_seeds"]


def synthetic_rows() -> list[list[str]]:
    """All 15625 real cells with made-up figures: a seed-mean column and a ragged seed-list column."""
    rows = []
    for index, ops in enumerate(load_table().column("op_ids").tolist()):
        seeds = [index / 7, 1 / 3] if index % 2 else [index / 7, 1 / 3, 0.1]
        rows.append([str(index), format_arch_str(ops), "".join(map(str, ops)), repr(index / 3), json.dumps(seeds)])
    return rows


def write_csv_gz(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    text = io.StringIO()
    csv.writer(text).writerows([header, *rows])
    path.write_bytes(gzip.compress(text.getvalue().encode()))
    return path


def test_convert_is_lossless():
    rows = synthetic_rows()
    arrays = build_nb201.convert(HEADER, rows)
    assert set(arrays) == {"__columns__", "op_ids", "c10_test200", "c100_val200_seeds"}
    assert arrays["__columns__"].tolist() == HEADER
    assert arrays["op_ids"].dtype == np.uint8 and arrays["op_ids"].shape == (15625, 6)
    assert arrays["c10_test200"].dtype == np.float64
    assert arrays["c10_test200"].tolist() == [i / 3 for i in range(15625)]
    seeds = arrays["c100_val200_seeds"]
    assert seeds.shape == (15625, 3)
    assert seeds[2].tolist() == [2 / 7, 1 / 3, 0.1]
    assert seeds[3, :2].tolist() == [3 / 7, 1 / 3] and np.isnan(seeds[3, 2])


@pytest.mark.parametrize(
    "row, column, value, match",
    [
        (5, 1, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", r"row 5: arch_str .* does not match op_ids"),
        (6, 2, "33413", r"row 6: op_ids '33413' is not six digits 0-4"),
        (7, 0, "8", r"column index is not 0\.\.15624"),
        (8, 3, "n/a", r"column c10_test200: could not convert"),
        (9, 4, "[]", r"row 9: column c100_val200_seeds holds '\[\]', expected a non-empty list"),
    ],
)
def test_convert_rejects_inconsistent_rows(row, column, value, match):
    rows = synthetic_rows()
    rows[row][column] = value
    with pytest.raises(ValueError, match=match):
        build_nb201.convert(HEADER, rows)


def test_convert_rejects_wrong_shapes():
    rows = synthetic_rows()
    with pytest.raises(ValueError, match="expected 15625 rows, got 15624"):
        build_nb201.convert(HEADER, rows[:-1])
    with pytest.raises(ValueError, match="missing column 'op_ids'"):
        build_nb201.convert(["index", "arch_str", "code", *HEADER[3:]], rows)
    rows[1][2] = rows[0][2]
    rows[1][1] = rows[0][1]
    with pytest.raises(ValueError, match="op_ids are not unique"):
        build_nb201.convert(HEADER, rows)


def test_main_writes_a_reproducible_npz(tmp_path, capsys):
    src = write_csv_gz(tmp_path / "table.csv.gz", HEADER, synthetic_rows())
    assert build_nb201.main([str(src), str(tmp_path / "a.npz")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert build_nb201.main([str(src), str(tmp_path / "b.npz")]) == 0
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as archive:
        assert archive["c10_test200"][3] == 1.0
    assert build_nb201.main([str(tmp_path / "missing.csv.gz"), str(tmp_path / "c.npz")]) == 1
    assert "build_nb201: error:" in capsys.readouterr().err


def test_packaged_npz_is_the_build_of_the_shared_csv(tmp_path):
    out = tmp_path / "nb201.npz"
    build_nb201.build(CSV_PATH, out)
    fresh, packaged = NasBench201Table.from_npz(out), NasBench201Table.from_npz(DATA_PATH)
    assert fresh.columns == packaged.columns
    for name in fresh.columns:
        np.testing.assert_array_equal(fresh.column(name), packaged.column(name), err_msg=name)
