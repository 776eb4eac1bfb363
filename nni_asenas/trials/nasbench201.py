"""NNI trial that queries the embedded NAS-Bench-201 table instead of training.

    python -m nni_asenas.trials.nasbench201 --dataset cifar10 [--sleep-scale 0.001]

It reads the architecture from ``nni.get_next_parameter()`` (labels ``0_1`` .. ``2_3``, as in
``search_spaces/nasbench201.json``), reports one intermediate result per training length the table holds (12 and
200 epochs: validation accuracy) and the final result::

    {"default": 12-epoch validation accuracy (the search signal), "test_accuracy": 200-epoch test accuracy (seed
     mean), "params_M": ..., "flops_M": ..., "simulated_seconds": 12/200 of the 200-epoch training time,
     "nb201_index": the architecture's benchmark index, "parameter_id": NNI's id of the parameters it ran}

``parameter_id`` and ``nb201_index`` name what produced the metric even where NNI 3.0 lists the trial with another
trial's parameters (several trials starting at once, microsoft/nni#5726; ``nni-asenas nni-patch apply`` fixes the
listing): the id is the listing's and the tuner log's ``parameter_id``, ``nni-asenas query INDEX`` prints the row.

``--sleep-scale F`` sleeps ``F x simulated_seconds`` before reporting, so a demo in the web UI looks like training.
A malformed architecture ends the trial with exit status 2 and a one-line message (NNI marks it failed).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Mapping, Sequence

from nni_asenas.nasbench.nb201 import (
    DATASETS,
    FULL_EPOCHS,
    SIGNAL_EPOCHS,
    NasBench201Table,
    load_table,
    normalize_dataset,
)
from nni_asenas.nni_tools.trial_api import with_parameter_id

__all__ = ["evaluate", "main"]


def evaluate(
    params: Mapping[str, Any], dataset: str, table: NasBench201Table | None = None
) -> tuple[list[dict[str, float]], dict[str, float | int]]:
    """``(intermediate results, final result)`` that the trial reports for ``params`` on ``dataset``.

    Raises :class:`ValueError` naming the bad label or op of a malformed architecture.
    """
    figures = (table or load_table()).row(params, dataset)
    intermediate = [
        {"default": figures["val12"], "epoch": SIGNAL_EPOCHS},
        {"default": figures["val200"], "epoch": FULL_EPOCHS},
    ]
    final = {
        "default": figures["val12"],
        "test_accuracy": figures["test200"],
        "params_M": figures["params_M"],
        "flops_M": figures["flops_M"],
        "simulated_seconds": figures["cost_seconds"],
        "nb201_index": figures["index"],
    }
    return intermediate, final


def _dataset(text: str) -> str:
    try:
        return normalize_dataset(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sleep_scale(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"--sleep-scale must be a number >= 0, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    import nni

    parser = argparse.ArgumentParser(prog="python -m nni_asenas.trials.nasbench201", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", type=_dataset, required=True, help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("--sleep-scale", type=_sleep_scale, default=0.0, help="sleep this fraction of the simulated seconds")
    args = parser.parse_args(argv)

    params = nni.get_next_parameter()
    if not params:
        print(f"{parser.prog}: error: no architecture from nni.get_next_parameter(); run this trial under nnictl", file=sys.stderr)
        return 2
    try:
        intermediate, final = evaluate(params, args.dataset)
    except ValueError as exc:
        print(f"{parser.prog}: error: parameters {dict(params)!r}: {exc}", file=sys.stderr)
        return 2
    if args.sleep_scale:
        time.sleep(args.sleep_scale * final["simulated_seconds"])
    for result in intermediate:
        nni.report_intermediate_result(result)
    nni.report_final_result(with_parameter_id(final))
    return 0


if __name__ == "__main__":
    sys.exit(main())
