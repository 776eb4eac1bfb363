"""NNI's NAS-Bench-201 / NAS-Bench-101 query interfaces, offline.

NNI 3.0 reads its benchmarks from SQLite databases that it downloads from a blob store (unreachable offline, and
checked against a hash, so a locally built file cannot take their place). This module builds databases in NNI's own
schema (:mod:`nni.nas.benchmark.nasbench201.schema`, :mod:`nni.nas.benchmark.nasbench101.schema`) and points the
schema's peewee proxy at them, so NNI's own ``query_nb201_trial_stats`` / ``query_nb101_trial_stats`` and
``NasBench201Benchmark`` / ``NasBench101Benchmark`` read them::

    $ nni-asenas db build                    # writes ~/.cache/nni-asenas/{nasbench201,nasbench101-subset20k}.db

    from nni_asenas.nasbench import databases
    databases.install()                      # or databases.use_database("nasbench201", path)
    from nni.nas.benchmark.nasbench201 import query_nb201_trial_stats
    query_nb201_trial_stats(arch, 200, "cifar100", reduction="mean")

Where a database comes from, first match wins: :func:`use_database`; the directory in ``$NNI_ASENAS_DB_DIR``;
NNI's own downloaded file (``nasbench201-b2b60732.db`` ... in NNI's nasbenchmark directory); the default directory
(``$XDG_CACHE_HOME/nni-asenas``, else ``~/.cache/nni-asenas``). Resolution happens at the first query, in the
process that queries: with the training-service engine, trials run in other processes that do not import this
module, so benchmark evaluators belong to the sequential engine (as NNI recommends for benchmarks).

What the databases hold
-----------------------
**nasbench201** comes from the embedded NAS-Bench-201 table (:mod:`nni_asenas.nasbench.nb201`): every architecture,
num_epochs 12 and 200, datasets ``cifar10-valid``, ``cifar10``, ``cifar100``, ``imagenet16-120``, in NNI's layout
(one config per architecture x epochs x dataset, trial stats, one intermediate row at the last epoch). The table
has per-seed figures only for the 200-epoch validation accuracy (2 or 3 seeds): those configs get one trial row per
seed, and the figures the table only has as seed means (test accuracy, losses, train accuracy) are repeated in each
of them, so ``reduction="mean"`` gives the benchmark's seed means. Figures the table lacks are NULL (``None``):
seeds, evaluation times, ``ori_test`` figures of cifar100 / imagenet16-120, the 12-epoch cifar10-valid test
accuracy, latency and training time of ``cifar10`` (trained on train+valid). 12-epoch training time is 12/200 of
the 200-epoch time (per-epoch time x 12). The ``*_1seed`` test accuracies have no place in NNI's schema (they
stay in the table).

**nasbench101** is a 20,001-cell subset of NAS-Bench-101 (``nni_asenas/data/nb101_subset_20k.json.gz``, about 5 %
of the 423,624 cells, close to a uniform sample) with validation accuracy only: one trial per cell and epoch
budget (4, 12, 36, 108), ``test_acc`` / ``train_acc`` NULL, training time at 108 epochs only. Queries for cells
outside the subset return nothing. Use it for tests and demos; the full benchmark is NNI's own database.

These columns are NOT NULL in NNI's schema; here measurement columns accept NULL instead of invented numbers.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from nni.nas.benchmark.constants import DATABASE_DIR, DB_URLS
from nni.nas.benchmark.nasbench101 import schema as nb101_schema
from nni.nas.benchmark.nasbench201 import schema as nb201_schema
from peewee import Proxy, SchemaManager
from playhouse.sqlite_ext import SqliteExtDatabase

from nni_asenas.errors import UsageError

__all__ = [
    "BENCHMARKS",
    "DB_FILE_NAMES",
    "DatabaseNotFoundError",
    "ENV_DB_DIR",
    "NB101_SUBSET_PATH",
    "build_nasbench101_db",
    "build_nasbench201_db",
    "database_info",
    "default_db_dir",
    "find_database",
    "install",
    "use_database",
]

BENCHMARKS = ("nasbench201", "nasbench101")
ENV_DB_DIR = "NNI_ASENAS_DB_DIR"
DB_FILE_NAMES = {"nasbench201": "nasbench201.db", "nasbench101": "nasbench101-subset20k.db"}
NB101_SUBSET_PATH = Path(__file__).resolve().parents[1] / "data" / "nb101_subset_20k.json.gz"
BUILD_COMMAND = "nni-asenas db build"

_SCHEMAS = {"nasbench201": nb201_schema, "nasbench101": nb101_schema}
_MODELS = {
    "nasbench201": (nb201_schema.Nb201TrialConfig, nb201_schema.Nb201TrialStats, nb201_schema.Nb201IntermediateStats),
    "nasbench101": (nb101_schema.Nb101TrialConfig, nb101_schema.Nb101TrialStats, nb101_schema.Nb101IntermediateStats),
}
# Columns that stay NOT NULL (keys and configs); every measurement column accepts NULL for "not in the source".
_REQUIRED_COLUMNS = frozenset({
    "id", "config_id", "trial_id", "current_epoch",
    "arch", "num_epochs", "num_channels", "num_cells", "dataset", "num_vertices", "hash",
})
_INFO_TABLE = "nni_asenas_info"

_logger = logging.getLogger(__name__)


class DatabaseNotFoundError(UsageError, FileNotFoundError):
    """No database for a benchmark; the message says how to build one."""


# ----------------------------------------------------------------------------------------------- where they are


def default_db_dir() -> Path:
    """``$NNI_ASENAS_DB_DIR`` if set, else ``$XDG_CACHE_HOME/nni-asenas`` (``~/.cache/nni-asenas``)."""
    configured = os.environ.get(ENV_DB_DIR)
    if configured:
        return Path(configured).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "nni-asenas"


def _check_name(name: str) -> str:
    if name not in BENCHMARKS:
        raise UsageError(f"unknown benchmark {name!r} (valid: {', '.join(BENCHMARKS)})")
    return name


def find_database(name: str) -> Path:
    """The database file NNI's ``name`` queries read when :func:`use_database` was not called (see module doc).

    Raises :class:`DatabaseNotFoundError` naming ``nni-asenas db build`` when there is none.
    """
    _check_name(name)
    file_name = DB_FILE_NAMES[name]
    configured = os.environ.get(ENV_DB_DIR)
    if configured:
        path = Path(configured).expanduser() / file_name
        if path.is_file():
            return path
        raise DatabaseNotFoundError(
            f"no {name} database at {path} (${ENV_DB_DIR}={configured}): run `{BUILD_COMMAND} --out {configured}`"
        )
    nni_official = Path(DATABASE_DIR) / os.path.basename(DB_URLS[name])
    if nni_official.is_file():
        return nni_official
    path = default_db_dir() / file_name
    if path.is_file():
        return path
    raise DatabaseNotFoundError(
        f"no {name} database: run `{BUILD_COMMAND}` (writes {path}), set ${ENV_DB_DIR} to the directory of "
        f"an earlier build, or call nni_asenas.nasbench.databases.use_database({name!r}, path)"
    )


def _readonly_uri(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"


class _ResolvingDatabase(SqliteExtDatabase):
    """A database that finds its file (:func:`find_database`) when NNI first queries it, and opens it read-only."""

    def __init__(self, benchmark: str) -> None:
        super().__init__(None, autoconnect=True)
        self.benchmark = benchmark
        self._resolve_lock = threading.Lock()

    def connect(self, reuse_if_open: bool = False) -> bool:
        if self.deferred:
            with self._resolve_lock:
                if self.deferred:
                    self.init(_readonly_uri(find_database(self.benchmark)), uri=True)
        return super().connect(reuse_if_open)


def _proxy(name: str) -> Proxy:
    return _SCHEMAS[name].proxy


def _install(name: str, database: SqliteExtDatabase) -> None:
    proxy = _proxy(name)
    previous = proxy.obj
    proxy.initialize(database)
    if previous is not None and previous is not database and not previous.deferred:
        previous.close()  # this thread's connection; others close with their threads


def install(names: Sequence[str] = BENCHMARKS) -> None:
    """Make NNI's own benchmark queries find this package's databases (see the module doc), once asked.

    Importing this module changes nothing in NNI; this call points the schemas' peewee proxies that nobody has
    initialised yet at a database found on first query (:func:`find_database`). An earlier :func:`use_database`
    choice is kept.
    """
    for name in names:
        if _proxy(_check_name(name)).obj is None:
            _install(name, _ResolvingDatabase(name))


def use_database(name: str, path: str | os.PathLike[str] | None) -> Path | None:
    """Make NNI's ``name`` queries (``"nasbench201"`` or ``"nasbench101"``) read the database at ``path``.

    It must be a database in NNI's schema (one that :func:`build_nasbench201_db` / :func:`build_nasbench101_db`
    or NNI wrote). It is opened read-only. ``path=None`` goes back to finding the database automatically.
    Returns the resolved path.
    """
    _check_name(name)
    if path is None:
        _install(name, _ResolvingDatabase(name))
        return None
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise DatabaseNotFoundError(f"no {name} database at {resolved}: build one with `{BUILD_COMMAND}`")
    missing = _missing_tables(resolved, name)
    if missing:
        raise UsageError(
            f"{resolved} is not an NNI {name} database (no table {missing[0]}); build one with `{BUILD_COMMAND}`"
        )
    _install(name, SqliteExtDatabase(_readonly_uri(resolved), uri=True, autoconnect=True))
    return resolved


def _missing_tables(path: Path, name: str) -> list[str]:
    try:
        with contextlib.closing(_connect_readonly(path)) as conn:
            present = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{path} is not an SQLite database ({exc})") from None
    return [model._meta.table_name for model in _MODELS[name] if model._meta.table_name not in present]


def _connect_readonly(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(_readonly_uri(path), uri=True)


def database_info(path: str | os.PathLike[str]) -> dict[str, str]:
    """The description a database built here carries (benchmark, source, notes); empty for other databases."""
    with contextlib.closing(_connect_readonly(Path(path))) as conn:
        try:
            return dict(conn.execute(f'SELECT key, value FROM "{_INFO_TABLE}"').fetchall())
        except sqlite3.OperationalError:  # no such table: not built here
            return {}


# ----------------------------------------------------------------------------------------------- building


def _schema_statements(name: str) -> tuple[list[str], list[str]]:
    """NNI's CREATE TABLE / CREATE INDEX statements for ``name``, with measurement columns made nullable."""
    scratch = SqliteExtDatabase(":memory:")
    for model in _MODELS[name]:
        manager = SchemaManager(model, scratch)  # the model's DDL run on another database; the proxy is untouched
        manager.create_table(safe=False)
        manager.create_indexes(safe=False)
    rows = scratch.execute_sql("SELECT type, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").fetchall()
    scratch.close()

    def relax(match: re.Match[str]) -> str:
        return match.group(0) if match.group(1) in _REQUIRED_COLUMNS else match.group(0)[: -len(" NOT NULL")]

    tables = [re.sub(r'"(\w+)" [A-Z]+(?:\(\d+\))? NOT NULL', relax, sql) for kind, sql in rows if kind == "table"]
    indexes = [sql for kind, sql in rows if kind == "index"]
    return tables, indexes


def _columns(model: Any) -> list[str]:
    return [field.column_name for field in model._meta.sorted_fields]


def _write_database(name: str, out_dir: str | os.PathLike[str], rows: Sequence[Iterable[tuple]], info: dict[str, str]) -> Path:
    """Write the three tables of ``name`` (rows in model order: config, stats, intermediates) atomically."""
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    final = out / DB_FILE_NAMES[name]
    partial = out / f".{final.name}.{os.getpid()}.partial"
    partial.unlink(missing_ok=True)
    tables, indexes = _schema_statements(name)
    conn = sqlite3.connect(partial)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        for sql in tables:
            conn.execute(sql)
        for model, model_rows in zip(_MODELS[name], rows):
            columns = _columns(model)
            # arch goes through SQLite's json(), exactly as NNI's JSONField writes it and compares it in queries.
            values = ", ".join("json(?)" if column == "arch" else "?" for column in columns)
            quoted = ", ".join(f'"{column}"' for column in columns)
            conn.executemany(f'INSERT INTO "{model._meta.table_name}" ({quoted}) VALUES ({values})', model_rows)
        for sql in indexes:
            conn.execute(sql)
        conn.execute(f'CREATE TABLE "{_INFO_TABLE}" ("key" TEXT PRIMARY KEY, "value" TEXT NOT NULL)')
        conn.executemany(f'INSERT INTO "{_INFO_TABLE}" VALUES (?, ?)', sorted(info.items()))
        conn.commit()
    except BaseException:
        conn.close()
        partial.unlink(missing_ok=True)
        raise
    conn.close()
    try:
        os.replace(partial, final)
    except BaseException:  # e.g. a directory or a read-only file in the way: leave no 70 MB partial behind
        partial.unlink(missing_ok=True)
        raise
    return final


def _json_arch(arch: dict[str, Any]) -> str:
    return json.dumps(arch, sort_keys=True)


def _number(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


# NAS-Bench-201 in NNI's layout: (dataset, num_epochs) -> NNI stats field -> (table column, factor).
# "valid_acc_seeds" names the per-seed column that makes one trial row per seed.
_NB201_SCALE12 = 12 / 200  # 12-epoch training time: per-epoch time x 12
_NB201_LAYOUT: dict[tuple[str, int], dict[str, tuple[str, float]]] = {
    ("cifar10-valid", 200): {
        "valid_acc_seeds": ("c10v_val200_seeds", 1.0),
        "train_acc": ("c10v_train_acc200", 1.0),
        "test_acc": ("c10v_test200", 1.0),
        "ori_test_acc": ("c10v_test200", 1.0),  # for cifar10-valid, test is the original test set
        "valid_loss": ("c10v_val_loss200", 1.0),
        "parameters": ("c10v_nb201_reported_params_MB", 1.0),
        "flops": ("flops_c10_M", 1.0),
        "latency": ("c10v_latency_s", 1.0),
        "training_time": ("c10v_train_time200_s", 1.0),
    },
    ("cifar10", 200): {  # trained on train+valid; NNI's valid/test/ori_test are all the original test set
        "valid_acc": ("c10_test200", 1.0),
        "test_acc": ("c10_test200", 1.0),
        "ori_test_acc": ("c10_test200", 1.0),
        "parameters": ("c10v_nb201_reported_params_MB", 1.0),  # the same network as cifar10-valid
        "flops": ("flops_c10_M", 1.0),
    },
    ("cifar10-valid", 12): {
        "valid_acc": ("c10v_val12", 1.0),
        "parameters": ("c10v_nb201_reported_params_MB", 1.0),
        "flops": ("flops_c10_M", 1.0),
        "latency": ("c10v_latency_s", 1.0),
        "training_time": ("c10v_train_time200_s", _NB201_SCALE12),
    },
    ("cifar10", 12): {
        "valid_acc": ("c10_test12", 1.0),
        "test_acc": ("c10_test12", 1.0),
        "ori_test_acc": ("c10_test12", 1.0),
        "parameters": ("c10v_nb201_reported_params_MB", 1.0),
        "flops": ("flops_c10_M", 1.0),
    },
}
for _dataset, _p in (("cifar100", "c100"), ("imagenet16-120", "img")):
    _common = {
        "parameters": (f"{_p}_nb201_reported_params_MB", 1.0),
        "flops": (f"flops_{_p}_M", 1.0),
        "latency": (f"{_p}_latency_s", 1.0),
    }
    _NB201_LAYOUT[(_dataset, 200)] = {
        "valid_acc_seeds": (f"{_p}_val200_seeds", 1.0),
        "test_acc": (f"{_p}_test200", 1.0),
        "training_time": (f"{_p}_train_time200_s", 1.0),
        **_common,
    }
    _NB201_LAYOUT[(_dataset, 12)] = {
        "valid_acc": (f"{_p}_val12", 1.0),
        "test_acc": (f"{_p}_test12", 1.0),
        "training_time": (f"{_p}_train_time200_s", _NB201_SCALE12),
        **_common,
    }

NB201_EPOCHS = (12, 200)
NB201_DATASETS = tuple(nb201_schema.Nb201TrialConfig.dataset.choices)
_NB201_OPS = ("none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3")  # NNI's names, by table op id
_NB201_EDGES = ("0_1", "0_2", "1_2", "0_3", "1_3", "2_3")


def _nb201_rows(table: Any) -> tuple[list[tuple], list[tuple], list[tuple]]:
    stats_fields = _columns(nb201_schema.Nb201TrialStats)[2:]  # after id, config_id
    inter_fields = _columns(nb201_schema.Nb201IntermediateStats)[3:]  # after id, trial_id, current_epoch
    needed = {column for spec in _NB201_LAYOUT.values() for column, _ in spec.values()}
    data = {column: table.column(column).tolist() for column in sorted(needed)}
    op_ids = table.column("op_ids").tolist()

    configs: list[tuple] = []
    stats: list[tuple] = []
    intermediates: list[tuple] = []
    for i, ops in enumerate(op_ids):
        arch = _json_arch({edge: _NB201_OPS[op] for edge, op in zip(_NB201_EDGES, ops)})
        for epochs in NB201_EPOCHS:
            for dataset in NB201_DATASETS:
                config_id = len(configs) + 1
                configs.append((config_id, arch, epochs, 16, 5, dataset))
                spec = _NB201_LAYOUT[(dataset, epochs)]
                base = dict.fromkeys(stats_fields)
                for field, (column, factor) in spec.items():
                    if field != "valid_acc_seeds":
                        value = _number(data[column][i])
                        base[field] = None if value is None else value * factor
                if "valid_acc_seeds" in spec:
                    seeds = [v for v in data[spec["valid_acc_seeds"][0]][i] if not math.isnan(v)]
                else:
                    seeds = [base["valid_acc"]]
                for valid_acc in seeds:
                    trial_id = len(stats) + 1
                    row = {**base, "valid_acc": valid_acc}
                    stats.append((trial_id, config_id, *(row[f] for f in stats_fields)))
                    intermediates.append((trial_id, trial_id, epochs, *(row[f] for f in inter_fields)))
    return configs, stats, intermediates


def build_nasbench201_db(out_dir: str | os.PathLike[str], *, table: Any = None) -> Path:
    """Write ``out_dir/nasbench201.db``: NAS-Bench-201 in NNI's schema, from the embedded table. Returns its path.

    ``table`` defaults to :func:`nni_asenas.nasbench.nb201.load_table`. See the module doc for the layout.
    """
    if table is None:
        from nni_asenas.nasbench.nb201 import load_table

        table = load_table()
    start = time.perf_counter()
    rows = _nb201_rows(table)
    info = {
        "benchmark": "nasbench201",
        "source": "NAS-Bench-201 table embedded in nni_asenas (nni_asenas/data/nb201.npz)",
        "architectures": str(len(table)),
        "note": "seed-mean figures repeated in per-seed rows; figures the table lacks are NULL",
    }
    path = _write_database("nasbench201", out_dir, rows, info)
    _log_build(path, rows, start)
    return path


NB101_EPOCHS = (4, 12, 36, 108)


def _nb101_arch(matrix: Sequence[Sequence[int]], ops: Sequence[str]) -> dict[str, Any]:
    """NNI's NAS-Bench-101 arch dict (``op1..``, ``input1..``) for a cell's adjacency matrix and labels."""
    n = len(ops)
    arch: dict[str, Any] = {f"op{v}": ops[v] for v in range(1, n - 1)}
    for v in range(1, n):
        arch[f"input{v}"] = [u for u in range(v) if matrix[u][v]]
    return arch


def _nb101_rows(records: Sequence[dict[str, Any]]) -> tuple[list[tuple], list[tuple], list[tuple]]:
    configs: list[tuple] = []
    stats: list[tuple] = []
    intermediates: list[tuple] = []
    for record in records:
        ops = record["ops"]
        arch = _json_arch(_nb101_arch(record["matrix"], ops))
        for epochs in NB101_EPOCHS:
            config_id = len(configs) + 1
            configs.append((config_id, arch, len(ops), record["hash"], epochs))
            valid_acc = float(record[f"val_acc_{epochs}"]) * 100
            training_time = float(record["train_time_108_s"]) if epochs == 108 else None
            # stats: id, config, train_acc, valid_acc, test_acc, parameters, training_time
            stats.append((config_id, config_id, None, valid_acc, None, record["params"] / 1e6, training_time))
            # intermediates: id, trial, current_epoch, train_acc, valid_acc, test_acc, training_time
            intermediates.append((config_id, config_id, epochs, None, valid_acc, None, training_time))
    return configs, stats, intermediates


def build_nasbench101_db(out_dir: str | os.PathLike[str], *, subset_path: str | os.PathLike[str] = NB101_SUBSET_PATH) -> Path:
    """Write ``out_dir/nasbench101-subset20k.db``: the embedded 20,001-cell NAS-Bench-101 SUBSET in NNI's schema.

    Validation accuracy only (one run per cell and epoch budget); see the module doc. Returns its path.
    """
    start = time.perf_counter()
    with gzip.open(subset_path, "rt", encoding="utf-8") as fh:
        records = json.load(fh)
    rows = _nb101_rows(records)
    info = {
        "benchmark": "nasbench101",
        "source": "NAS-Bench-101 subset embedded in nni_asenas (nni_asenas/data/nb101_subset_20k.json.gz)",
        "architectures": str(len(records)),
        "note": f"SUBSET: {len(records)} of 423624 cells, validation accuracy only (test_acc and train_acc are NULL)",
    }
    path = _write_database("nasbench101", out_dir, rows, info)
    _log_build(path, rows, start)
    return path


def _log_build(path: Path, rows: Sequence[Sequence[tuple]], start: float) -> None:
    _logger.info(
        "Wrote %s: %d configs, %d trials in %.1f s (%.1f MB)", path, len(rows[0]), len(rows[1]),
        time.perf_counter() - start, path.stat().st_size / 1e6,
    )

