"""NNI's own NAS-Bench-201 / NAS-Bench-101 queries and evaluators reading the databases built here."""

from __future__ import annotations

import gzip
import json
import random
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from nni.nas.benchmark import NasBench201Benchmark
from nni.nas.benchmark.nasbench101 import query_nb101_trial_stats
from nni.nas.benchmark.nasbench101.graph_util import hash_module
from nni.nas.benchmark.nasbench201 import (
    Nb201IntermediateStats,
    Nb201TrialConfig,
    Nb201TrialStats,
    query_nb201_trial_stats,
)

from nni_asenas.errors import UsageError
from nni_asenas.nasbench import databases
from nni_asenas.nasbench.nb201 import load_table

# The benchmark's published optima (docs/data.md) and a spread of other cells.
INDICES = [6111, 9930, 857, 0, 1, 777, 15624]


@pytest.fixture(scope="module")
def table():
    return load_table()


def _nni_arch(table, i: int) -> dict[str, str]:
    return table.arch_dict(i, nni_names=True)


@pytest.fixture
def isolated_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No database anywhere: empty env var, empty cache home, empty NNI nasbenchmark directory."""
    monkeypatch.delenv(databases.ENV_DB_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(databases, "DATABASE_DIR", str(tmp_path / "nni-nasbenchmark"))
    yield tmp_path
    for name in databases.BENCHMARKS:
        databases.use_database(name, None)


# --------------------------------------------------------------------------------------------- nasbench201


def test_nb201_schema_is_nnis(benchmark_dbs):
    with sqlite3.connect(benchmark_dbs["nasbench201"]) as conn:
        for model in (Nb201TrialConfig, Nb201TrialStats, Nb201IntermediateStats):
            columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{model._meta.table_name}")')]
            assert columns == [f.column_name for f in model._meta.sorted_fields]
        n_configs, = conn.execute("SELECT COUNT(*) FROM nb201trialconfig").fetchone()
        assert n_configs == 15625 * 2 * 4
        assert {r[0] for r in conn.execute("SELECT DISTINCT dataset FROM nb201trialconfig")} == {
            "cifar10-valid", "cifar10", "cifar100", "imagenet16-120"}
        assert {r[0] for r in conn.execute("SELECT DISTINCT num_epochs FROM nb201trialconfig")} == {12, 200}
        orphans, = conn.execute(
            "SELECT COUNT(*) FROM nb201trialconfig c LEFT JOIN nb201trialstats s ON s.config_id = c.id WHERE s.id IS NULL"
        ).fetchone()
        assert orphans == 0
        n_trials, = conn.execute("SELECT COUNT(*) FROM nb201trialstats").fetchone()
        n_intermediates, = conn.execute("SELECT COUNT(*) FROM nb201intermediatestats").fetchone()
        assert n_intermediates == n_trials


@pytest.mark.parametrize("i", INDICES)
def test_nb201_figures_match_the_table(use_benchmark_dbs, table, i):
    arch = _nni_arch(table, i)
    col = table.column

    def mean(num_epochs, dataset):
        rows = list(query_nb201_trial_stats(arch, num_epochs, dataset, reduction="mean"))
        assert len(rows) == 1
        return rows[0]

    c10 = mean(200, "cifar10")
    assert c10["test_acc"] == pytest.approx(col("c10_test200")[i])
    assert c10["valid_acc"] == c10["test_acc"] == c10["ori_test_acc"]  # NNI: cifar10 validates on the test set
    c100 = mean(200, "cifar100")
    assert c100["test_acc"] == pytest.approx(col("c100_test200")[i])
    assert c100["valid_acc"] == pytest.approx(col("c100_val200")[i], abs=1e-5)
    assert c100["ori_test_acc"] is None
    assert c100["parameters"] == pytest.approx(col("c100_nb201_reported_params_MB")[i])
    assert c100["flops"] == pytest.approx(col("flops_c100_M")[i])
    assert c100["training_time"] == pytest.approx(col("c100_train_time200_s")[i])
    c10v = mean(200, "cifar10-valid")
    assert c10v["train_acc"] == pytest.approx(col("c10v_train_acc200")[i])
    assert c10v["test_acc"] == pytest.approx(col("c10v_test200")[i])
    assert c10v["valid_loss"] == pytest.approx(col("c10v_val_loss200")[i])
    assert c10v["latency"] == pytest.approx(col("c10v_latency_s")[i])
    img = mean(200, "imagenet16-120")
    assert img["test_acc"] == pytest.approx(col("img_test200")[i])

    img12 = mean(12, "imagenet16-120")
    assert img12["valid_acc"] == pytest.approx(col("img_val12")[i])
    assert img12["test_acc"] == pytest.approx(col("img_test12")[i])
    assert img12["training_time"] == pytest.approx(col("img_train_time200_s")[i] * 12 / 200)
    assert mean(12, "cifar10-valid")["valid_acc"] == pytest.approx(col("c10v_val12")[i])
    assert mean(12, "cifar10")["test_acc"] == pytest.approx(col("c10_test12")[i])
    assert mean(12, "cifar100")["valid_acc"] == pytest.approx(col("c100_val12")[i])


def test_nb201_one_trial_per_seed(use_benchmark_dbs, table):
    i = 9930
    rows = list(query_nb201_trial_stats(_nni_arch(table, i), 200, "cifar100"))
    seeds = [v for v in table.column("c100_val200_seeds")[i] if not np.isnan(v)]
    assert sorted(r["valid_acc"] for r in rows) == pytest.approx(sorted(seeds))
    assert [r["test_acc"] for r in rows] == pytest.approx([table.column("c100_test200")[i]] * len(rows))
    assert all(r["seed"] is None for r in rows)  # the table does not say which seed is which


def test_nb201_intermediates_and_wildcards(use_benchmark_dbs, table):
    arch = _nni_arch(table, 6111)
    (row,) = query_nb201_trial_stats(arch, 12, "cifar10-valid", include_intermediates=True)
    assert [(m["current_epoch"], m["valid_acc"]) for m in row["intermediates"]] == [(12, row["valid_acc"])]
    assert {r["config"]["dataset"] for r in query_nb201_trial_stats(arch, 12, None)} == {
        "cifar10-valid", "cifar10", "cifar100", "imagenet16-120"}


def test_nni_nasbench201_evaluator_reads_it(use_benchmark_dbs, table):
    i = 857
    sample = {f"cell/{edge}": op for edge, op in _nni_arch(table, i).items()}
    evaluator = NasBench201Benchmark(num_epochs=12, dataset="imagenet16-120", metric="valid_acc")
    assert evaluator.evaluate(sample) == pytest.approx(table.column("img_val12")[i])


# --------------------------------------------------------------------------------------------- nasbench101


@pytest.fixture(scope="module")
def nb101_records():
    with gzip.open(databases.NB101_SUBSET_PATH, "rt") as fh:
        return json.load(fh)


def test_nb101_packaged_subset_has_every_cell(nb101_records):
    assert len(nb101_records) == 20001


def test_nb101_arches_hash_like_nni(nb101_records):
    for record in random.Random(0).sample(nb101_records, 200):
        arch = databases._nb101_arch(record["matrix"], record["ops"])
        assert hash_module(arch, len(record["ops"])) == record["hash"]


def test_nb101_queries(use_benchmark_dbs, nb101_records):
    for record in random.Random(1).sample(nb101_records, 20):
        arch = databases._nb101_arch(record["matrix"], record["ops"])
        for epochs in databases.NB101_EPOCHS:
            (row,) = query_nb101_trial_stats(arch, epochs)
            assert row["valid_acc"] == pytest.approx(record[f"val_acc_{epochs}"] * 100)
            assert row["test_acc"] is None and row["train_acc"] is None  # the subset has validation only
            assert row["parameters"] == pytest.approx(record["params"] / 1e6)
        (row,) = query_nb101_trial_stats(arch, 108, isomorphism=False, include_intermediates=True)
        assert row["training_time"] == pytest.approx(record["train_time_108_s"])
        assert row["intermediates"][0]["current_epoch"] == 108


def test_nb101_isomorphic_cell_is_found(use_benchmark_dbs, nb101_records):
    record = next(r for r in nb101_records if len(r["ops"]) == 7)
    n = 7
    # Relabel the intermediate vertices in another topological order: same cell, other matrix.
    matrix = np.array(record["matrix"])
    order = list(range(n))
    rng = random.Random(3)
    for _ in range(50):
        middle = order[1:-1]
        rng.shuffle(middle)
        candidate = [0, *middle, n - 1]
        permuted = matrix[np.ix_(candidate, candidate)]
        if not np.array_equal(permuted, matrix) and np.all(np.tril(permuted) == 0):
            break
    else:
        pytest.skip("no other topological order for this cell")
    ops = [record["ops"][v] for v in candidate]
    arch = databases._nb101_arch(permuted.tolist(), ops)
    assert list(query_nb101_trial_stats(arch, 108, isomorphism=False)) == []
    (row,) = query_nb101_trial_stats(arch, 108)
    assert row["valid_acc"] == pytest.approx(record["val_acc_108"] * 100)


def test_nb101_database_says_it_is_a_subset(benchmark_dbs):
    info = databases.database_info(benchmark_dbs["nasbench101"])
    assert "SUBSET" in info["note"] and "validation accuracy only" in info["note"]
    assert databases.database_info(benchmark_dbs["nasbench201"])["benchmark"] == "nasbench201"


# --------------------------------------------------------------------------------------------- finding databases


def test_missing_database_names_the_build_command(isolated_lookup):
    with pytest.raises(databases.DatabaseNotFoundError, match="nni-asenas db build"):
        databases.find_database("nasbench201")
    databases.use_database("nasbench201", None)
    with pytest.raises(FileNotFoundError, match="nni-asenas db build"):
        list(query_nb201_trial_stats(None, 12, "cifar10"))


def test_env_var_directory_is_used_without_use_database(isolated_lookup, benchmark_dbs, table, monkeypatch):
    monkeypatch.setenv(databases.ENV_DB_DIR, str(benchmark_dbs["nasbench201"].parent))
    databases.use_database("nasbench201", None)
    (row,) = query_nb201_trial_stats(_nni_arch(table, 0), 12, "cifar100")
    assert row["valid_acc"] == pytest.approx(table.column("c100_val12")[0])

    monkeypatch.setenv(databases.ENV_DB_DIR, str(isolated_lookup / "empty"))
    with pytest.raises(databases.DatabaseNotFoundError, match="--out"):
        databases.find_database("nasbench101")


def test_default_directory_and_nnis_own_file(isolated_lookup, benchmark_dbs):
    default = databases.default_db_dir() / databases.DB_FILE_NAMES["nasbench101"]
    assert default == isolated_lookup / "cache" / "nni-asenas" / "nasbench101-subset20k.db"
    default.parent.mkdir(parents=True)
    default.symlink_to(benchmark_dbs["nasbench101"])
    assert databases.find_database("nasbench101") == default
    official = isolated_lookup / "nni-nasbenchmark" / "nasbench101-209f5694.db"  # NNI's downloaded full benchmark
    official.parent.mkdir()
    official.symlink_to(benchmark_dbs["nasbench101"])
    assert databases.find_database("nasbench101") == official


def test_use_database_checks_the_file(tmp_path, benchmark_dbs):
    with pytest.raises(databases.DatabaseNotFoundError, match="nni-asenas db build"):
        databases.use_database("nasbench201", tmp_path / "missing.db")
    junk = tmp_path / "junk.db"
    junk.write_text("not a database at all " * 100)
    with pytest.raises(UsageError, match="junk.db"):
        databases.use_database("nasbench201", junk)
    with pytest.raises(UsageError, match="not an NNI nasbench201 database.*nb201trialconfig"):
        databases.use_database("nasbench201", benchmark_dbs["nasbench101"])
    with pytest.raises(UsageError, match="unknown benchmark 'nds'"):
        databases.use_database("nds", benchmark_dbs["nasbench101"])


def test_databases_open_read_only(use_benchmark_dbs):
    database = databases._proxy("nasbench201").obj
    with pytest.raises(Exception, match="readonly"):
        database.execute_sql("DELETE FROM nb201trialconfig")


def test_rebuild_replaces_atomically(tmp_path, benchmark_dbs):
    target = tmp_path / "nasbench101-subset20k.db"
    shutil.copy(benchmark_dbs["nasbench101"], target)
    path = databases.build_nasbench101_db(tmp_path)
    assert path == target
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nasbench101-subset20k.db"]  # no partial file left
