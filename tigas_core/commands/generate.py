"""Sample PNG images from a generator-zoo checkpoint into a folder named after the generator.

    tigas generate --model dcgan --checkpoint runs/dcgan --n 2000 --out data/fake/dcgan
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="run folder, checkpoint.safetensors/.json or an exported stem")
    parser.add_argument("--model", default=None, help="expected zoo model name (checked against the checkpoint)")
    parser.add_argument("--n", type=int, default=2000, help="number of images")
    parser.add_argument("--out", required=True, type=Path, help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--label", type=int, default=None, help="class label for a conditional model (default: all classes in turn)")
    parser.add_argument("--prefix", default=None, help="file name prefix (default: the model name)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def generate_images(checkpoint: str, out: Path, n: int, seed: int = 0, batch_size: int = 250,
                    label: int | None = None, expected_model: str | None = None, prefix: str | None = None) -> list[Path]:
    """Write ``n`` PNGs ``<prefix>_<index>.png``; batch ``i`` uses seed ``seed + i`` so the same
    call gives the same files."""
    import torch
    from tqdm import tqdm

    from tigas_core.config import atomic_write_bytes
    from tigas_core.generators import load_for_sampling
    from tigas_core.generators.common import png_bytes

    model = load_for_sampling(checkpoint, expected_model)
    prefix = prefix or model.name
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for b, first in enumerate(tqdm(range(0, n, batch_size), desc=f"generate {model.name}", unit="batch")):
        count = min(batch_size, n - first)
        labels = None
        if model.conditional:
            labels = torch.full((count,), label) if label is not None else (torch.arange(first, first + count) % model.config["n_classes"])
        for i, image in enumerate(model.sample(count, labels=labels, seed=seed + b)):
            path = out / f"{prefix}_{first + i:05d}.png"
            atomic_write_bytes(path, png_bytes(image))
            written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        written = generate_images(args.checkpoint, args.out, args.n, args.seed, args.batch_size, args.label, args.model, args.prefix)
    except (ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    print(f"wrote {len(written)} images to {args.out}")
    return 0
