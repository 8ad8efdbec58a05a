"""Throughput of TIGAS against a ResNet-50 detector and against pure JPEG decode, from one run.

    python benchmarks/throughput.py [--images DIR] [--n 256] [--threads 2] [--batch-size 32]

Prints img/s on 256 px batches for: the TIGAS model at its default architecture (img_size 256,
base_channels 32, feature_dim 256), the shipped weights' configuration (as `TIGAS()` runs it, which
resizes to its own img_size), torchvision ResNet-50 (the CNNDetection architecture; random
weights — speed does not depend on them), JPEG decode + resize alone, and folder scoring with the
shipped weights (decode + model), also with ``views="mirror"`` and ``views="jitter"`` (2 and 18
views per image) — then the ratios against ResNet-50 and against decode.
Without --images it writes N synthetic 512x384 JPEGs to a temp folder first.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from tigas_core.api import TIGAS
from tigas_core.io import iter_image_files, load_image, preprocess
from tigas_core.model import create_tigas_model


def synthetic_jpegs(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        base = rng.random((48, 64, 3))
        image = Image.fromarray((base * 255).astype(np.uint8)).resize((512, 384), Image.BICUBIC)
        path = folder / f"{i:04d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def rate(fn, items: int, repeats: int = 3) -> float:
    """Best of ``repeats`` timed runs after one warm-up, in items per second."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return items / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, help="folder of images (default: synthetic JPEGs)")
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--img-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        paths = list(iter_image_files(args.images))[: args.n] if args.images else synthetic_jpegs(Path(tmp), args.n)
        default_arch = TIGAS(model=create_tigas_model(img_size=args.img_size), device="cpu")
        shipped = TIGAS(device="cpu")
        resnet = torchvision.models.resnet50().eval().to(memory_format=torch.channels_last)
        batch = torch.rand(args.batch_size, 3, args.img_size, args.img_size)

        with torch.inference_mode():
            default_rate = rate(lambda: default_arch.forward_tensor(batch), args.batch_size)
            shipped_rate = rate(lambda: shipped.forward_tensor(batch), args.batch_size)
            resnet_rate = rate(lambda: resnet(batch.contiguous(memory_format=torch.channels_last)), args.batch_size, repeats=2)

        def decode_all():
            with ThreadPoolExecutor(max_workers=args.threads) as pool:
                list(pool.map(lambda p: preprocess(load_image(p), args.img_size), paths))

        decode_rate = rate(decode_all, len(paths), repeats=2)
        folder_rate = rate(lambda: shipped.score_files(paths, batch_size=args.batch_size, workers=args.threads), len(paths), repeats=1)
        averaged_rates = {}
        for views in ("mirror", "jitter"):
            scorer = TIGAS(model=shipped.model, device="cpu", views=views)
            averaged_rates[views] = rate(lambda: scorer.score_files(paths, batch_size=args.batch_size, workers=args.threads),
                                         len(paths), repeats=1)

    print(f"images: {len(paths)} ({'synthetic 512x384 JPEG' if not args.images else args.images}), "
          f"{args.img_size} px, batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}")
    c = shipped.config
    print(f"TIGAS default architecture (256 px, base 32, dim 256)  {default_rate:8.1f} img/s")
    print(f"TIGAS shipped weights (img_size {c.img_size}, base {c.base_channels}, dim {c.feature_dim})  {shipped_rate:8.1f} img/s")
    print(f"ResNet-50 forward                                  {resnet_rate:8.1f} img/s")
    print(f"JPEG decode + resize                               {decode_rate:8.1f} img/s")
    print(f"TIGAS folder scoring (shipped weights)             {folder_rate:8.1f} img/s")
    for views, views_rate in averaged_rates.items():
        print(f"  the same with views={views!r:<9}                  {views_rate:8.1f} img/s")
    print(f"ratio default architecture / ResNet-50  {default_rate / resnet_rate:6.2f}x   (target >= 5x)")
    print(f"ratio shipped weights / ResNet-50       {shipped_rate / resnet_rate:6.2f}x   (target >= 5x)")
    print(f"ratio folder scoring / decode           {folder_rate / decode_rate:6.2f}x   (target >= 0.5x)")
    for views, views_rate in averaged_rates.items():
        print(f"ratio views={views!r:<9} / decode        {views_rate / decode_rate:6.2f}x")


if __name__ == "__main__":
    main()
