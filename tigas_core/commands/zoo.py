"""Train the generator zoo (DCGAN, WGAN-GP, cGAN, VAE, DDPM, StyleGAN) or export a small checkpoint.

    tigas zoo train --model dcgan --data ../shared/data/real/cifar10 --minutes 20 --out runs/dcgan
    tigas zoo export --checkpoint runs/dcgan --out assets/zoo/dcgan
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tigas_core.commands import add_scorer_arguments, positive_int, set_threads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tigas_core.generators import MODELS
    from tigas_core.precision import PRECISIONS

    sub = parser.add_subparsers(dest="zoo_command", metavar="{train,export}", required=True)
    train = sub.add_parser("train", help="train one zoo model (time-boxed, resumes from --out)")
    train.add_argument("--model", required=True, choices=sorted(MODELS))
    train.add_argument("--data", required=True, type=Path, help="image folder; class sub-folders are labels (cGAN)")
    train.add_argument("--out", required=True, type=Path, help="run folder: checkpoint, samples/, tb/")
    train.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget of this invocation")
    train.add_argument("--steps", type=positive_int, default=None, help="stop at this total step count (for equal-step comparisons)")
    train.add_argument("--batch-size", type=positive_int, default=None,
                       help="default: the model's own (see the README), or the run's own when resuming")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--img-size", type=positive_int, default=32)
    train.add_argument("--data-limit", type=positive_int, default=None, help="use at most this many images")
    train.add_argument("--spectral-norm", action="store_true", help="spectral normalisation in the discriminator")
    train.add_argument("--ttur", action="store_true", help="two time-scale update rule: D lr x2, G lr /2")
    train.add_argument("--ema", type=float, default=None, help="EMA decay of the generator weights (0 = off)")
    train.add_argument("--clusters", type=int, default=None,
                       help="GANs without labels: self-condition on this many k-means clusters of the images (0 = off; "
                            "the DCGAN conditions on layouts instead by default: add --set layout_prior=0)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a model config value (JSON value)")
    train.add_argument("--tigas-weight", type=float, default=0.0, help="add weight * (1 - TIGAS score) to the generator loss")
    add_scorer_arguments(train, options=("weights",), prefix="tigas-")
    train.add_argument("--tigas-every", type=positive_int, default=1, help="apply the TIGAS term every N generator steps")
    train.add_argument("--tigas-warmup", type=int, default=0, help="ramp the TIGAS weight up over N steps")
    train.add_argument("--tigas-warmup-mode", choices=["linear", "cosine"], default="linear")
    train.add_argument("--tigas-multi-scale", action="store_true", help="average TIGAS over resized copies")
    train.add_argument("--quality-grid", action="store_true", help="also write samples/quality_sorted.png (needs TIGAS)")
    train.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    train.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    train.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="bf16: convolutions and matmuls in bfloat16 (1.4-1.7x the steps per second on a CPU with AMX or AVX512-BF16); "
                            "auto (default): bf16 where the CPU or GPU runs it natively, else fp32")
    train.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --out")

    export = sub.add_parser("export", help="write only the (EMA) sampling network in fp16, for bundling")
    export.add_argument("--checkpoint", required=True, help="run folder or checkpoint file")
    export.add_argument("--out", required=True, type=Path, help="output stem: writes OUT.safetensors and OUT.json")
    export.add_argument("--no-ema", action="store_true", help="export the last generator weights, not their moving average")


def _run_train(args: argparse.Namespace) -> int:
    from tigas_core.generators.train import ZooTrainOptions, train_zoo_model
    from tigas_core.overrides import parse_value, split_assignment

    overrides = {key: parse_value(value) for key, value in map(split_assignment, args.set)}
    if args.spectral_norm:
        overrides["spectral_norm"] = True
    if args.ttur:
        overrides["ttur"] = True
    if args.ema is not None:
        overrides["ema"] = args.ema
    if args.clusters is not None:
        overrides["clusters"] = args.clusters
    options = ZooTrainOptions(
        model=args.model, data=args.data, out=args.out, minutes=args.minutes, max_steps=args.steps,
        batch_size=args.batch_size, seed=args.seed, img_size=args.img_size, data_limit=args.data_limit,
        overrides=overrides, tigas_weight=args.tigas_weight, tigas_weights=args.tigas_weights,
        tigas_every=args.tigas_every, tigas_warmup=args.tigas_warmup, tigas_warmup_mode=args.tigas_warmup_mode,
        tigas_multi_scale=args.tigas_multi_scale, quality_grid=args.quality_grid, fresh=args.fresh,
        device=args.device, precision=args.precision,
    )
    summary = train_zoo_model(options)
    print(json.dumps(summary, indent=2))
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from tigas_core.generators import load_for_sampling
    from tigas_core.generators.common import resolve_checkpoint, save_checkpoint
    from tigas_core.generators.train import LEGACY_BATCH_SIZE, LEGACY_PRECISION

    model = load_for_sampling(args.checkpoint, use_ema=not args.no_ema)
    trained = json.loads(resolve_checkpoint(args.checkpoint).with_suffix(".json").read_text())
    tensors = model.sampler_tensors(half=True)
    meta = {"model": model.name, "config": model.config, "progress": trained.get("progress"), "tigas_weight": trained.get("tigas_weight"),
            "precision": trained.get("precision", LEGACY_PRECISION),
            "batch_size": trained.get("batch_size", LEGACY_BATCH_SIZE),
            "weights": "last" if args.no_ema or model.config.get("ema", 0) <= 0 else "ema"}
    save_checkpoint(args.out, tensors, meta)
    size = Path(args.out).with_suffix(".safetensors").stat().st_size
    print(f"wrote {Path(args.out).with_suffix('.safetensors')} ({size / 2**20:.2f} MiB) and {Path(args.out).with_suffix('.json')}")
    return 0


def run(args: argparse.Namespace) -> int:
    set_threads(args)
    return _run_train(args) if args.zoo_command == "train" else _run_export(args)
