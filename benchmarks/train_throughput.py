"""Training throughput on this machine: a step on pixels against a step on cached measurements.

    python benchmarks/train_throughput.py [--batch-size 32] [--steps 4] [--threads 2] [--json out.json]

A pixel step (what `tigas train` runs: the frozen trunk and the spectral and statistical
measurements on every view, then the learnt layers, loss, backward, AdamW) against a step from a
feature cache (`tigas_core.training.feature_cache`: the measurements read back instead, what the
bundled weights' recipe runs), both on the default model; then the rate of making augmented
training views (`native_view`) of a 32 px and a 1024 px image. Figures from one run on a possibly
shared machine: compare rows of the same run.
"""
from __future__ import annotations

import argparse
import json
import random
import time

import torch

from tigas_core.data.augment import get_level, native_view
from tigas_core.model import create_tigas_model
from tigas_core.training.losses import LossWeights, tigas_training_loss


def step_rate(model, batch_size: int, steps: int, from_cache: bool) -> float:
    size = model.config.img_size
    images = torch.rand(batch_size, 3, size, size)
    labels = (torch.arange(batch_size) % 2).float()
    with torch.no_grad():
        measured = model.measure(images)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    timings = []
    for _ in range(steps + 1):  # the first step warms up allocators and is dropped
        start = time.perf_counter()
        out = model(measured=measured) if from_cache else model(images)
        loss, _ = tigas_training_loss(out, labels, LossWeights())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timings.append(time.perf_counter() - start)
    return batch_size * steps / sum(timings[1:])


def view_rate(side: int, img_size: int, n: int = 32) -> float:
    spec, rng = get_level("native"), random.Random(0)
    image = torch.rand(3, side, side)
    start = time.perf_counter()
    for _ in range(n):
        native_view(image, img_size, spec, rng)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = create_tigas_model().train()
    pixels = step_rate(model, args.batch_size, args.steps, from_cache=False)
    cached = step_rate(model, args.batch_size, args.steps, from_cache=True)
    views = {side: view_rate(side, model.config.img_size) for side in (32, 1024)}
    print(f"training step on pixels             {pixels:7.1f} img/s")
    print(f"training step on cached measurements {cached:7.1f} img/s   ({cached / pixels:.1f}x)")
    for side, rate in views.items():
        print(f"augmented view of a {side:>4} px image     {rate:7.1f} img/s")
    print(f"({model.config.backbone}, {model.config.img_size} px, batch {args.batch_size}, {args.threads} threads)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "pixels_img_per_s": round(pixels, 1), "cached_img_per_s": round(cached, 1),
                       "views_img_per_s": {str(k): round(v, 1) for k, v in views.items()}}, handle, indent=2)


if __name__ == "__main__":
    main()
