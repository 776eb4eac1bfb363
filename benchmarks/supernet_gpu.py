"""Supernet training throughput and sub-net evaluator speed, on one GPU (or, tiny, on the CPU).

Two measurements on synthetic ImageNet-sized tensors already on the device (so JPEG decoding is not measured):

1. supernet training: ``--steps`` optimiser steps (after ``--warmup`` untimed ones) of the trainer's own step
   (:func:`nni_asenas.imagenet.supernet_train.train_step`: the sandwich rule's largest + smallest + 2 random
   sub-nets with in-place distillation, or ``--sampling uniform``), bf16 autocast + channels_last by default, at
   batch ``--batch-size`` and ``--img-size`` px; reports images/s (batch / step time) and sub-net passes/s;
2. the sub-net evaluator (:class:`~nni_asenas.imagenet.evaluator.SubnetEvaluator`): ``--queries`` distinct random
   sub-nets within 600 M MAdds, each extracted, BN-recalibrated on ``--calib-images`` images and scored on
   ``--eval-images``; reports seconds per query.

    python benchmarks/supernet_gpu.py --json benchmarks/results/supernet_gpu.json           # one GPU, defaults
    python benchmarks/supernet_gpu.py --device cpu --img-size 32 --width-mult 0.25 --batch-size 8 \\
        --calib-images 16 --eval-images 32 --steps 2 --warmup 1 --queries 2                  # a CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from typing import Any

import torch

from nni_asenas.imagenet.data import IMAGENET_MEAN, IMAGENET_STD
from nni_asenas.imagenet.engine import ProcessEnv, build_optimizer
from nni_asenas.imagenet.evaluator import SubnetEvaluator, normalize_uint8
from nni_asenas.imagenet.supernet import MobileNetSupernet, SubnetSampler
from nni_asenas.imagenet.supernet_train import SupernetRun, step_archs, train_step


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--amp", choices=("bf16", "off"), default="bf16")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--width-mult", type=float, default=1.2)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--sampling", choices=("sandwich", "uniform"), default="sandwich")
    p.add_argument("--random-subnets", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--calib-images", type=int, default=2000)
    p.add_argument("--eval-images", type=int, default=10000)
    p.add_argument("--eval-batch-size", type=int, default=250)
    p.add_argument("--queries", type=int, default=5)
    p.add_argument("--max-madds", type=float, default=600e6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--skip-training", action="store_true", help="measure the evaluator only")
    p.add_argument("--json", help="also write the measurements to this file")
    return p.parse_args(argv)


def measure_training(args: argparse.Namespace, device: torch.device, supernet: MobileNetSupernet,
                     amp: torch.dtype | None, memory_format: torch.memory_format) -> dict[str, Any]:
    env = ProcessEnv(rank=0, world=1, local_rank=0, local_world=1, device=device)
    sampler = SubnetSampler(seed=args.seed, width_mult=args.width_mult, num_classes=args.num_classes)
    optimizer = build_optimizer(supernet, opt="sgd", lr=0.1, momentum=0.9, weight_decay=3e-5)
    run = SupernetRun(supernet=supernet, sampler=sampler, optimizer=optimizer,
                      scaler=torch.amp.GradScaler(device.type, enabled=False), amp=amp, memory_format=memory_format,
                      env=env, total_steps=args.steps + args.warmup, warmup_steps=0, base_lr=0.1)
    generator = torch.Generator(device="cpu").manual_seed(args.seed)
    images = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=generator)
    images = images.to(device).contiguous(memory_format=memory_format)
    targets = torch.randint(0, args.num_classes, (args.batch_size,), generator=generator).to(device)
    parameters = list(supernet.parameters())
    supernet.train()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    passes = 0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            _synchronize(device)
            start = time.perf_counter()
            passes = 0
        archs = step_archs(sampler, step, sampling=args.sampling, random_subnets=args.random_subnets)
        train_step(run, images, targets, archs, parameters, distill=args.sampling == "sandwich", label_smoothing=0.1)
        passes += len(archs)
    _synchronize(device)
    seconds = time.perf_counter() - start
    return {"steps": args.steps, "subnets_per_step": passes // max(args.steps, 1),
            "seconds_per_step": seconds / args.steps, "images_per_s": args.batch_size * args.steps / seconds,
            "subnet_passes_per_s": passes / seconds,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None}


def measure_evaluator(args: argparse.Namespace, device: torch.device, supernet: MobileNetSupernet,
                      amp: torch.dtype | None, channels_last: bool) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(args.seed + 1)

    def uint8_batches(count: int) -> list[torch.Tensor]:
        sizes = [args.eval_batch_size] * (count // args.eval_batch_size)
        if count % args.eval_batch_size:
            sizes.append(count % args.eval_batch_size)
        return [torch.randint(0, 256, (size, 3, args.img_size, args.img_size), generator=generator,
                              dtype=torch.uint8).to(device) for size in sizes]

    calibration = uint8_batches(args.calib_images)
    evaluation = [(images, torch.randint(0, args.num_classes, (images.shape[0],), generator=generator).to(device))
                  for images in uint8_batches(args.eval_images)]
    evaluator = SubnetEvaluator(supernet.extract, calibration=calibration, evaluation=evaluation,
                                prepare=normalize_uint8(IMAGENET_MEAN, IMAGENET_STD, device=device,
                                                        channels_last=channels_last),
                                device=device, amp=amp)
    sampler = SubnetSampler(seed=args.seed, max_madds=args.max_madds, width_mult=args.width_mult,
                            num_classes=args.num_classes)
    supernet.eval()
    evaluator(sampler.sample(10_000))  # warm-up query (cudnn autotuning, allocator), not counted
    evaluator.seconds, evaluator.n_evaluated = 0.0, 0
    cpu_start = time.process_time()
    for query in range(args.queries):
        evaluator(sampler.sample(query))
    return {"queries": args.queries, "seconds_per_query": evaluator.seconds_per_query(),
            "process_cpu_seconds_per_query": (time.process_time() - cpu_start) / args.queries,
            "calibration_images": evaluator.calibration_images, "evaluation_images": evaluator.evaluation_images}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("supernet_gpu.py: --device cuda but CUDA is not available", file=sys.stderr)
        return 2
    device = torch.device("cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.threads:
        torch.set_num_threads(args.threads)
    amp = torch.bfloat16 if args.amp == "bf16" else None
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.manual_seed(args.seed)
    supernet = MobileNetSupernet(width_mult=args.width_mult, num_classes=args.num_classes)
    supernet.to(device, memory_format=memory_format)  # type: ignore[call-overload]
    training = None if args.skip_training else measure_training(args, device, supernet, amp, memory_format)
    evaluation = measure_evaluator(args, device, supernet, amp, args.channels_last)
    result = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "settings": vars(args), "training": training, "evaluator": evaluation}
    print(f"device {result['device']}, {args.img_size} px, width {args.width_mult}, amp {args.amp}, "
          f"channels_last {args.channels_last}")
    if training is not None:
        print(f"supernet training ({args.sampling}, {training['subnets_per_step']} sub-nets per step, batch "
              f"{args.batch_size}): {training['images_per_s']:.1f} images/s, {training['seconds_per_step']:.3f} s "
              f"per step, {training['subnet_passes_per_s']:.2f} sub-net passes/s"
              + (f", peak {training['peak_memory_gib']:.1f} GiB" if training["peak_memory_gib"] else ""))
    print(f"evaluator: {evaluation['seconds_per_query']:.3f} s per query, "
          f"{evaluation['process_cpu_seconds_per_query']:.3f} process CPU s (BN recalibration on "
          f"{evaluation['calibration_images']} images, top-1 on {evaluation['evaluation_images']})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
