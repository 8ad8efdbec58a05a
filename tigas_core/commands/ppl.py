"""Perceptual Path Length of a generator-zoo checkpoint: how abruptly its images change along
short steps between latent codes (lower: a smoother latent space).

    tigas ppl assets/zoo/dcgan --n 1000
    tigas ppl runs/stylegan --space w
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tigas_core.commands import add_scorer_arguments, positive_int, prepare_output, set_threads


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="run folder, checkpoint.safetensors/.json or an exported stem (assets/zoo/dcgan)")
    parser.add_argument("--space", choices=["z", "w"], default="z", help="latent space of the paths: z, or w for a style-based model")
    parser.add_argument("--n", type=positive_int, default=1000, help="number of paths (pairs of images)")
    parser.add_argument("--epsilon", type=positive_float, default=1e-4, help="step along each path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--no-ema", action="store_true", help="the last generator weights, not their moving average")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    add_scorer_arguments(parser, options=("device", "threads"))


def run(args: argparse.Namespace) -> int:
    set_threads(args)
    if args.n < 2:
        raise ValueError("--n must be at least 2: the 1st/99th-percentile trimming needs pairs to compare")
    if args.json is not None:
        prepare_output(args.json, "--json")
    from tigas_core.api import resolve_device
    from tigas_core.config import atomic_write_text
    from tigas_core.generators import load_for_sampling
    from tigas_core.metrics.perceptual import LiteFeatures
    from tigas_core.metrics.ppl import PPL_IMAGE_SIZE, zoo_path_length

    device = resolve_device(args.device)
    model = load_for_sampling(args.checkpoint, use_ema=not args.no_ema).to(device)
    features = LiteFeatures(size=PPL_IMAGE_SIZE).to(device)
    result = zoo_path_length(model, args.n, args.space, args.epsilon, args.seed, args.batch_size, features)
    print(f"PPL {result.ppl:.2f}  ({model.name}, {args.space} space, {result.interpolation}; {len(result.distances)} paths, "
          f"{result.kept} kept between the 1st and 99th percentiles; epsilon {args.epsilon:g})")
    if args.json is not None:
        record = {"checkpoint": str(args.checkpoint), "model": model.name, "space": args.space, "seed": args.seed, **result.to_dict()}
        atomic_write_text(args.json, json.dumps(record, indent=2) + "\n")
    return 0
