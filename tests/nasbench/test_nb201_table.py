"""The embedded NAS-Bench-201 table: published figures, every architecture form, errors, and the npz vs the CSV."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pytest

from nni_asenas.nasbench.nb201 import (
    BUDGET_SECONDS,
    DATASETS,
    EDGES,
    FIELD_DESCRIPTIONS,
    NNI_OPS,
    OPS,
    format_arch_str,
    load_table,
    normalize_dataset,
    parse_arch,
)

CSV_PATH = Path(__file__).resolve().parents[1] / "data" / "nb201.csv.gz"  # the source table (tests/data/README.md)
BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
NNI_DICT = {  # index 6111 as nni.nas.benchmark.nasbench201 spells it
    "0_1": "conv_3x3", "0_2": "conv_3x3", "1_2": "conv_3x3", "0_3": "skip_connect", "1_3": "conv_3x3", "2_3": "conv_1x1"
}


@pytest.fixture(scope="module")
def table():
    return load_table()


def test_load_table_is_cached(table):
    assert load_table() is table
    assert len(table) == 15625 == len(OPS) ** len(EDGES)


@pytest.mark.parametrize(
    "index, dataset, expected",
    [(6111, "cifar10", 94.3733), (9930, "cifar100", 73.5133), (857, "imagenet16-120", 47.3111)],
)
def test_published_test_optima(table, index, dataset, expected):
    assert table.test_accuracy(index, dataset) == pytest.approx(expected, abs=1e-3)
    assert table.optimum(dataset) == (index, pytest.approx(expected, abs=1e-3))
    assert table.optimum(dataset, "test_accuracy")[0] == int(np.argmax(table.test_array(dataset)))


@pytest.mark.parametrize(
    "dataset, expected", [("cifar10", 91.6067), ("cifar100", 73.4933), ("imagenet16-120", 46.7333)]
)
def test_published_val200_optima(table, dataset, expected):
    index, value = table.optimum(dataset, "val200")
    assert value == pytest.approx(expected, abs=1e-3)
    assert table.row(index, dataset)["val200"] == value


def test_best_cifar10_cell_by_arch_string(table):
    assert table.index(BEST_C10) == 6111
    assert table.arch_str(6111) == BEST_C10
    assert table.test_accuracy(BEST_C10, "CIFAR-10") == pytest.approx(94.3733, abs=1e-3)


@pytest.mark.parametrize(
    "dataset, signal_column, time_column",
    [
        ("cifar10", "c10v_val12", "c10v_train_time200_s"),
        ("cifar100", "c100_val12", "c100_train_time200_s"),
        ("imagenet16-120", "img_val12", "img_train_time200_s"),
    ],
)
def test_signal_and_cost_follow_the_protocol(table, dataset, signal_column, time_column):
    np.testing.assert_array_equal(table.signal_array(dataset), table.column(signal_column))
    np.testing.assert_allclose(table.cost_array(dataset), 0.06 * table.column(time_column), rtol=1e-15)
    for index in (0, 777, 15624):
        assert table.signal(index, dataset) == table.column(signal_column)[index]
        assert table.cost_seconds(index, dataset) == pytest.approx(0.06 * table.column(time_column)[index], rel=1e-12)
    signal_best, signal_value = table.optimum(dataset, "signal")
    assert signal_value == table.signal_array(dataset).max() == table.signal(signal_best, dataset)
    # a search within the budget can afford dozens of queries but not the whole space
    assert 20 < BUDGET_SECONDS[dataset] / table.cost_array(dataset).mean() < len(table)


@pytest.mark.parametrize("index", [0, 1, 6111, 9930, 857, 15624])
def test_every_input_form_gives_the_same_index(table, index):
    ops = table.op_ids(index)
    table_names = table.arch_dict(index)
    nni_names = table.arch_dict(index, nni_names=True)
    forms = [
        index,
        np.int64(index),
        table.arch_str(index),
        f"  {table.arch_str(index)}\n",
        format_arch_str(ops).replace("nor_conv", "conv"),  # NNI op names inside an arch string
        "".join(map(str, ops)),
        ops,
        list(ops),
        np.array(ops, dtype=np.uint8),
        [OPS[op] for op in ops],
        [NNI_OPS[op] for op in ops],
        table_names,
        nni_names,
        {f"cell/{edge}": op for edge, op in nni_names.items()},
        dict(reversed(list(table_names.items()))),  # label order does not matter
        {edge: int(op) for edge, op in zip(EDGES, ops)},
    ]
    for form in forms:
        assert table.index(form) == index, form
    assert table.op_ids(table.arch_dict(index, nni_names=True)) == ops


def test_round_trips_for_all_architectures(table):
    op_ids = table.column("op_ids")
    assert op_ids.shape == (15625, 6) and op_ids.dtype == np.uint8
    assert len({tuple(row) for row in op_ids.tolist()}) == 15625
    for index in range(len(table)):
        text = table.arch_str(index)
        ops = table.op_ids(index)
        assert table.index(text) == index
        assert parse_arch(text) == ops == tuple(op_ids[index])
        assert table.index("".join(map(str, ops))) == index
        assert table.index(table.arch_dict(index, nni_names=True)) == index


def test_nni_op_names(table):
    assert dict(zip(OPS, NNI_OPS)) == {
        "none": "none",
        "skip_connect": "skip_connect",
        "nor_conv_1x1": "conv_1x1",
        "nor_conv_3x3": "conv_3x3",
        "avg_pool_3x3": "avg_pool_3x3",
    }
    assert table.arch_dict(6111, nni_names=True) == NNI_DICT
    assert list(table.arch_dict(6111)) == list(EDGES)
    assert parse_arch({"0_1": "conv_1x1", "0_2": "nor_conv_1x1", "1_2": 0, "0_3": 1, "1_3": "conv_3x3",
                       "2_3": "nor_conv_3x3"}) == (2, 2, 0, 1, 3, 3)


def test_decisions(table):
    decisions = table.decisions()
    assert list(decisions) == list(EDGES)
    assert all(options == list(OPS) for options in decisions.values())
    decisions["0_1"].append("mutated")
    assert table.decisions()["0_1"] == list(OPS)


VALID = BEST_C10

@pytest.mark.parametrize(
    "arch, match",
    [
        (VALID.replace("skip_connect", "sep_conv_5x5"), r"edge 0_3: unknown op 'sep_conv_5x5'"),
        (VALID.replace("nor_conv_1x1~2", "nor_conv_1x1~1"), r"edge 2_3 token 'nor_conv_1x1~1' should read 'OP~2'"),
        (VALID.replace("nor_conv_1x1~2", "nor_conv_1x1"), r"edge 2_3 token 'nor_conv_1x1'"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|none~0|none~1|none~2|", r"node 2 has 1 input\(s\), expected 2"),
        ("|nor_conv_3x3~0|+|none~0|none~1|", r"2 node group\(s\) separated by '\+', expected 3"),
        ("|none~0|+none~0|none~1|+|none~0|none~1|none~2|", r"node 2 group 'none~0\|none~1\|' must start and end"),
        ("33413", r"digit code '33413' has 5 digits, expected 6"),
        ("334191", r"digit code '334191': edge 1_3: op id 9 is out of range 0-4"),
        ("conv_3x3", r"cannot read architecture 'conv_3x3'"),
        (15625, r"index 15625 is out of range 0\.\.15624"),
        (-1, r"index -1 is out of range"),
        (True, r"cannot read an architecture from bool"),
        (6111.0, r"cannot read an architecture from float"),
        (None, r"cannot read an architecture from NoneType"),
        ({**NNI_DICT, "1_2": "conv_5x5"}, r"label '1_2': unknown op 'conv_5x5'"),
        ({f"cell/{k}": v for k, v in {**NNI_DICT, "2_3": 7}.items()}, r"label 'cell/2_3': op id 7 is out of range"),
        ({**NNI_DICT, "cell/3_4": "none"}, r"unknown label 'cell/3_4'"),
        ({**NNI_DICT, "cell/0_1": "none"}, r"edge 0_1 is given twice, as '0_1' and 'cell/0_1'"),
        ({k: v for k, v in NNI_DICT.items() if k not in ("0_2", "2_3")}, r"missing label\(s\) 0_2, 2_3"),
        ({**NNI_DICT, "0_3": None}, r"label '0_3': op None is neither an op name nor an op id"),
        ([3, 3, 3, 1, 3], r"op sequence \[3, 3, 3, 1, 3\] has 5 entries, expected 6"),
        ((3, 3, 3, 1, 3, 5), r"op sequence: edge 2_3: op id 5 is out of range 0-4"),
        (("none",) * 5 + ("max_pool_3x3",), r"op sequence: edge 2_3: unknown op 'max_pool_3x3'"),
    ],
)
def test_malformed_architectures_name_the_culprit(table, arch, match):
    with pytest.raises(ValueError, match=match) as info:
        table.index(arch)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "alias, name",
    [
        ("cifar10", "cifar10"), ("CIFAR10", "cifar10"), ("cifar-10", "cifar10"), ("cifar10-valid", "cifar10"),
        ("cifar100", "cifar100"), ("CIFAR-100", "cifar100"), ("c100", "cifar100"),
        ("imagenet16-120", "imagenet16-120"), ("ImageNet16-120", "imagenet16-120"),
        ("imagenet16_120", "imagenet16-120"),
        (" ImageNet16 ", "imagenet16-120"),
    ],
)
def test_normalize_dataset(alias, name):
    assert normalize_dataset(alias) == name


@pytest.mark.parametrize("bad", ["svhn", "cifar1000", "", None])
def test_unknown_dataset_is_named(table, bad):
    match = rf"unknown dataset {bad!r} \(valid: cifar10, cifar100, imagenet16-120\)"
    with pytest.raises(ValueError, match=match):
        normalize_dataset(bad)
    with pytest.raises(ValueError, match=match):
        table.signal(0, bad)


def test_column_access(table):
    assert table.columns[:3] == ("index", "arch_str", "op_ids")
    np.testing.assert_array_equal(table.column("index"), np.arange(15625))
    assert table.column("arch_str")[6111] == BEST_C10
    seeds = table.column("c100_val200_seeds")
    assert seeds.ndim == 2 and seeds.shape[0] == 15625 and np.isnan(seeds).any()
    np.testing.assert_allclose(np.nanmean(seeds, axis=1), table.column("c100_val200"), atol=1e-4)
    with pytest.raises(ValueError, match="read-only"):
        table.column("c10_test200")[0] = 100.0
    with pytest.raises(ValueError, match=r"unknown column 'c10_val12'; did you mean 'c10v_val12'\?"):
        table.column("c10_val12")
    with pytest.raises(ValueError, match=r"unknown metric 'accuracy'"):
        table.optimum("cifar10", "accuracy")


def test_row_holds_every_stored_figure(table):
    index = 857
    full = table.row(index)
    assert full["index"] == index and full["arch_str"] == table.arch_str(index)
    assert set(full) == {"index", "arch_str", *DATASETS}
    values = [value for dataset in DATASETS for value in full[dataset].values()]
    for name in table.columns[3:]:
        stored = table.column(name)[index]
        expected = [float(v) for v in stored if not np.isnan(v)] if stored.ndim else float(stored)
        assert expected in values, name
    one = table.row(table.arch_str(index), "ImageNet16-120")
    head = {"index": index, "arch_str": table.arch_str(index), "dataset": "imagenet16-120"}
    assert one == {**head, **full["imagenet16-120"]}
    assert one["test200"] == table.test_accuracy(index, "imagenet16-120")
    assert one["val12"] == table.signal(index, "imagenet16-120")
    assert one["cost_seconds"] == table.cost_seconds(index, "imagenet16-120")
    assert set(full["cifar10"]) == set(FIELD_DESCRIPTIONS)
    cifar10_only = {"valid_test200", "valid_train_acc200", "valid_val_loss200"}
    assert set(FIELD_DESCRIPTIONS) - set(full["cifar100"]) == cifar10_only
    json.dumps(full, allow_nan=False)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with gzip.open(path, "rb") as raw:
        rows = list(csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline="")))
    return rows[0], rows[1:]


def test_npz_holds_every_csv_value_exactly(table):
    header, rows = _read_csv(CSV_PATH)
    assert list(table.columns) == header
    for j, name in enumerate(header):
        texts = [row[j] for row in rows]
        stored = table.column(name)
        if name == "arch_str":
            assert stored.tolist() == texts
        elif name == "op_ids":
            assert ["".join(map(str, ops)) for ops in stored.tolist()] == texts
        elif name.endswith("_seeds"):
            for text, padded in zip(texts, stored):
                values = json.loads(text)
                assert padded[: len(values)].tolist() == values, name
                assert np.isnan(padded[len(values):]).all(), name
        else:  # bit-exact: the npz keeps the CSV's doubles
            assert stored.tolist() == [float(text) for text in texts], name


@pytest.mark.slow
def test_labels_and_ops_match_nni():
    from nni.nas.benchmark.nasbench201.db_gen import parse_arch_str
    from nni.nas.hub.pytorch import NasBench201

    table = load_table()
    for index in range(0, len(table), 7):
        assert parse_arch_str(table.arch_str(index)) == table.arch_dict(index, nni_names=True)
    hub_decisions = {label: mutable.values for label, mutable in NasBench201().simplify().items()}
    assert hub_decisions == {f"cell/{edge}": list(NNI_OPS) for edge in EDGES}
    sample = {label: values[(i * 2 + 1) % len(values)] for i, (label, values) in enumerate(hub_decisions.items())}
    assert table.arch_dict(sample, nni_names=True) == {label[len("cell/"):]: op for label, op in sample.items()}
