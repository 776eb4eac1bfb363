"""The embedded NAS-Bench-201 table: all 15,625 cell architectures and their published figures.

The data is the benchmark's own numbers (see ``docs/data.md``), shipped as
``nni_asenas/data/nb201.npz`` and built by :mod:`nni_asenas.nasbench.build_table`. A simulated search follows the
NAS-Bench-201 / NATS-Bench protocol:

* the search signal of an architecture is its 12-epoch validation accuracy (:meth:`NasBench201Table.signal`);
* one query costs 12/200 of its 200-epoch training time (:meth:`NasBench201Table.cost_seconds`), and a search stops
  at :data:`BUDGET_SECONDS` of simulated time;
* the number reported for the architecture a search picks is its 200-epoch test accuracy, averaged over seeds
  (:meth:`NasBench201Table.test_accuracy`).

Architectures can be given in every form NAS-Bench-201 and NNI users meet (see :func:`parse_arch`)::

    table = load_table()
    table.index("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    table.index("334131")                                   # one op id per edge, in EDGES order
    table.index({"cell/0_1": "conv_3x3", ...})               # NNI hub NasBench201 sample
    table.index({"0_1": "conv_3x3", "0_2": ..., ...})        # nni.nas.benchmark.nasbench201 arch dict
    table.signal((3, 3, 4, 1, 3, 1), "cifar100")
"""

from __future__ import annotations

import difflib
import functools
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

__all__ = [
    "ArchLike",
    "BUDGET_SECONDS",
    "DATASETS",
    "EDGES",
    "FIELD_DESCRIPTIONS",
    "FULL_EPOCHS",
    "NNI_OPS",
    "NasBench201Table",
    "OPS",
    "SIGNAL_EPOCHS",
    "format_arch_str",
    "load_table",
    "normalize_dataset",
    "params_of_arch_string",
    "parse_arch",
]

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")  # table names; op id = position
NNI_OPS = ("none", "skip_connect", "conv_1x1", "conv_3x3", "avg_pool_3x3")  # nni.nas names, same positions
EDGES = ("0_1", "0_2", "1_2", "0_3", "1_3", "2_3")  # arch-string order = NNI hub NasBench201 labels cell/0_1 ...
DATASETS = ("cifar10", "cifar100", "imagenet16-120")
SIGNAL_EPOCHS = 12
FULL_EPOCHS = 200
BUDGET_SECONDS = {"cifar10": 20000.0, "cifar100": 40000.0, "imagenet16-120": 120000.0}

N_ARCHS = len(OPS) ** len(EDGES)
NNI_LABEL_PREFIX = "cell/"
DATA_PATH = Path(__file__).resolve().parents[1] / "data" / "nb201.npz"
COLUMNS_KEY = "__columns__"  # the npz member recording the CSV column order

#: An architecture in any accepted form: index, arch string, digit code, label mapping, or six ops.
ArchLike = Union[int, str, Mapping[str, Union[str, int]], Sequence[Union[int, str]]]

_OP_ID = {**{name: i for i, name in enumerate(OPS)}, **{name: i for i, name in enumerate(NNI_OPS)}}
_VALID_OPS = ", ".join(OPS)
_EDGE_LIST = ", ".join(EDGES)
_ARCH_FORMS = (
    "an index 0..15624, an arch string '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|', a 6-digit code like '334131', "
    "a dict of labels 0_1..2_3 (or cell/0_1..), or a sequence of 6 op ids/names"
)

_DATASET_ALIASES = {
    "cifar10": "cifar10", "c10": "cifar10", "cifar10valid": "cifar10",
    "cifar100": "cifar100", "c100": "cifar100",
    "imagenet16120": "imagenet16-120", "imagenet16": "imagenet16-120", "imagenet": "imagenet16-120",
    "img": "imagenet16-120",
}  # keys: lower case, without '-' and '_'

#: Every per-dataset figure of :meth:`NasBench201Table.row` with its meaning, in display order.
FIELD_DESCRIPTIONS = {
    "val12": "12-epoch validation accuracy (%): the search signal",
    "test12": "12-epoch test accuracy (%)",
    "val200": "200-epoch validation accuracy (%), seed mean",
    "val200_seeds": "200-epoch validation accuracy (%), per seed",
    "test200": "200-epoch test accuracy (%), seed mean: the reported number",
    "test200_1seed": "200-epoch test accuracy (%), one seed",
    "cost_seconds": "simulated cost of one query (s): 12/200 of train_time200_s",
    "train_time200_s": "time to train 200 epochs (s)",
    "params_M": "parameters (millions)",
    "flops_M": "FLOPs (millions)",
    "latency_s": "inference latency (s)",
    "nb201_params_MB": "parameter size reported by the benchmark (MB)",
    "valid_test200": "cifar10-valid split: 200-epoch test accuracy (%)",
    "valid_train_acc200": "cifar10-valid split: 200-epoch train accuracy (%)",
    "valid_val_loss200": "cifar10-valid split: 200-epoch validation loss",
}


def _dataset_columns(p: str, pv: str) -> dict[str, str]:
    """Figure name -> stored column; ``pv`` prefixes the columns measured on the validation split's training run."""
    return {
        "val12": f"{pv}_val12",
        "test12": f"{p}_test12",
        "val200": f"{pv}_val200",
        "val200_seeds": f"{pv}_val200_seeds",
        "test200": f"{p}_test200",
        "test200_1seed": f"{p}_test200_1seed",
        "train_time200_s": f"{pv}_train_time200_s",
        "params_M": f"params_{p}_M",
        "flops_M": f"flops_{p}_M",
        "latency_s": f"{pv}_latency_s",
        "nb201_params_MB": f"{pv}_nb201_reported_params_MB",
    }


# CIFAR-10 signal and validation figures come from the benchmark's cifar10-valid runs (train split only), its
# test figures from the runs trained on train+valid: the benchmark's own convention.
_COLUMNS = {
    "cifar10": {
        **_dataset_columns("c10", "c10v"),
        "valid_test200": "c10v_test200",
        "valid_train_acc200": "c10v_train_acc200",
        "valid_val_loss200": "c10v_val_loss200",
    },
    "cifar100": _dataset_columns("c100", "c100"),
    "imagenet16-120": _dataset_columns("img", "img"),
}
_METRICS = {"test_accuracy": "test200", "signal": "val12", "val200": "val200"}


def normalize_dataset(name: str) -> str:
    """The canonical dataset name (one of :data:`DATASETS`) for ``name``, case-insensitive.

    Accepts aliases such as ``"CIFAR-10"``, ``"cifar10-valid"`` (the split the CIFAR-10 signal comes from),
    ``"ImageNet16-120"`` or ``"imagenet16"``. Raises :class:`ValueError` naming ``name`` otherwise.
    """
    if isinstance(name, str):
        canonical = _DATASET_ALIASES.get(name) or _DATASET_ALIASES.get(
            name.strip().lower().replace("-", "").replace("_", "")
        )
        if canonical:
            return canonical
    raise ValueError(f"unknown dataset {name!r} (valid: {', '.join(DATASETS)})")


def format_arch_str(op_ids: Sequence[int]) -> str:
    """The benchmark's canonical arch string for six op ids in :data:`EDGES` order."""
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*(OPS[i] for i in op_ids))


def _op_id(op: Any, where: str) -> int:
    if isinstance(op, str):
        op_id = _OP_ID.get(op)
        if op_id is None:
            raise ValueError(f"{where}: unknown op {op!r} (valid: {_VALID_OPS}; or conv_1x1, conv_3x3)")
        return op_id
    if isinstance(op, (int, np.integer)) and not isinstance(op, (bool, np.bool_)):
        if 0 <= op < len(OPS):
            return int(op)
        raise ValueError(f"{where}: op id {op} is out of range 0-{len(OPS) - 1}")
    raise ValueError(f"{where}: op {op!r} is neither an op name nor an op id")


def _parse_arch_string(text: str) -> tuple[int, ...]:
    nodes = text.split("+")
    if len(nodes) != 3:
        raise ValueError(f"arch string {text!r} has {len(nodes)} node group(s) separated by '+', expected 3")
    ids = []
    for node, group in enumerate(nodes, start=1):
        if len(group) < 2 or group[0] != "|" or group[-1] != "|":
            raise ValueError(f"arch string {text!r}: node {node} group {group!r} must start and end with '|'")
        tokens = group[1:-1].split("|")
        if len(tokens) != node:
            raise ValueError(f"arch string {text!r}: node {node} has {len(tokens)} input(s), expected {node}")
        for source, token in enumerate(tokens):
            edge = f"{source}_{node}"
            op, sep, source_text = token.partition("~")
            if not sep or source_text != str(source):
                raise ValueError(f"arch string {text!r}: edge {edge} token {token!r} should read 'OP~{source}'")
            ids.append((EDGES.index(edge), _op_id(op, f"arch string {text!r}: edge {edge}")))
    return tuple(op for _, op in sorted(ids))


def _parse_digit_code(text: str) -> tuple[int, ...]:
    if len(text) != len(EDGES):
        raise ValueError(
            f"digit code {text!r} has {len(text)} digits, expected 6 (one op id 0-4 per edge {_EDGE_LIST})"
        )
    return tuple(_op_id(int(digit), f"digit code {text!r}: edge {edge}") for edge, digit in zip(EDGES, text))


def _parse_mapping(arch: Mapping[Any, Any]) -> tuple[int, ...]:
    ops: dict[str, int] = {}
    given: dict[str, str] = {}
    for label, op in arch.items():
        edge = label[len(NNI_LABEL_PREFIX):] if isinstance(label, str) and label.startswith(NNI_LABEL_PREFIX) else label
        if edge not in EDGES:
            raise ValueError(f"unknown label {label!r} (expected {_EDGE_LIST}, optionally prefixed 'cell/')")
        if edge in given:
            raise ValueError(f"edge {edge} is given twice, as {given[edge]!r} and {label!r}")
        given[edge] = label
        ops[edge] = _op_id(op, f"label {label!r}")
    missing = [edge for edge in EDGES if edge not in ops]
    if missing:
        raise ValueError(f"missing label(s) {', '.join(missing)} in architecture dict (needs all of {_EDGE_LIST})")
    return tuple(ops[edge] for edge in EDGES)


def parse_arch(arch: ArchLike) -> tuple[int, ...]:
    """Six op ids (in :data:`EDGES` order) for an architecture given without its index.

    Accepted forms: an arch string ``"|nor_conv_3x3~0|+|...|"``; a 6-digit code ``"334131"`` (one op id per
    edge); a mapping from labels (``"0_1"`` ... as in ``nni.nas.benchmark.nasbench201``, or ``"cell/0_1"`` ... as
    sampled from NNI's hub ``NasBench201``) to ops; a sequence of six op ids or op names. Op names may be the
    table's (``nor_conv_3x3``) or NNI's (``conv_3x3``). Raises :class:`ValueError` naming the bad part.
    """
    if isinstance(arch, str):
        text = arch.strip()
        if text.isdigit():
            return _parse_digit_code(text)
        if "|" in text or "~" in text:
            return _parse_arch_string(text)
        raise ValueError(f"cannot read architecture {arch!r}: expected {_ARCH_FORMS}")
    if isinstance(arch, Mapping):
        return _parse_mapping(arch)
    if isinstance(arch, (Sequence, np.ndarray)) and not isinstance(arch, (bytes, bytearray)):
        if len(arch) != len(EDGES):
            raise ValueError(f"op sequence {list(arch)!r} has {len(arch)} entries, expected 6 (edges {_EDGE_LIST})")
        return tuple(_op_id(op, f"op sequence: edge {edge}") for edge, op in zip(EDGES, arch))
    raise ValueError(f"cannot read an architecture from {type(arch).__name__} {arch!r}: expected {_ARCH_FORMS}")


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


class NasBench201Table:
    """All NAS-Bench-201 architectures with their figures, indexed by the benchmark's own index 0..15624.

    Build it with :func:`load_table` (cached) rather than directly. ``arrays`` are the contents of
    ``nb201.npz`` (see :mod:`nni_asenas.nasbench.build_table`). Every ``arch`` argument accepts any form
    :meth:`index` accepts; every ``dataset`` argument any name :func:`normalize_dataset` accepts.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray]) -> None:
        self._columns = tuple(str(name) for name in arrays[COLUMNS_KEY])
        self._arrays = {name: _read_only(np.asarray(value)) for name, value in arrays.items() if name != COLUMNS_KEY}
        op_ids = self._arrays["op_ids"]
        self._op_tuples: list[tuple[int, ...]] = [tuple(row) for row in op_ids.tolist()]
        self._index_by_ops = {ops: i for i, ops in enumerate(self._op_tuples)}
        self._arch_strs = [format_arch_str(ops) for ops in self._op_tuples]
        self._index_by_str = {text: i for i, text in enumerate(self._arch_strs)}
        n = len(self._op_tuples)
        self._arrays["index"] = _read_only(np.arange(n))
        self._arrays["arch_str"] = _read_only(np.array(self._arch_strs))
        missing = [name for name in self._columns if name not in self._arrays]
        if missing:
            raise ValueError(f"table arrays lack column(s) {', '.join(missing)}")
        self._cost = {
            dataset: _read_only(self._arrays[cols["train_time200_s"]] * (SIGNAL_EPOCHS / FULL_EPOCHS))
            for dataset, cols in _COLUMNS.items()
        }

    @classmethod
    def from_npz(cls, path: str | Path) -> NasBench201Table:
        """Load a table from an ``nb201.npz`` written by :mod:`nni_asenas.nasbench.build_table`."""
        with np.load(path, allow_pickle=False) as archive:
            return cls({name: archive[name] for name in archive.files})

    def __len__(self) -> int:
        return len(self._op_tuples)

    def __repr__(self) -> str:
        return f"NasBench201Table({len(self)} architectures, datasets={', '.join(DATASETS)})"

    @property
    def columns(self) -> tuple[str, ...]:
        """The names of the stored columns, in the order of the source CSV."""
        return self._columns

    # ----------------------------------------------------------------------------------------- architectures

    def index(self, arch: ArchLike) -> int:
        """The benchmark index of ``arch``: an int index, or any form :func:`parse_arch` accepts.

        Raises :class:`ValueError` naming the bad part (edge, op, label) of a malformed architecture.
        """
        if type(arch) is tuple:  # the searcher's hot path: six op ids
            found = self._index_by_ops.get(arch)
            if found is not None:
                return found
        elif type(arch) is str:
            found = self._index_by_str.get(arch)
            if found is not None:
                return found
        if isinstance(arch, (int, np.integer)) and not isinstance(arch, (bool, np.bool_)):
            if 0 <= arch < len(self):
                return int(arch)
            raise ValueError(f"index {arch} is out of range 0..{len(self) - 1}")
        ops = parse_arch(arch)
        found = self._index_by_ops.get(ops)
        if found is None:
            raise ValueError(f"architecture {format_arch_str(ops)} is not in the table")
        return found

    def arch_str(self, arch: ArchLike) -> str:
        """The canonical arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        return self._arch_strs[self.index(arch)]

    def op_ids(self, arch: ArchLike) -> tuple[int, ...]:
        """Six op ids (positions in :data:`OPS`) in :data:`EDGES` order."""
        return self._op_tuples[self.index(arch)]

    def arch_dict(self, arch: ArchLike, *, nni_names: bool = False) -> dict[str, str]:
        """``{"0_1": op, ...}`` in :data:`EDGES` order; ``nni_names`` spells convolutions as NNI does (``conv_3x3``)."""
        names = NNI_OPS if nni_names else OPS
        return {edge: names[op] for edge, op in zip(EDGES, self.op_ids(arch))}

    def decisions(self) -> dict[str, list[str]]:
        """The search space as decisions for a searcher: every edge label with the ordered op names."""
        return {edge: list(OPS) for edge in EDGES}

    # ----------------------------------------------------------------------------------------- figures

    def signal(self, arch: ArchLike, dataset: str) -> float:
        """12-epoch validation accuracy (%) on ``dataset``: what a search observes."""
        return float(self.signal_array(dataset)[self.index(arch)])

    def cost_seconds(self, arch: ArchLike, dataset: str) -> float:
        """Simulated seconds one query costs: 12/200 of the 200-epoch training time on ``dataset``."""
        return float(self.cost_array(dataset)[self.index(arch)])

    def test_accuracy(self, arch: ArchLike, dataset: str) -> float:
        """200-epoch test accuracy (%) on ``dataset``, averaged over seeds: the number papers report."""
        return float(self.test_array(dataset)[self.index(arch)])

    def signal_array(self, dataset: str) -> np.ndarray:
        """:meth:`signal` of every architecture, by index (read-only)."""
        return self._arrays[_COLUMNS[normalize_dataset(dataset)]["val12"]]

    def cost_array(self, dataset: str) -> np.ndarray:
        """:meth:`cost_seconds` of every architecture, by index (read-only)."""
        return self._cost[normalize_dataset(dataset)]

    def test_array(self, dataset: str) -> np.ndarray:
        """:meth:`test_accuracy` of every architecture, by index (read-only)."""
        return self._arrays[_COLUMNS[normalize_dataset(dataset)]["test200"]]

    def metric_array(self, dataset: str, metric: str) -> np.ndarray:
        """One figure of every architecture, by index (read-only): ``metric`` as in :meth:`optimum`."""
        if metric not in _METRICS:
            raise ValueError(f"unknown metric {metric!r} (valid: {', '.join(_METRICS)})")
        return self._arrays[_COLUMNS[normalize_dataset(dataset)][_METRICS[metric]]]

    def column(self, name: str) -> np.ndarray:
        """One stored column by its CSV name (see :attr:`columns`), by index (read-only).

        ``op_ids`` is a ``(15625, 6)`` array, ``*_seeds`` columns are ``(15625, n_seeds)`` padded with NaN.
        """
        if name not in self._columns:
            close = difflib.get_close_matches(str(name), self._columns, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown column {name!r}{hint} ({len(self._columns)} columns: see table.columns)")
        return self._arrays[name]

    def figures(self, arch: ArchLike, dataset: str) -> dict[str, Any]:
        """Every figure of ``arch`` on ``dataset`` under the names of :data:`FIELD_DESCRIPTIONS`."""
        i = self.index(arch)
        dataset = normalize_dataset(dataset)
        out: dict[str, Any] = {}
        for field in FIELD_DESCRIPTIONS:
            if field == "cost_seconds":
                out[field] = float(self._cost[dataset][i])
            elif field in _COLUMNS[dataset]:
                value = self._arrays[_COLUMNS[dataset][field]][i]
                out[field] = [float(v) for v in value if not np.isnan(v)] if value.ndim else float(value)
        return out

    def row(self, arch: ArchLike, dataset: str | None = None) -> dict[str, Any]:
        """Index, arch string and every figure: ``{..., "dataset": d, **figures}`` for one dataset, or
        ``{..., "cifar10": {...}, "cifar100": {...}, "imagenet16-120": {...}}`` when ``dataset`` is None."""
        i = self.index(arch)
        head: dict[str, Any] = {"index": i, "arch_str": self._arch_strs[i]}
        if dataset is not None:
            dataset = normalize_dataset(dataset)
            return {**head, "dataset": dataset, **self.figures(i, dataset)}
        return {**head, **{name: self.figures(i, name) for name in DATASETS}}

    def optimum(self, dataset: str, metric: str = "test_accuracy") -> tuple[int, float]:
        """``(index, value)`` of the best architecture on ``dataset`` by ``metric``: ``"test_accuracy"`` (200-epoch
        test, seed mean), ``"signal"`` (12-epoch validation) or ``"val200"`` (200-epoch validation, seed mean).
        Ties go to the lowest index."""
        values = self.metric_array(dataset, metric)
        best = int(np.argmax(values))
        return best, float(values[best])


@functools.cache
def load_table() -> NasBench201Table:
    """The packaged NAS-Bench-201 table, loaded once per process."""
    return NasBench201Table.from_npz(DATA_PATH)


def params_of_arch_string(text: str, decisions: Mapping[str, Sequence[Any]]) -> dict[str, str]:
    """A NAS-Bench-201 architecture given as text (an arch string, a 6-digit code or an index) as the parameters
    of ``decisions``, which must be the table's space (labels :data:`EDGES`, as in
    ``search_spaces/nasbench201.json``); :class:`ValueError` otherwise."""
    params = load_table().arch_dict(text)
    if set(params) != set(decisions):
        raise ValueError(f"a NAS-Bench-201 arch string, but the search space has parameters {sorted(decisions)}")
    return params
