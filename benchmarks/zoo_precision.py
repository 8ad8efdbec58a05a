"""Training steps per second of every zoo model in bf16 autocast against float32, in one run.

    python benchmarks/zoo_precision.py --threads 1

The same model object alternates fp32 and bf16 rounds (warm-up steps first, each mode measured
twice, the faster round kept), so both see the same machine state. What `--precision auto` gains
on this hardware; prints one line per model and the ratio.
"""
from __future__ import annotations

import argparse
import time

import torch

from tigas_core.generators import MODELS, build_model
from tigas_core.generators.train import has_fast_bf16, training_precision


def steps_per_second(model, real: torch.Tensor, labels: torch.Tensor, precision: str, steps: int) -> float:
    context = training_precision(torch.device("cpu"), precision)
    for step in range(3):  # warm-up: oneDNN picks its kernels
        with context:
            model.train_step(real, labels, step)
    start = time.perf_counter()
    for step in range(steps):
        with context:
            model.train_step(real, labels, step)
    return steps / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per round")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU bf16 native: {has_fast_bf16(torch.device('cpu'))}; {args.threads} thread(s), batch {args.batch_size}, 32 px")
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(args.batch_size, 3, 32, 32, generator=generator) * 2 - 1
    labels = torch.randint(0, 10, (args.batch_size,), generator=generator)
    fit_images = torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8, generator=generator)
    fit_labels = torch.randint(0, 10, (512,), generator=generator)
    for name in sorted(MODELS):
        torch.manual_seed(0)
        config = {"n_classes": 10} if MODELS[name].takes_labels({}) else {}
        model = build_model(name, config)
        model.training_labels(fit_images, fit_labels, 0)  # what a run fits first (the DCGAN's layout prior)
        rates = {p: 0.0 for p in ("fp32", "bf16")}
        for _ in range(2):
            for precision in rates:
                rates[precision] = max(rates[precision], steps_per_second(model, real, labels, precision, args.steps))
        print(f"{name:8s} fp32 {rates['fp32']:6.2f} steps/s   bf16 {rates['bf16']:6.2f} steps/s   "
              f"bf16/fp32 {rates['bf16'] / rates['fp32']:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
