"""Once-for-all (OFA) MobileNetV3 supernet checkpoints as the package's :class:`MobileNetLike` sub-nets.

The authors of ASE-NAS searched ImageNet on OFA's released supernet ``ofa_mbv3_d234_e346_k357_w1.2``: OFA's
``OFAMobileNetV3(width_mult=1.2, ks_list=[3, 5, 7], expand_ratio_list=[3, 4, 6], depth_list=[2, 3, 4])``.
:class:`OfaSupernetWeights` reads a state dict in that layout (no ``ofa`` import needed) and builds the sub-net of
any architecture of the package's MobileNet-like space with the weights OFA's own
``set_active_subnet(...); get_active_subnet(preserve_weight=True)`` would give it.

How an OFA sub-net maps onto :class:`~nni_asenas.imagenet.space.MobileNetLike` (checked layer by layer against
OFA's code; the test suite checks the logits on random supernets):

* stage ``s`` (1-5), block ``j`` (0-3) of the space is OFA's ``blocks[1 + 4 * (s - 1) + j]``; a stage of depth
  ``d`` keeps its first ``d`` blocks (OFA's ``runtime_depth``); ``blocks[0]`` is the fixed first block.
* elastic expand ratio ``e``: the first ``make_divisible(in * e, 8)`` channels of the 1x1 expansion, the
  depthwise conv, their BatchNorms, the squeeze-excite and the projection's inputs (OFA sorts channels by
  importance while it trains, so a prefix is the sub-net; nothing is re-sorted here).
* elastic kernel ``k``: 7 is the stored 7x7 kernel; 5 is its centre 5x5, flattened and multiplied by the
  learned ``7to5_matrix``; 3 is the centre 3x3 of that 5x5, multiplied by ``5to3_matrix`` (OFA's
  ``DynamicSeparableConv2d.get_active_filter``).
* squeeze-excite: the first ``make_divisible(mid // 4, 8)`` reduce channels, reduce and expand biases included.
* head: OFA's ``final_expand_layer`` (1x1 conv, BN, hard-swish) is ``head``; its ``feature_mix_layer`` is a 1x1
  conv *without bias* followed by hard-swish, which is ``classifier.0`` (a ``Linear`` with a bias) with the bias
  set to zero; ``classifier.linear`` is ``classifier.3``. Channel rounding, activations (ReLU in the first block
  and stages 1-2, hard-swish after), SE placement (after the depthwise activation, stages 2, 4 and 5),
  hard-sigmoid gate, strides and residuals are the same in both networks.

The only difference left is that zero bias: a sub-net has 1,536 more parameters than OFA's (all zero at
extraction; fine-tuning may train them).

Checkpoint keys are accepted in OFA's current layout (``...conv.conv.weight``, ``...bn.bn.weight``) and in the
older one of its released files (``.mobile_inverted_conv.``, ``...bn.weight``), with or without a ``module.``
prefix and wrapped or not in ``{"state_dict": ...}``: the same renamings OFA's own ``load_state_dict`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from ..errors import UsageError
from .space import (
    DEPTHS,
    EXPAND_RATIOS,
    FEATURE_WIDTH,
    FIRST_BLOCK_WIDTH,
    HEAD_WIDTH,
    KERNELS,
    MAX_DEPTH,
    STAGES,
    STEM_WIDTH,
    WIDTH_MULT,
    MobileNetLike,
    canonical_arch,
    canonical_key,
    decisions,
    depth_label,
    expand_label,
    kernel_label,
    make_divisible,
    network_plan,
)

__all__ = ["OFA_NET_ID", "OfaSupernetWeights", "arch_from_ofa", "arch_to_ofa", "build_ofa_evaluator", "is_ofa_checkpoint",
           "ofa_layout", "read_tensor_file"]

OFA_NET_ID = "ofa_mbv3_d234_e346_k357_w1.2"
_LAYOUT_NAME = (f"OFAMobileNetV3(width_mult={WIDTH_MULT}, ks_list={list(KERNELS)}, "
                f"expand_ratio_list={list(EXPAND_RATIOS)}, depth_list={list(DEPTHS)})")
_MAX_KERNEL = max(KERNELS)
_BN_KEYS = ("weight", "bias", "running_mean", "running_var")
_SE_REDUCTION = 4


def _ofa_index(stage: int, block: int) -> int:
    return 1 + MAX_DEPTH * (stage - 1) + block


def arch_to_ofa(arch: Mapping[str, Any]) -> dict[str, list[int]]:
    """The space's architecture as OFA's ``set_active_subnet`` arguments ``{"ks": [20], "e": [20], "d": [5]}``.

    Kernels and expand ratios of blocks beyond a stage's depth are the canonical placeholders (OFA ignores them).
    """
    arch = canonical_arch(arch)
    ks, expand, depth = [], [], []
    for stage in range(1, len(STAGES) + 1):
        depth.append(arch[depth_label(stage)])
        for block in range(MAX_DEPTH):
            ks.append(arch[kernel_label(stage, block)])
            expand.append(arch[expand_label(stage, block)])
    return {"ks": ks, "e": expand, "d": depth}


def arch_from_ofa(ks: Sequence[int], e: Sequence[int], d: Sequence[int]) -> dict[str, int]:
    """OFA's per-block kernel sizes and expand ratios (20 each) and per-stage depths (5) as the space's arch."""
    n_blocks = len(STAGES) * MAX_DEPTH
    if len(ks) != n_blocks or len(e) != n_blocks or len(d) != len(STAGES):
        raise UsageError(f"OFA architecture needs {n_blocks} kernel sizes, {n_blocks} expand ratios and "
                         f"{len(STAGES)} depths, got {len(ks)}, {len(e)} and {len(d)}")
    params: dict[str, int] = {}
    for stage in range(1, len(STAGES) + 1):
        params[depth_label(stage)] = int(d[stage - 1])
        for block in range(int(d[stage - 1])):
            params[kernel_label(stage, block)] = int(ks[MAX_DEPTH * (stage - 1) + block])
            params[expand_label(stage, block)] = int(e[MAX_DEPTH * (stage - 1) + block])
    return canonical_arch(params)


# ------------------------------------------------------------------------------------------------- the layout

def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{name}": (channels,) for name in _BN_KEYS}


def ofa_layout(num_classes: int = 1000) -> dict[str, tuple[int, ...]]:
    """Key -> shape of every parameter and BN statistic of the OFA w1.2 supernet, keys in normalised form.

    Normalised form (see :func:`_normalise_key`): OFA's dynamic wrappers collapsed (``.conv.conv.weight`` ->
    ``.conv.weight``, ``.bn.bn.`` -> ``.bn.``). ``num_batches_tracked`` counters are optional and not listed.
    """
    largest = {label: max(options) for label, options in decisions().items()}
    plan = network_plan(largest, WIDTH_MULT)
    stem = make_divisible(STEM_WIDTH * WIDTH_MULT)
    first = make_divisible(FIRST_BLOCK_WIDTH * WIDTH_MULT)
    layout: dict[str, tuple[int, ...]] = {"first_conv.conv.weight": (stem, 3, 3, 3), **_bn("first_conv.bn", stem)}
    layout["blocks.0.conv.depth_conv.conv.weight"] = (stem, 1, 3, 3)
    layout.update(_bn("blocks.0.conv.depth_conv.bn", stem))
    layout["blocks.0.conv.point_linear.conv.weight"] = (first, stem, 1, 1)
    layout.update(_bn("blocks.0.conv.point_linear.bn", first))
    for index, spec in enumerate(plan.blocks[1:], start=1):
        prefix = f"blocks.{index}.conv"
        mid = spec.hidden_channels
        layout[f"{prefix}.inverted_bottleneck.conv.weight"] = (mid, spec.in_channels, 1, 1)
        layout.update(_bn(f"{prefix}.inverted_bottleneck.bn", mid))
        layout[f"{prefix}.depth_conv.conv.weight"] = (mid, 1, _MAX_KERNEL, _MAX_KERNEL)
        kernels = sorted(KERNELS)
        for small, large in zip(kernels, kernels[1:]):
            layout[f"{prefix}.depth_conv.conv.{large}to{small}_matrix"] = (small * small, small * small)
        layout.update(_bn(f"{prefix}.depth_conv.bn", mid))
        if spec.se_channels:
            se = make_divisible(mid // _SE_REDUCTION)
            layout[f"{prefix}.depth_conv.se.fc.reduce.weight"] = (se, mid, 1, 1)
            layout[f"{prefix}.depth_conv.se.fc.reduce.bias"] = (se,)
            layout[f"{prefix}.depth_conv.se.fc.expand.weight"] = (mid, se, 1, 1)
            layout[f"{prefix}.depth_conv.se.fc.expand.bias"] = (mid,)
        layout[f"{prefix}.point_linear.conv.weight"] = (spec.out_channels, mid, 1, 1)
        layout.update(_bn(f"{prefix}.point_linear.bn", spec.out_channels))
    head = make_divisible(HEAD_WIDTH * WIDTH_MULT)
    feature = make_divisible(FEATURE_WIDTH * WIDTH_MULT)
    layout["final_expand_layer.conv.weight"] = (head, plan.blocks[-1].out_channels, 1, 1)
    layout.update(_bn("final_expand_layer.bn", head))
    layout["feature_mix_layer.conv.weight"] = (feature, head, 1, 1)
    layout["classifier.linear.weight"] = (num_classes, feature)
    layout["classifier.linear.bias"] = (num_classes,)
    return layout


_COLLAPSE = ((".mobile_inverted_conv.", ".conv."), (".bn.bn.", ".bn."), (".conv.conv.weight", ".conv.weight"),
             (".linear.linear.", ".linear."))


def _normalise_key(key: str) -> str:
    """One spelling for the key variants OFA's ``load_state_dict`` accepts (old and new releases)."""
    if key.startswith("module."):
        key = key[len("module."):]
    for old, new in _COLLAPSE:
        key = key.replace(old, new)
    return key


def _unwrap(checkpoint: Any, source: str) -> Mapping[str, Any]:
    if isinstance(checkpoint, Mapping) and "state_dict" in checkpoint and isinstance(checkpoint["state_dict"],
                                                                                      Mapping):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping) or not checkpoint:
        raise UsageError(f"{source}: expected a state dict (or {{'state_dict': ...}}) of {OFA_NET_ID}, "
                         f"got {type(checkpoint).__name__}")
    return checkpoint


def _shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(size) for size in shape) + ")"


def _check_layout(state: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """Normalise the keys and check every one against :func:`ofa_layout`; one-line error at the first mismatch."""
    tensors: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise UsageError(f"{source}: entry {key!r} is not a tensor; not an {OFA_NET_ID} state dict")
        normal = _normalise_key(key)
        if normal.endswith(".num_batches_tracked"):
            continue
        if normal in tensors:
            raise UsageError(f"{source}: key {key!r} duplicates another spelling of {normal!r}")
        tensors[normal] = value
    classifier = tensors.get("classifier.linear.weight")
    num_classes = int(classifier.shape[0]) if classifier is not None and classifier.dim() == 2 else 1000
    layout = ofa_layout(num_classes)
    expected_hint = f"not the layout of {_LAYOUT_NAME} ({OFA_NET_ID})"
    for key, shape in layout.items():
        if key not in tensors:
            raise UsageError(f"{source}: missing key {key!r}; {expected_hint}")
        if tuple(tensors[key].shape) != shape:
            raise UsageError(f"{source}: {key!r} has shape {_shape(tensors[key].shape)}, expected "
                             f"{_shape(shape)}; {expected_hint}")
    for key in tensors:
        if key not in layout:
            raise UsageError(f"{source}: unexpected key {key!r}; {expected_hint}")
    return {key: tensors[key].detach().to(torch.float32) for key in layout}


def is_ofa_checkpoint(path: str | Path) -> bool:
    """Whether ``path`` holds an OFA MobileNetV3 supernet state dict (by its key names; the layout is checked when
    :meth:`OfaSupernetWeights.from_checkpoint` reads it). False for unreadable files and any other checkpoint."""
    try:
        checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not ours to judge: the caller's own loader reports it
        return False
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, Mapping) else None
    return isinstance(state, Mapping) and any(
        isinstance(key, str) and _normalise_key(key) == "first_conv.conv.weight" for key in state)


def read_tensor_file(path: str | Path, what: str) -> Any:
    """``torch.load`` of a file of tensors (``weights_only``, on the CPU); a one-line UsageError naming ``what`` and
    the file where it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input error
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{what} {path}: cannot be read as tensors ({first_line})") from None


# ------------------------------------------------------------------------------------------------- extraction

def _centre(weight: torch.Tensor, size: int) -> torch.Tensor:
    start = (weight.shape[-1] - size) // 2
    return weight[..., start:start + size, start:start + size]


class OfaSupernetWeights:
    """The weights of OFA's w1.2 MobileNetV3 supernet, ready to build any sub-net of the MobileNet-like space.

    ``state_dict`` is the supernet's state dict (see the module docstring for the accepted key spellings);
    :meth:`from_checkpoint` reads one from a file. :meth:`extract` is the ``extract`` callable the sub-net
    evaluator takes. The number of classes is read from the classifier (1000 for OFA's released weights).
    """

    def __init__(self, state_dict: Mapping[str, Any], *, source: str = "OFA state dict") -> None:
        self._weights = _check_layout(_unwrap(state_dict, source), source)
        self.num_classes = int(self._weights["classifier.linear.weight"].shape[0])
        self.source = source

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> OfaSupernetWeights:
        """Read ``path`` (``torch.save`` of a state dict or of ``{"state_dict": ...}``, e.g. OFA's released file)."""
        path = Path(path)
        return cls(_unwrap(read_tensor_file(path, "OFA checkpoint"), str(path)), source=str(path))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(source={self.source!r}, num_classes={self.num_classes})"

    def _depthwise(self, prefix: str, channels: int, kernel: int) -> torch.Tensor:
        """OFA's elastic kernel: shrink the stored 7x7 kernel step by step (centre crop, learned linear map)."""
        weight = self._weights[f"{prefix}.depth_conv.conv.weight"][:channels]
        kernels = sorted(KERNELS, reverse=True)
        for large, small in zip(kernels, kernels[1:]):
            if kernel >= large:
                break
            matrix = self._weights[f"{prefix}.depth_conv.conv.{large}to{small}_matrix"]
            flat = _centre(weight, small).reshape(channels, small * small)
            weight = F.linear(flat, matrix).reshape(channels, 1, small, small)
        return weight

    def subnet_state_dict(self, arch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The state dict of ``MobileNetLike(arch)`` holding the supernet's weights for ``arch`` (own copies)."""
        return {key: value.clone() for key, value in self._subnet_tensors(arch).items()}

    def _subnet_tensors(self, arch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """:meth:`subnet_state_dict` as views into the supernet's tensors where slicing allows."""
        plan = network_plan(arch, WIDTH_MULT)
        arch = canonical_arch(arch)
        w = self._weights
        out: dict[str, torch.Tensor] = {}

        def conv_bn(target: str, weight: torch.Tensor, bn: str, channels: int) -> None:
            out[f"{target}.0.weight"] = weight
            for name in _BN_KEYS:
                out[f"{target}.1.{name}"] = w[f"{bn}.{name}"][:channels]
            out[f"{target}.1.num_batches_tracked"] = torch.zeros((), dtype=torch.long)

        conv_bn("stem", w["first_conv.conv.weight"], "first_conv.bn", plan.stem_channels)
        conv_bn("blocks.0.body.0", w["blocks.0.conv.depth_conv.conv.weight"], "blocks.0.conv.depth_conv.bn",
                plan.stem_channels)
        conv_bn("blocks.0.body.1", w["blocks.0.conv.point_linear.conv.weight"], "blocks.0.conv.point_linear.bn",
                plan.blocks[0].out_channels)
        specs = iter(plan.blocks[1:])
        index = 1
        for stage in range(1, len(STAGES) + 1):
            for block in range(arch[depth_label(stage)]):
                spec = next(specs)
                source = f"blocks.{_ofa_index(stage, block)}.conv"
                target = f"blocks.{index}.body"
                mid, cin, cout = spec.hidden_channels, spec.in_channels, spec.out_channels
                conv_bn(f"{target}.0", w[f"{source}.inverted_bottleneck.conv.weight"][:mid, :cin],
                        f"{source}.inverted_bottleneck.bn", mid)
                conv_bn(f"{target}.1", self._depthwise(source, mid, spec.kernel), f"{source}.depth_conv.bn", mid)
                last = 2
                if spec.se_channels:
                    se = spec.se_channels
                    out[f"{target}.2.reduce.weight"] = w[f"{source}.depth_conv.se.fc.reduce.weight"][:se, :mid]
                    out[f"{target}.2.reduce.bias"] = w[f"{source}.depth_conv.se.fc.reduce.bias"][:se]
                    out[f"{target}.2.expand.weight"] = w[f"{source}.depth_conv.se.fc.expand.weight"][:mid, :se]
                    out[f"{target}.2.expand.bias"] = w[f"{source}.depth_conv.se.fc.expand.bias"][:mid]
                    last = 3
                conv_bn(f"{target}.{last}", w[f"{source}.point_linear.conv.weight"][:cout, :mid],
                        f"{source}.point_linear.bn", cout)
                index += 1
        conv_bn("head", w["final_expand_layer.conv.weight"], "final_expand_layer.bn", plan.head_channels)
        mix = w["feature_mix_layer.conv.weight"]
        out["classifier.0.weight"] = mix.reshape(mix.shape[0], mix.shape[1])
        out["classifier.0.bias"] = torch.zeros(mix.shape[0])
        out["classifier.3.weight"] = w["classifier.linear.weight"]
        out["classifier.3.bias"] = w["classifier.linear.bias"]
        return out

    def extract(self, arch: Mapping[str, Any], *, dropout: float = 0.2) -> MobileNetLike:
        """``MobileNetLike(arch)`` with the supernet's weights (on the CPU, training mode, as any new module)."""
        net = MobileNetLike(arch, num_classes=self.num_classes, dropout=dropout)
        net.load_state_dict(self._subnet_tensors(arch), strict=True)  # copies: the supernet's tensors stay apart
        return net

    __call__ = extract



# ------------------------------------------------------------------------------------------------- scoring

def build_ofa_evaluator(checkpoint: str | Path, data: str | Path, *, holdout: float, data_seed: int = 0,
                        calib_images: int = 2000, batch_size: int = 200, workers: int = 0, device: str = "auto",
                        amp: str = "auto", img_size: int = 224) -> Any:
    """A sub-net evaluator (``arch -> top-1 percent``) over OFA's weights in ``checkpoint`` and the ImageFolder ``data``.

    The same scorer as the package's supernet search (:mod:`nni_asenas.imagenet.evaluator`): BatchNorm statistics
    re-estimated on ``calib_images`` training images (OFA uses 2,000), top-1 on ``holdout`` other training images
    (a fraction or a count, class-balanced, seed ``data_seed``), OFA's evaluation transform (resize to
    ``img_size / 0.875``, centre crop, bilinear). ``ROOT/val`` is never read: it stays unseen by the search. Note
    that OFA trained its released supernet on ImageNet's training images, so a held-out split of them is not unseen
    by the supernet; it ranks sub-nets, the final accuracy belongs to ``ROOT/val``.
    """
    if not holdout or holdout <= 0:
        raise UsageError("scoring OFA sub-nets needs holdout N: the training images (a fraction or a count) to "
                         "score on, never ROOT/val")
    import torch

    from .data import IMAGENET_MEAN, IMAGENET_STD
    from .engine import amp_dtype
    from .evaluator import SubnetEvaluator, image_folder_batches, normalize_uint8

    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("device cuda: CUDA is not available here; use device cpu")
    weights = OfaSupernetWeights.from_checkpoint(checkpoint)
    target = torch.device("cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    calibration, evaluation, classes = image_folder_batches(
        str(data), holdout=holdout, data_seed=data_seed, calib_images=calib_images, img_size=img_size,
        crop_pct=0.875, interpolation="bilinear", batch_size=batch_size, workers=workers)
    if len(classes) != weights.num_classes:
        raise UsageError(f"data {data} has {len(classes)} classes, the OFA checkpoint {weights.num_classes}")
    channels_last = target.type == "cuda"

    def extract(arch: Mapping[str, Any]) -> MobileNetLike:
        net = weights.extract(arch)
        return net.to(memory_format=torch.channels_last) if channels_last else net

    return SubnetEvaluator(extract, calibration=calibration, evaluation=evaluation,
                           prepare=normalize_uint8(IMAGENET_MEAN, IMAGENET_STD, device=target,
                                                   channels_last=channels_last),
                           device=target, amp=amp_dtype(amp, target), key=canonical_key)
