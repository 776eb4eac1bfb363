"""``nni-asenas predictor collect|train`` and ``nni-asenas search --space mobilenet --predictor FILE``.

``collect`` measures sub-net accuracies on a supernet (the package's or OFA's released one) and appends
(architecture, top-1) pairs to a JSONL file, resumably; ``train`` fits the authors' MLP accuracy predictor on
them and reports Kendall's tau and the mean absolute error on held-out pairs. The search's flags live here too
(:func:`add_search_arguments`, :func:`run_search`) so that ``cli/search.py`` only delegates to them; the search
itself is :func:`nni_asenas.imagenet.predictor_search.search_with_predictor`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from nni_asenas.cli.options import flag_errors, method_config, read_init, warn_about_random_start
from nni_asenas.cli.outputs import prepare_output_dir, query_progress, write_winner
from nni_asenas.config import check_seed
from nni_asenas.errors import UsageError

MAX_MADDS_DEFAULT = 600e6
#: What the search's library errors name -> the flag that sets it.
SEARCH_FLAGS = {"max_queries": "--max-queries", "max_madds": "--max-madds", "n_rescore": "--rescore",
                "device": "--device", "holdout": "--holdout", "data": "--data", "val_subset": "--val-subset"}


# ------------------------------------------------------------------------------------------- nni-asenas predictor

def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predictor",
        help="collect (architecture, accuracy) pairs on a supernet and train an accuracy predictor",
        description="The authors' ImageNet route: measure sub-nets of a supernet, train an MLP accuracy "
        "predictor on them, then search against it with 'nni-asenas search --space mobilenet --predictor FILE'.",
    )
    actions = parser.add_subparsers(dest="predictor_action", metavar="ACTION", parser_class=type(parser))

    collect = actions.add_parser("collect", help="measure random sub-nets and append the pairs to a JSONL file",
                                 description="Measure uniformly sampled sub-nets (seeded) on a supernet and append "
                                 "{arch, accuracy, seconds} lines to OUTPUT. Rerunning the same command resumes.")
    source = collect.add_mutually_exclusive_group(required=True)
    source.add_argument("--supernet", type=Path, metavar="CKPT", help="a supernet checkpoint of this package")
    source.add_argument("--ofa", type=Path, metavar="CKPT",
                        help="OFA's ofa_mbv3_d234_e346_k357_w1.2 weights (a state dict, or {'state_dict': ...})")
    collect.add_argument("--data", type=Path, required=True, metavar="DIR", help="ImageFolder root of the data")
    collect.add_argument("--n", type=int, required=True, metavar="N", help="number of measured sub-nets wanted")
    collect.add_argument("--output", type=Path, required=True, metavar="PAIRS_JSONL", help="file to append to")
    collect.add_argument("--seed", type=int, default=0, help="seed of the sampled architectures (default: 0)")
    collect.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_evaluator_options(collect.add_argument_group("the sub-net evaluator"))
    collect.set_defaults(func=run_collect)

    train = actions.add_parser("train", help="train the accuracy predictor on pairs",
                               description="Train the authors' MLP (200 -> 128 -> 128 -> 1, dropout) on the pairs "
                               "(failed ones left out); print Kendall's tau and the MAE on the held-out split.")
    train.add_argument("pairs", type=Path, nargs="+", metavar="PAIRS_JSONL", help="files written by 'collect'")
    train.add_argument("--output", type=Path, required=True, metavar="FILE", help="where to write the predictor")
    train.add_argument("--epochs", type=int, default=200, help="default: %(default)s")
    train.add_argument("--batch-size", type=int, default=256, help="default: %(default)s")
    train.add_argument("--learning-rate", type=float, default=0.1, help="SGD, Nesterov (default: %(default)s)")
    train.add_argument("--weight-decay", type=float, default=3e-5, help="default: %(default)s")
    train.add_argument("--dropout", type=float, default=0.5, help="default: %(default)s")
    train.add_argument("--train-fraction", type=float, default=0.9,
                       help="share of the pairs trained on; the rest is held out (default: %(default)s)")
    train.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and shuffling")
    train.set_defaults(func=run_train)
    parser.set_defaults(func=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def add_evaluator_options(group: Any, defined: set[str] | frozenset[str] = frozenset()) -> None:
    """The sub-net evaluator's options (the supernet search's flags; those in ``defined`` exist already)."""
    options: list[tuple[str, dict[str, Any]]] = [
        ("--holdout", {"type": float, "metavar": "N", "help": "training images (fraction or count) to score on; "
                       "--supernet: default its own held-out split; --ofa: required"}),
        ("--data-seed", {"type": int, "default": 0, "help": "seed of the --ofa hold-out split (default: 0)"}),
        ("--calib-images", {"type": int, "default": 2000,
                            "help": "training images that recalibrate BatchNorm before each score (default: 2000)"}),
        ("--eval-batch-size", {"type": int, "default": 200, "help": "(default: 200)"}),
        ("--workers", {"type": int, "default": 0, "help": "data-loader processes for reading images once"}),
        ("--device", {"choices": ("auto", "cuda", "cpu"), "default": "auto"}),
        ("--amp", {"choices": ("auto", "bf16", "fp16", "off"), "default": "auto"}),
    ]
    for flag, settings in options:
        if flag not in defined:
            group.add_argument(flag, **settings)


def _imagenet_module(name: str) -> Any:
    """``nni_asenas.imagenet.<name>`` of the supernet route, imported when a command needs it."""
    try:
        return importlib.import_module(f"nni_asenas.imagenet.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"nni_asenas.imagenet.{name}":
            raise
        raise UsageError(f"this installation has no nni_asenas.imagenet.{name} (the supernet route's sub-net "
                         "evaluator)") from None


def supernet_evaluator(args: argparse.Namespace) -> Callable[[Mapping[str, Any]], float]:
    """The sub-net evaluator (BN recalibration + held-out top-1) over ``--ofa``/``--supernet`` and ``--data``."""
    if args.data is None or not Path(args.data).is_dir():
        raise UsageError(f"--data {args.data} is not a directory")
    for flag, value in (("--calib-images", args.calib_images), ("--eval-batch-size", args.eval_batch_size)):
        if value < 1:
            raise UsageError(f"{flag} must be >= 1, got {value}")
    if args.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {args.workers}")
    with flag_errors(SEARCH_FLAGS):
        if getattr(args, "ofa", None) is not None:
            from nni_asenas.imagenet.ofa import build_ofa_evaluator

            return build_ofa_evaluator(args.ofa, args.data, holdout=args.holdout, data_seed=args.data_seed,
                                       calib_images=args.calib_images, batch_size=args.eval_batch_size,
                                       workers=args.workers, device=args.device, amp=args.amp)
        _, evaluator, _ = _imagenet_module("supernet_search").build_search_evaluator(
            str(args.supernet), str(args.data), calib_images=args.calib_images, batch_size=args.eval_batch_size,
            workers=args.workers, device=args.device, amp=args.amp, holdout=args.holdout)
        return evaluator


def run_collect(args: argparse.Namespace) -> int:
    check_seed(args.seed)
    if args.n < 1:
        raise UsageError(f"--n must be >= 1, got {args.n}")
    if args.output.exists() and not args.output.is_file():
        raise UsageError(f"--output {args.output} exists and is not a file")
    from nni_asenas.imagenet.predictor import read_pairs

    already = sum(pair.accuracy is not None for pair in read_pairs(args.output)) if args.output.exists() else 0
    evaluate = supernet_evaluator(args)
    return _collect(evaluate, args, already)


def _collect(evaluate: Callable[[Mapping[str, Any]], float], args: argparse.Namespace, already: int) -> int:
    from nni_asenas.imagenet.predictor import Pair, collect_pairs

    progress = None
    if not args.no_progress and already < args.n:
        from tqdm import tqdm

        progress = tqdm(total=args.n, initial=min(already, args.n), unit="sub-net", file=sys.stderr, leave=False)

    def on_pair(pair: Pair) -> None:
        if pair.accuracy is None:
            print(f"nni-asenas: evaluation failed ({pair.error}); recorded and skipped", file=sys.stderr)
        elif progress is not None:
            progress.set_description(f"last {pair.accuracy:.2f}%", refresh=False)
            progress.update(1)

    try:
        pairs = collect_pairs(evaluate, args.output, n=args.n, seed=args.seed, on_pair=on_pair)
    finally:
        if progress is not None:
            progress.close()
    measured = [pair.accuracy for pair in pairs if pair.accuracy is not None]
    failed = len(pairs) - len(measured)
    print(f"{args.output}: {len(measured)} measured sub-nets ({len(measured) - already} new"
          f"{f', {failed} failed' if failed else ''}); top-1 {min(measured):.2f}-{max(measured):.2f}%")
    return 0


def run_train(args: argparse.Namespace) -> int:
    from nni_asenas.imagenet.predictor import PredictorTraining, read_pairs, train_predictor

    check_seed(args.seed)
    training = PredictorTraining(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                                 weight_decay=args.weight_decay, dropout=args.dropout,
                                 train_fraction=args.train_fraction)
    if args.output.exists() and args.output.is_dir():
        raise UsageError(f"--output {args.output} is a directory")
    pairs = [pair for path in args.pairs for pair in read_pairs(path)]
    start = time.perf_counter()
    result = train_predictor(pairs, training=training, seed=args.seed)
    metrics = {**result.metrics(), "pairs": [str(path) for path in args.pairs], "seed": args.seed,
               "training": vars(training), "seconds": round(time.perf_counter() - start, 2)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    result.predictor.save(args.output, metrics=metrics)
    if result.diverged:
        print(f"training diverged at learning rate {', '.join(result.diverged)}; trained at {result.learning_rate:g}")
    print(f"{args.output}: trained on {result.n_train} pairs; held-out {result.n_test}: Kendall tau "
          f"{result.kendall_tau:.3f}, MAE {result.mae:.3f} points (train MAE {result.train_mae:.3f})")
    return 0


# ------------------------------------------------------------------------------------------- the search side

def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    """``--predictor`` (and what goes with it) for ``nni-asenas search``; options already defined are kept."""
    group = parser.add_argument_group("accuracy predictor (--space mobilenet)")
    group.add_argument("--predictor", type=Path, metavar="FILE",
                       help="search the MobileNet-like space against this predictor ('nni-asenas predictor train')")
    group.add_argument("--rescore", type=int, default=0, metavar="N",
                       help="re-score the N best predicted architectures on the supernet (--ofa/--supernet and "
                       "--data) and report the best measured one (default: 0, no re-scoring)")
    ofa = parser.add_argument_group("OFA's released accuracy predictor (--space mobilenet)")
    ofa.add_argument("--ofa-predictor", type=Path, metavar="FILE",
                     help="search against OFA's acc_predictor.pth (from OFA's model zoo; never downloaded)")
    ofa.add_argument("--resolution", default="224", metavar="PX",
                     help="input resolution the predictor scores and the MAdds count at: one of OFA's 160, 176, "
                     "192, 208, 224, or 'search' to make it one more decision of the architecture, as in OFA's "
                     "search (default: %(default)s)")
    ofa.add_argument("--ofa-latency-tables", type=Path, metavar="DIR",
                     help="folder of OFA's Note10 tables ({resolution}_lookup_table.yaml), for --max-latency-ms")
    ofa.add_argument("--max-latency-ms", type=float, metavar="MS", help="Note10 latency limit (ms)")
    defined = set(parser._option_string_actions)  # noqa: SLF001 - argparse has no public query for this
    if "--max-madds" not in defined:
        group.add_argument("--max-madds", type=float, default=MAX_MADDS_DEFAULT, metavar="M",
                           help="MAdds limit at 224 px (default: 600e6)")
    if "--ofa" not in defined:
        group.add_argument("--ofa", type=Path, metavar="CKPT", help="OFA w1.2 supernet weights, for --rescore")
    if "--supernet" not in defined:
        group.add_argument("--supernet", type=Path, metavar="CKPT", help="supernet checkpoint, for --rescore")
    if "--data" not in defined:
        group.add_argument("--data", type=Path, metavar="DIR", help="ImageFolder root, for --rescore")
    add_evaluator_options(group, defined)


def run_search(args: argparse.Namespace) -> int:
    """``nni-asenas search --space mobilenet --predictor FILE``: ASE-NAS scored by the predictor."""
    from nni_asenas.imagenet.predictor_search import DEFAULT_QUERIES

    if args.space != "mobilenet" or args.predictor is None:
        raise UsageError("a predictor search needs --space mobilenet and --predictor FILE")
    check_seed(args.seed)
    if not (args.max_madds > 0 and math.isfinite(args.max_madds)):
        raise UsageError(f"--max-madds must be a positive number, got {args.max_madds:g}")
    queries = DEFAULT_QUERIES if args.max_queries is None else args.max_queries
    if queries < 1:
        raise UsageError(f"--max-queries must be >= 1, got {queries}")
    if args.rescore < 0:
        raise UsageError(f"--rescore must be >= 0, got {args.rescore}")
    if args.rescore and (args.data is None or (args.ofa is None) == (args.supernet is None)):
        raise UsageError("--rescore needs --data DIR and exactly one of --ofa CKPT / --supernet CKPT")
    from nni_asenas.imagenet.limits import min_madds

    least = min_madds()[0]
    if args.max_madds < least:
        raise UsageError(f"--max-madds {args.max_madds / 1e6:.1f} M is below the smallest network of the space "
                         f"({least / 1e6:.1f} M MAdds at 224 px)")
    if args.output is not None:
        prepare_output_dir(args.output)  # before the search: its result must have a place to go
    from nni_asenas.imagenet.predictor import AccuracyPredictor
    from nni_asenas.imagenet.predictor_search import search_with_predictor
    from nni_asenas.imagenet.space import canonical_arch

    predictor = AccuracyPredictor.load(args.predictor)
    initial = read_init(args.init, canonical_arch)
    rescore = supernet_evaluator(args) if args.rescore else None
    config = method_config(args)
    warn_about_random_start(config, queries)  # after the checks: an error stays the one line
    with flag_errors(SEARCH_FLAGS), query_progress(queries, not args.no_progress) as on_query:
        result = search_with_predictor(
            predictor, max_queries=queries, seed=args.seed, max_madds=args.max_madds, config=config,
            initial_architectures=initial, rescore=rescore, n_rescore=args.rescore, on_query=on_query,
            evaluator={"predictor": str(args.predictor)})
    _print_summary(result)
    if args.output is not None:
        write_winner(args.output, result)
    return 0


def run_ofa_search(args: argparse.Namespace) -> int:
    """``nni-asenas search --space mobilenet --ofa-predictor FILE``: ASE-NAS scored by OFA's released predictor,
    under a MAdds limit and, with OFA's Note10 tables, a latency limit; every check before the search."""
    from nni_asenas.imagenet.predictor_search import DEFAULT_QUERIES

    if args.space != "mobilenet":
        raise UsageError("--ofa-predictor needs --space mobilenet")
    if args.predictor is not None:
        raise UsageError("--ofa-predictor and --predictor are two evaluators: give one")
    check_seed(args.seed, "--seed")
    if not (args.max_madds > 0 and math.isfinite(args.max_madds)):
        raise UsageError(f"--max-madds must be a positive number, got {args.max_madds:g}")
    queries = DEFAULT_QUERIES if args.max_queries is None else args.max_queries
    if queries < 1:
        raise UsageError(f"--max-queries must be >= 1, got {queries}")
    if (args.ofa_latency_tables is None) != (args.max_latency_ms is None):
        raise UsageError("--max-latency-ms and --ofa-latency-tables DIR go together")
    resolution = _resolution(args.resolution)
    from nni_asenas.imagenet.limits import latency_constraint, min_madds
    from nni_asenas.imagenet.ofa_latency import OfaLatencyTable
    from nni_asenas.imagenet.ofa_predictor import OfaAccuracyPredictor
    from nni_asenas.imagenet.ofa_space import RESOLUTION_LABEL, canonical_arch_with_resolution
    from nni_asenas.imagenet.space import canonical_arch
    from nni_asenas.imagenet.space_search import run_mobilenet_search

    least, _, least_at = min_madds(resolution)
    if args.max_madds < least:
        raise UsageError(f"--max-madds {args.max_madds / 1e6:.1f} M is below the smallest network of the space "
                         f"({least / 1e6:.1f} M MAdds at {least_at} px)")
    predictor = OfaAccuracyPredictor.from_file(args.ofa_predictor, resolution=resolution)
    table, constraint = None, None
    if args.ofa_latency_tables is not None:
        table = OfaLatencyTable(args.ofa_latency_tables, resolution=resolution)
        constraint = latency_constraint(table, args.max_latency_ms)
    initial = read_init(args.init, canonical_arch if resolution is not None else canonical_arch_with_resolution)
    if args.output is not None:
        prepare_output_dir(args.output)
    config = method_config(args)
    warn_about_random_start(config, queries)  # after the checks: an error stays the one line
    evaluator: dict[str, Any] = {"kind": "ofa-predictor", "predictor": str(args.ofa_predictor),
                                 "resolution": resolution if resolution is not None else "search"}
    if table is not None:
        evaluator.update(latency_tables=str(args.ofa_latency_tables), max_latency_ms=args.max_latency_ms)
    with flag_errors(SEARCH_FLAGS), query_progress(queries, not args.no_progress) as on_query:
        result = run_mobilenet_search(
            lambda arch: 100.0 * predictor.predict_one(arch), max_queries=queries, evaluator=evaluator,
            seed=args.seed, max_madds=args.max_madds, madds_resolution=resolution, constraint=constraint,
            initial_architectures=initial, config=config, on_query=on_query)
    best = result["best"]
    if best is not None:
        best.setdefault("resolution", resolution)  # searched: the search named it
        if table is not None:
            best["latency_ms"] = table.latency({**best["arch"], RESOLUTION_LABEL: best["resolution"]})
    _print_summary(result)
    if best is not None:
        print(f"input resolution of the best: {best['resolution']} px"
              + (" (searched; fine-tune it with --img-size " + str(best["resolution"]) + ")"
                 if resolution is None else ""))
    if table is not None and best is not None:
        print(f"Note10 latency of the best: {best['latency_ms']:.2f} ms (limit {args.max_latency_ms:g} ms)")
    if args.output is not None:
        write_winner(args.output, result)
    return 0


def _resolution(text: str) -> int | None:
    """``--resolution``: one of OFA's sizes, or None for ``search`` (a decision of the architecture)."""
    from nni_asenas.imagenet.ofa_space import check_resolution

    if text == "search":
        return None
    try:
        value: Any = int(text)
    except ValueError:
        raise UsageError(f"--resolution must be one of OFA's 160, 176, 192, 208, 224 or 'search', got {text!r}") \
            from None
    with flag_errors({"resolution": "--resolution"}):
        return check_resolution(value)


def _print_summary(result: Mapping[str, Any]) -> None:
    scorer = "OFA's accuracy predictor" if result["evaluator"]["kind"] == "ofa-predictor" else "the accuracy predictor"
    print(f"ASE-NAS on the MobileNet-like space, scored by {scorer}: {result['queries']} queries in "
          f"{result['wall_seconds']:.1f} s, MAdds <= {result['max_madds'] / 1e6:.0f} M, seed {result['seed']}")
    if "rescored" in result:
        print(f"{'rank':>4}  {'predicted':>9}  {'measured':>8}  {'MAdds':>7}  {'params':>7}")
        for rank, row in enumerate(result["rescored"], start=1):
            measured = f"{row['top1']:>7.2f}%" if row["top1"] is not None else f"{'failed':>8}"
            print(f"{rank:>4}  {row['predicted_top1']:>8.2f}%  {measured}  {row['madds'] / 1e6:>6.1f}M  "
                  f"{row['params'] / 1e6:>6.2f}M")
    best = result["best"]
    if best is None:
        print("no architecture was scored")
        return
    kind = "measured" if "rescored" in result else "predicted"
    print(f"best ({kind} top-1 {best['top1']:.2f}%, {best['madds'] / 1e6:.1f} M MAdds, "
          f"{best['params'] / 1e6:.2f} M params): {json.dumps(best['arch'])}")
