"""Throughput of TIGAS against a ResNet-50 detector and against pure JPEG decode, from one run.

    python benchmarks/throughput.py [--images DIR] [--n 128] [--threads 2] [--batch-size 32] [--device cpu|cuda]

Prints img/s for: the shipped weights' model on batches of its own 224 px views (as `TIGAS()`
runs it, channels-last on the CPU), torchvision ResNet-50 on 256 px batches (the CNNDetection
architecture; random weights: speed does not depend on them; the two timed in turns, best of
--repeats rounds), JPEG decode + view alone, and
folder scoring (decode + model) with the default views and with ``views="mirror"``,
``views="grid"`` and ``views="jitter"`` (2, 4 and 18 views per image); the model and folder
scoring again with ``precision="bf16"`` (the trunk in bfloat16); then the ratios against
ResNet-50 (float32, as a detector runs it) and decode.
Without --images it writes N synthetic 512x384 JPEGs to a temp folder first.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

from tigas_core.api import TIGAS
from tigas_core.io import iter_image_files, load_image, preprocess
from tigas_core.precision import has_fast_bf16


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
    return rates({"": (fn, items)}, repeats)[""]


def rates(runs: dict[str, tuple[Callable[[], object], int]], repeats: int = 3) -> dict[str, float]:
    """Items per second of each (fn, items), best of ``repeats`` rounds after one warm-up each. The
    runs take turns within a round, so a machine that slows down for a while (a shared CPU does)
    slows both sides of a ratio rather than one."""
    for fn, _ in runs.values():
        fn()
    best = dict.fromkeys(runs, math.inf)
    for _ in range(repeats):
        for name, (fn, _) in runs.items():
            best[name] = min(best[name], _timed(fn))
    return {name: items / best[name] for name, (_, items) in runs.items()}


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
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the model against ResNet-50, taking turns")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    layout = torch.channels_last

    with tempfile.TemporaryDirectory() as tmp:
        paths = list(iter_image_files(args.images))[: args.n] if args.images else synthetic_jpegs(Path(tmp), args.n)
        shipped = TIGAS(device=device)
        bfloat16 = TIGAS(model=shipped.model, device=device, precision="bf16")
        size = shipped.img_size
        resnet = torchvision.models.resnet50().eval().to(device, memory_format=layout)
        views = torch.rand(args.batch_size, 1, 3, size, size, device=device)
        resnet_batch = torch.rand(args.batch_size, 3, 256, 256, device=device).contiguous(memory_format=layout)

        with torch.inference_mode():
            measured = rates({"model": (lambda: synced(device, shipped.forward_views(views)), args.batch_size),
                              "bfloat16": (lambda: synced(device, bfloat16.forward_views(views)), args.batch_size),
                              "resnet": (lambda: synced(device, resnet(resnet_batch)), args.batch_size)}, repeats=args.repeats)
        model_rate, bfloat16_rate, resnet_rate = measured["model"], measured["bfloat16"], measured["resnet"]

        def decode_all():
            with ThreadPoolExecutor(max_workers=args.threads) as pool:
                list(pool.map(lambda p: preprocess(load_image(p), size), paths))

        decode_rate = rate(decode_all, len(paths), repeats=2)
        def folder_rate(scorer: TIGAS) -> float:
            return rate(lambda: scorer.score_files(paths, batch_size=args.batch_size, workers=args.threads), len(paths), repeats=1)

        folder_rates = {f"views={mode!r}": folder_rate(TIGAS(model=shipped.model, device=device, views=mode))
                        for mode in ("single", "mirror", "grid", "jitter")}
        folder_rates["views='single', trunk in bfloat16"] = folder_rate(bfloat16)

    print(f"images: {len(paths)} ({'synthetic 512x384 JPEG' if not args.images else args.images}), batch {args.batch_size}, "
          f"{args.threads} threads, {device}{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}, "
          f"torch {torch.__version__}")
    c = shipped.config
    emulated = "" if has_fast_bf16(device) else " (emulated: no native bfloat16)"
    rows = {f"TIGAS model ({c.backbone}, {size} px views, dim {c.feature_dim})": model_rate,
            f"TIGAS model, trunk in bfloat16{emulated}": bfloat16_rate,
            "ResNet-50 forward (256 px)": resnet_rate, "JPEG decode + view": decode_rate,
            **{f"TIGAS folder scoring, {setting}": folder_rate for setting, folder_rate in folder_rates.items()}}
    for label, value in rows.items():
        print(f"{label:<64}{value:8.1f} img/s")
    print(f"{'ratio TIGAS model / ResNet-50':<64}{model_rate / resnet_rate:7.2f}x   (target >= 5x; >= 3x required)")
    print(f"{'ratio TIGAS model, trunk in bfloat16 / ResNet-50':<64}{bfloat16_rate / resnet_rate:7.2f}x")
    for setting, folder_rate in folder_rates.items():
        print(f"{f'ratio folder scoring {setting} / decode':<64}{folder_rate / decode_rate:7.2f}x")

def synced(device: torch.device, value):
    """Wait for the GPU, so a timing covers the work and not just its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return value


if __name__ == "__main__":
    main()
