"""Training steps per second of the zoo's GANs with one critic pass over real + fake images
against two passes (what a BatchNorm critic needs), in one run.

    python benchmarks/zoo_critic_pass.py --threads 1

A critic without batch statistics (spectral norm: DCGAN, cGAN; layer norm: WGAN-GP) gives the
same outputs either way, so `DCGAN.critic_pair` takes one pass. The same model object alternates
the two modes (warm-up steps first, each mode measured twice, the faster round kept) under the
precision `--precision auto` picks here; prints one line per model and the ratio.
"""
from __future__ import annotations

import argparse
from unittest import mock

import torch

from tigas_core.generators import build_model
from tigas_core.generators.gan import DCGAN
from tigas_core.generators.train import resolve_precision

from zoo_precision import steps_per_second


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per round")
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    precision = resolve_precision(torch.device("cpu"), "auto")
    print(f"{precision}; {args.threads} thread(s), batch {args.batch_size}, 32 px")
    generator = torch.Generator().manual_seed(0)
    real = torch.rand(args.batch_size, 3, 32, 32, generator=generator) * 2 - 1
    labels = torch.randint(0, 10, (args.batch_size,), generator=generator)
    fit_images = torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8, generator=generator)
    for name in ("cgan", "dcgan", "wgan_gp"):
        torch.manual_seed(0)
        model = build_model(name, {"n_classes": 10} if name == "cgan" else {})
        model.training_labels(fit_images, labels.new_zeros(len(fit_images)), 0)  # the DCGAN's layout prior
        rates = {"two passes": 0.0, "one pass": 0.0}
        for _ in range(2):
            for mode in rates:
                with mock.patch.object(DCGAN, "critic_has_batch_statistics", mode == "two passes"):
                    rates[mode] = max(rates[mode], steps_per_second(model, real, labels, precision, args.steps))
        print(f"{name:8s} two passes {rates['two passes']:6.2f} steps/s   one pass {rates['one pass']:6.2f} steps/s   "
              f"one/two {rates['one pass'] / rates['two passes']:.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
