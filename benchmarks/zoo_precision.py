"""Training steps per second of every zoo model in bf16 autocast against float32, in one run.

    python benchmarks/zoo_precision.py --threads 1

The same model object alternates fp32 and bf16 rounds (warm-up steps first, each mode measured
twice, the faster round kept), so both see the same machine state. What `--precision auto` gains
on this hardware; prints one line per model and the ratio. The timing pieces below also serve
benchmarks/zoo_critic_pass.py.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import time
from collections.abc import Callable

import torch

from tigas_core.generators import MODELS, ZooModel, build_model
from tigas_core.generators.train import training_precision
from tigas_core.precision import has_fast_bf16

CPU = torch.device("cpu")
Setting = Callable[[], contextlib.AbstractContextManager]  # what a round of timed steps runs under


def speed_arguments(description: str) -> argparse.Namespace:
    """Parse --threads, --steps and --batch-size, and give torch that many threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per round")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def timed_model(name: str, batch_size: int) -> tuple[ZooModel, torch.Tensor, torch.Tensor]:
    """A seeded fresh ``name`` model, fitted as a run fits it first (the DCGAN's layout prior),
    and a synthetic 32 px batch (images in [-1, 1], labels)."""
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(batch_size, 3, 32, 32, generator=generator) * 2 - 1
    labels = torch.randint(0, 10, (batch_size,), generator=generator)
    fit_images = torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8, generator=generator)
    fit_labels = torch.randint(0, 10, (512,), generator=generator)
    torch.manual_seed(0)
    model = build_model(name, {"n_classes": 10} if MODELS[name].takes_labels({}) else {})
    model.training_labels(fit_images, fit_labels, 0)
    return model, real, labels


def steps_per_second(model: ZooModel, real: torch.Tensor, labels: torch.Tensor, setting: Setting, steps: int) -> float:
    with setting():
        for step in range(3):  # warm-up: oneDNN picks its kernels
            model.train_step(real, labels, step)
        start = time.perf_counter()
        for step in range(steps):
            model.train_step(real, labels, step)
        return steps / (time.perf_counter() - start)


def alternating_rates(model: ZooModel, real: torch.Tensor, labels: torch.Tensor, settings: dict[str, Setting],
                      steps: int) -> dict[str, float]:
    """Steps per second under each setting: rounds alternate between them, each is measured twice
    and its faster round kept, so all see the same machine state."""
    rates = dict.fromkeys(settings, 0.0)
    for _ in range(2):
        for name, setting in settings.items():
            rates[name] = max(rates[name], steps_per_second(model, real, labels, setting, steps))
    return rates


def report(model_name: str, rates: dict[str, float]) -> None:
    """One line: each setting's rate and the ratio of the second setting to the first."""
    (first, base), (second, rate) = rates.items()
    print(f"{model_name:8s} " + "   ".join(f"{k} {v:6.2f} steps/s" for k, v in rates.items()) +
          f"   {second}/{first} {rate / base:.2f}x", flush=True)


def main() -> int:
    args = speed_arguments(__doc__.split("\n")[0])
    print(f"CPU bf16 native: {has_fast_bf16(CPU)}; {args.threads} thread(s), batch {args.batch_size}, 32 px")
    settings = {p: functools.partial(training_precision, CPU, p) for p in ("fp32", "bf16")}
    for name in sorted(MODELS):
        report(name, alternating_rates(*timed_model(name, args.batch_size), settings, args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
