"""An accuracy predictor for the MobileNet-like space, as the authors of ASE-NAS used on ImageNet.

The authors did not score each candidate on the supernet during the search: they trained a small MLP on
(architecture, sub-net accuracy) pairs measured on OFA's supernet and searched against it. This module gives
the same three pieces, with no dependency on how the accuracies were measured:

* :func:`encode`: the authors' encoding. 20 layer slots (5 stages x 4 blocks), each a 10-way one-hot: index 0
  for a block beyond its stage's depth, ``1 + 3 * kernel_index + expand_index`` for kernel (3, 5, 7) and expand
  ratio (3, 4, 6) otherwise; 200 features in all.
* :class:`AccuracyPredictor`: their MLP, ``Linear(200, 128), Dropout, ReLU, Linear(128, 128), Dropout, ReLU,
  Linear(128, 1)`` (dropout 0.5), predicting top-1 in percent. One addition: the output is de-standardised with the
  training targets' mean and standard deviation (two stored numbers), so that SGD at learning rate 0.1 starts
  near the answer instead of 75 points away from it; the network and its inputs are theirs.
* :func:`collect_pairs` (resumable JSONL, any ``arch -> accuracy`` callable) and :func:`train_predictor` (their
  recipe: 90/10 seeded split, SGD 0.1 Nesterov momentum 0.9, weight decay 3e-5, cosine to 0, batch 256, MSE,
  200 epochs), which reports Kendall's tau and the mean absolute error on the held-out pairs.

A trained predictor is a file (:meth:`AccuracyPredictor.save`) that ``nni-asenas search --space mobilenet
--predictor FILE`` searches against.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from ..config import check_seed
from ..errors import UsageError
from ..threads import one_thread
from .space import (
    DEPTHS,
    EXPAND_RATIOS,
    KERNELS,
    MAX_DEPTH,
    STAGES,
    canonical_arch,
    decisions,
    depth_label,
    expand_label,
    kernel_label,
)

__all__ = [
    "N_FEATURES", "AccuracyPredictor", "Pair", "PredictorTraining", "TrainingResult", "collect_pairs", "encode",
    "encode_many", "kendall_tau", "read_pairs", "sample_architectures", "train_predictor",
]

#: A training whose loss or weights stop being finite restarts with half the learning rate, this many times.
MAX_DIVERGENCE_RETRIES = 3
N_SLOTS = len(STAGES) * MAX_DEPTH
N_CHOICES = 1 + len(KERNELS) * len(EXPAND_RATIOS)
N_FEATURES = N_SLOTS * N_CHOICES
_FORMAT = "nni-asenas-accuracy-predictor"
_FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------- the encoding

_KERNEL_INDEX = {kernel: index for index, kernel in enumerate(KERNELS)}
_EXPAND_INDEX = {ratio: index for index, ratio in enumerate(EXPAND_RATIOS)}
_LABELS = frozenset(decisions())
_SLOT_LABELS = [(depth_label(stage), block, kernel_label(stage, block), expand_label(stage, block))
                for stage in range(1, len(STAGES) + 1) for block in range(MAX_DEPTH)]


def _choice_indices(arch: Mapping[str, Any]) -> list[int]:
    """The one-hot index of each of the 20 slots (fast path; anything unusual goes through the full check)."""
    try:
        if not arch.keys() <= _LABELS:
            raise KeyError
        indices = []
        for depth_key, block, kernel_key, expand_key in _SLOT_LABELS:
            depth = arch[depth_key]
            if depth not in DEPTHS or isinstance(depth, bool):
                raise KeyError
            if block >= depth:
                indices.append(0)
            else:
                kernel, expand = arch[kernel_key], arch[expand_key]
                if isinstance(kernel, bool) or isinstance(expand, bool):
                    raise KeyError
                indices.append(1 + len(EXPAND_RATIOS) * _KERNEL_INDEX[kernel] + _EXPAND_INDEX[expand])
        return indices
    except (KeyError, TypeError, AttributeError):
        return _choice_indices(canonical_arch(arch))  # raises the one-line UsageError if arch is invalid


def encode(arch: Mapping[str, Any]) -> np.ndarray:
    """The authors' 200-feature encoding of one architecture (float32; see the module docstring)."""
    return encode_many([arch])[0]


def encode_many(archs: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """:func:`encode` of each architecture, as an ``(n, 200)`` float32 array."""
    features = np.zeros((len(archs), N_SLOTS, N_CHOICES), dtype=np.float32)
    for row, arch in enumerate(archs):
        features[row, np.arange(N_SLOTS), _choice_indices(arch)] = 1.0
    return features.reshape(len(archs), N_FEATURES)


# ----------------------------------------------------------------------------------------------- the network

class AccuracyPredictor(nn.Module):
    """The authors' MLP over :func:`encode` features; ``forward`` returns predicted top-1 (percent), shape ``(n,)``.

    ``target_mean`` and ``target_std`` map the last layer's output to percent (set by :func:`train_predictor`
    from the training targets). ``seed`` seeds the weight initialisation.
    """

    def __init__(self, *, hidden_size: int = 128, n_layers: int = 3, dropout: float = 0.5, target_mean: float = 0.0,
                 target_std: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
            raise UsageError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 2:
            raise UsageError(f"n_layers must be an integer >= 2, got {n_layers!r}")
        if not 0 <= dropout < 1:
            raise UsageError(f"dropout must be in [0, 1), got {dropout!r}")
        if not (math.isfinite(target_mean) and math.isfinite(target_std) and target_std > 0):
            raise UsageError(f"target_mean/target_std must be finite with target_std > 0, got "
                             f"{target_mean!r}/{target_std!r}")
        self.hidden_size, self.n_layers, self.dropout = hidden_size, n_layers, float(dropout)
        layers: list[nn.Module] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(check_seed(seed))
            for index in range(n_layers):
                last = index == n_layers - 1
                layers.append(nn.Linear(N_FEATURES if index == 0 else hidden_size, 1 if last else hidden_size))
                if not last:
                    layers += [nn.Dropout(dropout), nn.ReLU(inplace=True)]
        self.mlp = nn.Sequential(*layers)
        self.metrics: dict[str, Any] = {}  # what training measured (filled by load())
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std)))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(features).squeeze(-1) * self.target_std + self.target_mean

    def extra_repr(self) -> str:
        return (f"hidden_size={self.hidden_size}, n_layers={self.n_layers}, dropout={self.dropout}, "
                f"target_mean={float(self.get_buffer('target_mean')):.3f}, "
                f"target_std={float(self.get_buffer('target_std')):.3f}")

    @torch.no_grad()
    def predict(self, archs: Sequence[Mapping[str, Any]], *, batch_size: int = 4096) -> np.ndarray:
        """Predicted top-1 (percent) of each architecture, in evaluation mode (no dropout)."""
        was_training = self.training
        self.eval()
        try:
            with one_thread():
                outputs = [self(torch.from_numpy(encode_many(archs[start:start + batch_size])))
                           for start in range(0, len(archs), batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(outputs).numpy().astype(np.float64) if outputs else np.zeros(0)

    def score(self, arch: Mapping[str, Any]) -> float:
        """Predicted top-1 (percent) of one architecture: an ``arch -> float`` evaluator for the searcher."""
        return float(self.predict([arch])[0])

    def config(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "n_layers": self.n_layers, "dropout": self.dropout}

    def has_finite_weights(self) -> bool:
        return all(bool(torch.isfinite(value).all()) for value in self.state_dict().values())

    def save(self, path: str | Path, *, metrics: Mapping[str, Any] | None = None) -> None:
        """Write the predictor (and the training metrics, for the record) with ``torch.save``."""
        torch.save({"format": _FORMAT, "version": _FORMAT_VERSION, "space": "mobilenet", "config": self.config(),
                    "state_dict": self.state_dict(), "metrics": dict(metrics or {})}, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> AccuracyPredictor:
        """Read a file written by :meth:`save` (``UsageError`` naming the file for anything else)."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"predictor {path} does not exist")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
            raise UsageError(f"predictor {path}: not a readable predictor file ({type(exc).__name__})") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise UsageError(f"predictor {path}: not a file written by 'nni-asenas predictor train'")
        if data.get("version") != _FORMAT_VERSION:
            raise UsageError(f"predictor {path}: format version {data.get('version')!r}, this package reads "
                             f"{_FORMAT_VERSION}")
        try:
            predictor = cls(**data["config"])
            predictor.load_state_dict(data["state_dict"])
        except (KeyError, TypeError, RuntimeError) as exc:
            raise UsageError(f"predictor {path}: damaged ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        if not predictor.has_finite_weights():
            raise UsageError(f"predictor {path}: its weights are not finite (a diverged training); train it again")
        predictor.metrics = dict(data.get("metrics", {}))
        return predictor.eval()


# ----------------------------------------------------------------------------------------------- pairs

@dataclass(frozen=True)
class Pair:
    """One measured architecture: ``accuracy`` is top-1 in percent, None when the evaluation failed."""

    arch: dict[str, int]
    accuracy: float | None
    seconds: float = 0.0
    error: str | None = None


def sample_architectures(seed: int) -> Iterator[dict[str, int]]:
    """An endless seeded stream of distinct canonical architectures, each decision uniform (as OFA samples)."""
    rng = random.Random(check_seed(seed))
    space = decisions()
    seen: set[tuple[int, ...]] = set()
    while True:
        arch = canonical_arch({label: rng.choice(options) for label, options in space.items()})
        key = tuple(arch.values())
        if key not in seen:
            seen.add(key)
            yield arch


def _parse_pair(line: str, where: str) -> Pair:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        raise UsageError(f"{where}: not a JSON line") from None
    if not isinstance(record, dict) or "arch" not in record or "accuracy" not in record:
        raise UsageError(f"{where}: expected an object with 'arch' and 'accuracy'")
    try:
        arch = canonical_arch(record["arch"])
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    accuracy = record["accuracy"]
    if accuracy is not None and (isinstance(accuracy, bool) or not isinstance(accuracy, (int, float))
                                 or not math.isfinite(accuracy)):
        raise UsageError(f"{where}: accuracy must be a finite number or null, got {accuracy!r}")
    seconds, error = record.get("seconds", 0.0), record.get("error")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (error is None or isinstance(error, str)):
        raise UsageError(f"{where}: 'seconds' must be a number and 'error' a string or null")
    return Pair(arch, None if accuracy is None else float(accuracy), float(seconds), error)


def read_pairs(path: str | Path) -> list[Pair]:
    """Every pair of a JSONL file written by :func:`collect_pairs` (failed ones included, accuracy None).

    A last line without its newline (a collection killed while writing) is ignored; any other bad line is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"pairs file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete, partial = lines[:-1], lines[-1]
    if partial.strip():
        print(f"nni-asenas: {path}: ignoring an incomplete last line (an interrupted write)", file=sys.stderr)
    return [_parse_pair(line, f"{path} line {number}") for number, line in enumerate(complete, start=1)
            if line.strip()]


def collect_pairs(evaluate: Callable[[dict[str, int]], float], output: str | Path, *, n: int, seed: int = 0,
                  on_pair: Callable[[Pair], None] | None = None) -> list[Pair]:
    """Measure ``n`` architectures with ``evaluate`` (arch -> top-1 percent) and append them to ``output`` (JSONL).

    Architectures come from :func:`sample_architectures` (``seed``). Resumable: pairs already in ``output`` are
    kept and their architectures skipped, so an interrupted collection rerun with the same arguments ends with the
    same file as an uninterrupted one. An evaluation that raises is recorded with ``accuracy: null`` and its error
    (not retried, not counted in ``n``); each line is flushed to disk as soon as it is measured.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"n must be a positive integer, got {n!r}")
    output = Path(output)
    pairs = read_pairs(output) if output.exists() else []
    if output.exists():
        _drop_partial_line(output)
    done = {tuple(pair.arch.values()) for pair in pairs}
    n_ok = sum(pair.accuracy is not None for pair in pairs)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "a", encoding="utf-8") as handle:
        for arch in sample_architectures(seed):
            if n_ok >= n:
                break
            if tuple(arch.values()) in done:
                continue
            start = time.perf_counter()
            accuracy: float | None
            error: str | None
            try:
                value = float(evaluate(arch))
                accuracy, error = (value, None) if math.isfinite(value) else (None, f"non-finite accuracy {value!r}")
            except Exception as exc:  # noqa: BLE001 - a failed evaluation is recorded, never fatal
                accuracy, error = None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            pair = Pair(arch, accuracy, round(time.perf_counter() - start, 4), error)
            record: dict[str, Any] = {"arch": arch, "accuracy": accuracy, "seconds": pair.seconds}
            if error is not None:
                record["error"] = error
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
            pairs.append(pair)
            done.add(tuple(arch.values()))
            n_ok += accuracy is not None
            if on_pair is not None:
                on_pair(pair)
    return pairs


def _drop_partial_line(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[:data.rfind(b"\n") + 1])


# ----------------------------------------------------------------------------------------------- training

def kendall_tau(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b of two equally long sequences (ties handled; NaN for fewer than 2 points or no variation)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("kendall_tau needs two 1-d sequences of the same length")
    concordant = pairs_x = pairs_y = 0.0
    for start in range(0, len(a), 1024):  # rows in chunks: O(n^2) memory would be n^2 * 8 bytes
        da = np.sign(a[start:start + 1024, None] - a[None, :])
        db = np.sign(b[start:start + 1024, None] - b[None, :])
        concordant += float((da * db).sum())
        pairs_x += float(np.abs(da).sum())
        pairs_y += float(np.abs(db).sum())
    if pairs_x == 0 or pairs_y == 0:
        return float("nan")
    return concordant / math.sqrt(pairs_x * pairs_y)


@dataclass(frozen=True)
class PredictorTraining:
    """The training recipe (defaults: the authors')."""

    epochs: int = 200
    batch_size: int = 256
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 3e-5
    train_fraction: float = 0.9
    hidden_size: int = 128
    n_layers: int = 3
    dropout: float = 0.5

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < self.train_fraction < 1:
            raise UsageError(f"train_fraction must be in (0, 1), got {self.train_fraction!r}")
        if not (self.learning_rate > 0 and self.weight_decay >= 0 and 0 <= self.momentum < 1):
            raise UsageError("learning_rate must be > 0, weight_decay >= 0 and momentum in [0, 1)")


@dataclass(frozen=True)
class TrainingResult:
    """A trained predictor and its held-out quality (Kendall's tau, MAE in accuracy points)."""

    predictor: AccuracyPredictor
    kendall_tau: float
    mae: float
    train_mae: float
    n_train: int
    n_test: int
    learning_rate: float  # the one that trained it: the recipe's, or smaller after a divergence
    diverged: tuple[str, ...] = ()  # the learning rates that diverged first, with the epoch

    def metrics(self) -> dict[str, Any]:
        return {"kendall_tau": self.kendall_tau, "mae": self.mae, "train_mae": self.train_mae,
                "n_train": self.n_train, "n_test": self.n_test, "learning_rate": self.learning_rate,
                "diverged": list(self.diverged)}


def train_predictor(pairs: Sequence[Pair | tuple[Mapping[str, Any], float]], *,
                    training: PredictorTraining | None = None, seed: int = 0,
                    on_epoch: Callable[[int, float], None] | None = None) -> TrainingResult:
    """Train an :class:`AccuracyPredictor` on (architecture, top-1 percent) pairs; failed pairs are left out.

    The split is a seeded permutation (``seed``): the first ``train_fraction`` trains, the rest is held out for
    Kendall's tau and the mean absolute error. ``seed`` also seeds initialisation, shuffling and dropout.
    """
    training = training or PredictorTraining()
    seed = check_seed(seed)
    archs, targets = [], []
    for pair in pairs:
        arch, accuracy = (pair.arch, pair.accuracy) if isinstance(pair, Pair) else pair
        if accuracy is not None:
            archs.append(arch)
            targets.append(float(accuracy))
    n_total = len(archs)
    n_train = int(n_total * training.train_fraction)
    if n_train < 2 or n_total - n_train < 2:
        raise UsageError(f"need at least 2 training and 2 held-out pairs, got {n_total} usable pairs "
                         f"(train_fraction {training.train_fraction})")
    features = torch.from_numpy(encode_many(archs))
    y = torch.tensor(targets, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n_total, generator=generator)
    train_idx, test_idx = order[:n_train], order[n_train:]
    mean, std = float(y[train_idx].mean()), float(y[train_idx].std())
    scale = std if std > 1e-8 else 1.0
    shuffle = generator.get_state()  # every attempt shuffles as the first one did
    learning_rate, diverged = training.learning_rate, []
    for _ in range(1 + MAX_DIVERGENCE_RETRIES):
        predictor = AccuracyPredictor(hidden_size=training.hidden_size, n_layers=training.n_layers,
                                      dropout=training.dropout, target_mean=mean, target_std=scale, seed=seed)
        where = _fit(predictor, features, y, train_idx, training, learning_rate, scale, seed, shuffle, on_epoch)
        if where is None:
            break
        diverged.append(f"{learning_rate:g} (epoch {where})")
        learning_rate /= 2  # a smaller step from the same start: the usual cure of an SGD blow-up
    else:
        raise UsageError(f"predictor training diverged (non-finite loss or weights) at every learning rate tried: "
                         f"{', '.join(diverged)}; nothing was written")
    predictor.eval()
    with torch.no_grad():
        predicted = predictor(features)
    errors = (predicted - y).abs()
    tau = kendall_tau(predicted[test_idx].numpy(), y[test_idx].numpy())
    return TrainingResult(predictor, tau, float(errors[test_idx].mean()), float(errors[train_idx].mean()), n_train,
                          n_total - n_train, learning_rate, tuple(diverged))


def _fit(predictor: AccuracyPredictor, features: torch.Tensor, y: torch.Tensor, train_idx: torch.Tensor,
         training: PredictorTraining, learning_rate: float, scale: float, seed: int, shuffle: torch.Tensor,
         on_epoch: Callable[[int, float], None] | None) -> int | None:
    """Train ``predictor`` in place; the epoch at which the loss or the weights stopped being finite, or None."""
    n_train = len(train_idx)
    generator = torch.Generator()
    generator.set_state(shuffle)
    optimizer = torch.optim.SGD(predictor.parameters(), lr=learning_rate, momentum=training.momentum,
                                weight_decay=training.weight_decay, nesterov=training.momentum > 0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, training.epochs, eta_min=0.0)
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(seed)  # dropout masks
        for epoch in range(training.epochs):
            predictor.train()
            permutation = train_idx[torch.randperm(n_train, generator=generator)]
            total = 0.0
            for start in range(0, n_train, training.batch_size):
                batch = permutation[start:start + training.batch_size]
                # the authors' MSE, in units of the targets' standard deviation (same minimiser, better scaled)
                loss = torch.nn.functional.mse_loss(predictor(features[batch]), y[batch]) / scale ** 2
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            scheduler.step()
            if not math.isfinite(total) or not predictor.has_finite_weights():
                return epoch + 1
            if on_epoch is not None:
                on_epoch(epoch + 1, total / n_train)
    return None

