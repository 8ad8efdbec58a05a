"""Sample PNG images from a generator-zoo checkpoint into a folder named after the generator.

    tigas generate --model dcgan --checkpoint runs/dcgan --n 2000 --out data/fake/dcgan
    tigas generate --model text2image --prompt "a red car" --n 16 --out red_cars   # the bundled checkpoint
"""
from __future__ import annotations

import argparse
from pathlib import Path

from tigas_core.commands import positive_int, set_threads


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None,
                        help="run folder, checkpoint.safetensors/.json or an exported stem (default: the bundled checkpoint of --model)")
    parser.add_argument("--model", default=None, help="zoo model name: checked against --checkpoint, or picks the bundled one")
    parser.add_argument("--n", type=positive_int, default=2000, help="number of images")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=positive_int, default=250)
    parser.add_argument("--label", type=int, default=None, help="class label for a conditional model (default: all classes in turn)")
    parser.add_argument("--prompt", default=None,
                        help='a text-conditioned model (text2image) draws every image for this prompt, e.g. "a small red car"')
    parser.add_argument("--prefix", default=None, help="file name prefix (default: the model name)")
    parser.add_argument("--sample-steps", type=positive_int, default=None, help="DDIM steps for a diffusion model (default: its config)")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance scale of a class-conditional DDPM (default: its config; 1 = none)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, ...")
    parser.add_argument("--no-ema", action="store_true", help="sample from the last generator weights, not their moving average")
    parser.add_argument("--truncation", type=float, default=1.0,
                        help="scale the latent codes by this psi in (0, 1] (GANs, VAE): less variety, higher fidelity")


def run(args: argparse.Namespace) -> int:
    set_threads(args)
    from tigas_core.generators.sampling import generate_images
    from tigas_core.generators.showcase import bundled_generator

    if not (args.checkpoint or args.model):
        raise ValueError("give --checkpoint, or --model to sample a bundled zoo model")
    checkpoint = args.checkpoint or str(bundled_generator(args.model))
    written = generate_images(checkpoint, args.out, args.n, args.seed, args.batch_size, args.label, args.model, args.prefix,
                              progress=True, sample_steps=args.sample_steps, device=args.device,
                              use_ema=not args.no_ema, truncation=args.truncation, guidance=args.guidance,
                              prompt=args.prompt)
    print(f"wrote {len(written)} images to {args.out}")
    return 0
