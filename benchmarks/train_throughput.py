"""Training throughput on this machine: images/s of one optimisation step and of the data pipeline.

    python benchmarks/train_throughput.py [--sizes 64,96,128] [--base-channels 16] [--feature-dim 128]
                                          [--batch-size 32] [--steps 6] [--threads 2] [--json out.json]

Prints one line per configuration. The model numbers are a full training step (forward, the
training loss, backward, AdamW) of the real TIGAS model on random tensors; the data numbers are
the medium augmentation plus random crop of a 32 px and a 512 px image. Figures come from one run
on a possibly shared machine: compare rows of the same run, not runs on different days.
"""
from __future__ import annotations

import argparse
import json
import random
import time

import torch

from tigas_core.data.augment import augment, get_level, random_view
from tigas_core.model import create_tigas_model
from tigas_core.training.losses import LossWeights, tigas_training_loss


def model_step_rate(img_size: int, base_channels: int, feature_dim: int, batch_size: int, steps: int, channels_last: bool) -> float:
    model = create_tigas_model(img_size=img_size, base_channels=base_channels, feature_dim=feature_dim).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    images = torch.rand(batch_size, 3, img_size, img_size)
    labels = (torch.arange(batch_size) % 2).float()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    timings = []
    for _ in range(steps + 1):  # the first step warms up allocators and is dropped
        start = time.perf_counter()
        loss, _ = tigas_training_loss(model(images), labels, LossWeights())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        timings.append(time.perf_counter() - start)
    return batch_size * steps / sum(timings[1:])


def data_rate(native: int, img_size: int, n: int = 64) -> float:
    spec, rng = get_level("medium"), random.Random(0)
    image = torch.rand(3, native, native)
    start = time.perf_counter()
    for _ in range(n):
        random_view(augment(image, spec, rng), img_size, spec, rng)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,96,128")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--feature-dim", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for channels_last in (False, True):
            rate = model_step_rate(size, args.base_channels, args.feature_dim, args.batch_size, args.steps, channels_last)
            rows.append({"img_size": size, "channels_last": channels_last, "train_img_per_s": round(rate, 1),
                         "data_32px_img_per_s": round(data_rate(32, size), 1), "data_512px_img_per_s": round(data_rate(512, size), 1)})
            print(f"img_size {size:>4}  channels_last={channels_last!s:<5}  train step {rate:7.1f} img/s   "
                  f"data (medium aug) 32px {rows[-1]['data_32px_img_per_s']:7.1f} img/s  512px {rows[-1]['data_512px_img_per_s']:6.1f} img/s")
    print(f"(base_channels {args.base_channels}, feature_dim {args.feature_dim}, batch {args.batch_size}, "
          f"{args.threads} threads, {torch.get_num_threads()} used)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"args": vars(args), "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
