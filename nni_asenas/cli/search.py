"""``nni-asenas search``: one ASE-NAS search.

``--space nasbench201`` (default): simulated, on the embedded NAS-Bench-201 table. ``--space mobilenet``: the
MobileNet-like ImageNet space, each proposal scored on a trained supernet (``--supernet CKPT --data DIR``) under a
MAdds limit (see :mod:`nni_asenas.imagenet.supernet_search`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from nni_asenas.cli import predictor as predictor_cli
from nni_asenas.cli.options import add_method_options, flag_errors, method_config, read_init, warn_about_random_start
from nni_asenas.cli.outputs import prepare_output_dir, query_progress, write_output, write_winner
from nni_asenas.config import check_seed
from nni_asenas.errors import UsageError
from nni_asenas.nasbench.nb201 import BUDGET_SECONDS, DATASETS, load_table, normalize_dataset

#: What the supernet search's library errors name -> the flag that sets it.
MOBILENET_FLAGS = {"max_queries": "--max-queries", "max_madds": "--max-madds", "device": "--device",
                   "checkpoint": "--supernet", "holdout": "--holdout", "data": "--data", "val_subset": "--val-subset"}


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "search",
        help="run ASE-NAS on the embedded NAS-Bench-201 table (simulated) or on a trained MobileNet-like supernet",
        description="Run one ASE-NAS search. On NAS-Bench-201 (default) under the NATS-Bench protocol: signal = "
        "12-epoch validation accuracy, cost = 12/200 of the 200-epoch training time, reported = 200-epoch test "
        "accuracy. On the MobileNet-like space (--space mobilenet --supernet CKPT --data DIR): each proposal is a "
        "sub-net of the supernet, scored by held-out top-1 after BatchNorm recalibration, under --max-madds.",
    )
    parser.add_argument("--space", default="nasbench201", choices=["nasbench201", "mobilenet"],
                        help="search space (default: %(default)s)")
    parser.add_argument("--dataset", default="cifar10", help=f"one of {', '.join(DATASETS)} (default: %(default)s)")
    parser.add_argument("--budget-seconds", type=float, metavar="S",
                        help="simulated-time budget (default: the protocol's " +
                        ", ".join(f"{d} {int(b)}" for d, b in BUDGET_SECONDS.items()) + ")")
    parser.add_argument("--max-queries", type=int, metavar="N", help="stop after N queries as well")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything random (default: %(default)s)")
    parser.add_argument("--init", nargs="+", default=[], metavar="ARCH_OR_RESULT_JSON",
                        help="ASE-NAS+: start from these architectures or from the final candidates of a result.json")
    parser.add_argument("--output", type=Path, metavar="DIR", help="write DIR/result.json")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = parser.add_argument_group("--space mobilenet (scoring sub-nets of a trained supernet)")
    group.add_argument("--supernet", metavar="CKPT", help="checkpoint of python -m nni_asenas.trials.supernet (last.pth)")
    group.add_argument("--data", metavar="DIR", help="the ImageFolder root the supernet was trained on")
    group.add_argument("--max-madds", type=float, default=600e6,
                       help="only networks within this many MAdds at --madds-resolution (default: 600e6)")
    group.add_argument("--madds-resolution", type=int, default=224, help="(default: %(default)s)")
    group.add_argument("--holdout", type=float, metavar="N",
                       help="score on these training images instead of the supernet's own held-out split")
    group.add_argument("--calib-images", type=int, default=2000,
                       help="training images that recalibrate BatchNorm before each score (default: %(default)s)")
    group.add_argument("--eval-batch-size", type=int, default=200, help="(default: %(default)s)")
    group.add_argument("--workers", type=int, default=0, help="data-loader processes for reading images once")
    group.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    group.add_argument("--amp", choices=("auto", "bf16", "fp16", "off"), default="auto")
    add_method_options(parser)
    predictor_cli.add_search_arguments(parser)  # --space mobilenet --predictor FILE: nni_asenas/cli/predictor.py
    parser.set_defaults(func=run)


def _check_mobilenet(args: argparse.Namespace) -> None:
    if args.supernet is None or args.data is None:
        raise UsageError("--space mobilenet needs --supernet CKPT and --data DIR")
    if args.budget_seconds is not None:
        raise UsageError("--budget-seconds is for the simulated NAS-Bench-201 search; use --max-queries")
    if args.max_queries is None:
        args.max_queries = 200
    if args.max_queries < 1:
        raise UsageError(f"--max-queries must be >= 1, got {args.max_queries}")
    if not (args.max_madds > 0 and math.isfinite(args.max_madds)):
        raise UsageError(f"--max-madds must be a positive number, got {args.max_madds:g}")
    for flag, value in (("--calib-images", args.calib_images), ("--eval-batch-size", args.eval_batch_size),
                        ("--madds-resolution", args.madds_resolution)):
        if value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")


def _check(args: argparse.Namespace) -> None:
    if args.space == "mobilenet":
        _check_mobilenet(args)
    else:
        _check_nasbench201(args)
    args.seed = check_seed(args.seed, "--seed")
    args.config = method_config(args)
    if args.output is not None:
        prepare_output_dir(args.output)  # before the search: its result must have a place to go
    if args.space == "mobilenet":
        from nni_asenas.imagenet.space import canonical_arch

        args.initial = read_init(args.init, canonical_arch)
    else:
        args.initial = read_init(args.init, load_table().arch_str)
        warn_about_random_start(args.config, args.max_queries)  # after every check: an error stays the one line


def _check_nasbench201(args: argparse.Namespace) -> None:
    for flag in ("supernet", "data", "holdout"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag} is for --space mobilenet")
    try:
        args.dataset = normalize_dataset(args.dataset)
    except ValueError as exc:
        raise UsageError(f"--dataset: {exc}") from None
    if args.budget_seconds is not None and not (args.budget_seconds > 0 and math.isfinite(args.budget_seconds)):
        raise UsageError(f"--budget-seconds must be a positive number, got {args.budget_seconds:g}")
    if args.max_queries is not None and args.max_queries < 1:
        raise UsageError(f"--max-queries must be >= 1, got {args.max_queries}")


def run(args: argparse.Namespace) -> int:
    if args.ofa_predictor is not None:  # scored by OFA's released predictor: cli/predictor.py
        return predictor_cli.run_ofa_search(args)
    if args.predictor is not None:  # the MobileNet-like space scored by an accuracy predictor: cli/predictor.py
        return predictor_cli.run_search(args)
    _check(args)
    if args.space == "mobilenet":
        return _run_mobilenet(args)
    from nni_asenas.nasbench.simulator import run_asenas  # imports torch: after the argument checks

    initial = args.initial
    budget = BUDGET_SECONDS[args.dataset] if args.budget_seconds is None else args.budget_seconds
    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        progress = tqdm(total=round(budget), unit="sim-s", desc="best -", file=sys.stderr, leave=False,
                        bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} sim-s [{elapsed}<{remaining}]")

    def on_query(entry: dict[str, Any]) -> None:
        assert progress is not None
        progress.set_description(f"query {entry['query']} best {entry['best_signal']:.2f}", refresh=False)
        progress.update(min(round(entry["simulated_seconds"]), progress.total) - progress.n)

    try:
        result = run_asenas(args.dataset, seed=args.seed, budget_seconds=args.budget_seconds,
                            max_queries=args.max_queries, initial_architectures=initial, config=args.config,
                            on_query=on_query if progress else None)
    finally:
        if progress is not None:
            progress.close()
    print(summary_table(result))
    if args.output is not None:
        write_output(args.output / "result.json", result)
        print(f"\nwrote {args.output / 'result.json'}")
    return 0


def summary_table(result: dict[str, Any]) -> str:
    best, optimum = result["best"], result["optimum"]
    rows = [
        ("strategy", f"{result['strategy']} (seed {result['seed']})"),
        ("dataset", result["dataset"]),
        ("chosen architecture", best["arch"] if best else "-"),
        ("its signal (12-epoch val acc)", f"{best['signal']:.4f}" if best else "-"),
        ("its test accuracy (200 epochs)", f"{best['test_accuracy']:.4f}" if best else "-"),
        ("benchmark optimum (test)", f"{optimum['test_accuracy']:.4f}  {optimum['arch']}"),
        ("gap to the optimum", f"{best['gap_to_optimum']:.4f}" if best else "-"),
        ("queries", str(result["queries"])),
        ("simulated seconds", f"{result['simulated_seconds']:.0f} of {result['budget_seconds']:.0f}"),
        ("wall seconds", f"{result['wall_seconds']:.2f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _run_mobilenet(args: argparse.Namespace) -> int:
    from nni_asenas.imagenet.supernet_search import build_search_evaluator, run_supernet_search

    initial = args.initial
    with flag_errors(MOBILENET_FLAGS):
        supernet, evaluator, meta = build_search_evaluator(
            args.supernet, args.data, calib_images=args.calib_images, batch_size=args.eval_batch_size,
            workers=args.workers, device=args.device, amp=args.amp, holdout=args.holdout)
    warn_about_random_start(args.config, args.max_queries)  # after the supernet and data checks
    facts = {"supernet": str(args.supernet), "supernet_epoch": meta["epoch"], "data": str(args.data),
             "calibration_images": evaluator.calibration_images, "evaluation_images": evaluator.evaluation_images,
             "device": str(evaluator.device), "img_size": meta["img_size"]}
    with flag_errors(MOBILENET_FLAGS), query_progress(args.max_queries, not args.no_progress) as on_query:
        result = run_supernet_search(
            evaluator, max_queries=args.max_queries, seed=args.seed, max_madds=args.max_madds,
            madds_resolution=args.madds_resolution, width_mult=supernet.width_mult,
            num_classes=supernet.num_classes, initial_architectures=initial, config=args.config,
            on_query=on_query, evaluator=facts)
    result["evaluator"]["seconds_per_query"] = evaluator.seconds_per_query()
    print(mobilenet_summary_table(result))
    if args.output is not None:
        print()
        write_winner(args.output, result)
    return 0


def mobilenet_summary_table(result: dict[str, Any]) -> str:
    best, evaluator = result["best"], result["evaluator"]
    depths = (lambda arch: "-".join(str(arch[f"s{i}_depth"]) for i in range(1, 6)))
    rows = [
        ("strategy", f"{result['strategy']} (seed {result['seed']})"),
        ("space", f"mobilenet (supernet {evaluator['supernet']}, epoch {evaluator['supernet_epoch']})"),
        ("chosen architecture", f"depths {depths(best['arch'])} (arch.json / result.json)" if best else "-"),
        ("its held-out top-1", f"{best['top1']:.2f} %" if best else "-"),
        ("its MAdds", f"{best['madds'] / 1e6:.1f} M at {result['madds_resolution']} px (limit "
                      f"{result['max_madds'] / 1e6:.1f} M)" if best else "-"),
        ("its parameters", f"{best['params'] / 1e6:.2f} M" if best else "-"),
        ("queries", f"{result['queries']} ({result['failed_queries']} failed)"),
        ("seconds per query", f"{result['evaluation_seconds_per_query']:.2f} (scoring "
                              f"{evaluator['evaluation_images']} held-out images)"),
        ("wall seconds", f"{result['wall_seconds']:.2f}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
