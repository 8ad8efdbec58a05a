"""Training steps per second of the zoo's GANs with one critic pass over real + fake images
against two passes (what a BatchNorm critic needs), in one run.

    python benchmarks/zoo_critic_pass.py --threads 1

A critic without batch statistics (spectral norm: DCGAN, cGAN; layer norm: WGAN-GP) gives the
same outputs either way, so `DCGAN.critic_pair` takes one pass. The same model object alternates
the two modes (warm-up steps first, each mode measured twice, the faster round kept) under the
precision `--precision auto` picks here; prints one line per model and the ratio.
"""
from __future__ import annotations

import contextlib
import functools
from unittest import mock

from zoo_precision import CPU, alternating_rates, report, speed_arguments, timed_model

from tigas_core.generators.gan import DCGAN
from tigas_core.generators.train import training_precision
from tigas_core.precision import resolve_precision


@contextlib.contextmanager
def critic_passes(two: bool, precision: str):
    """Training steps whose critic takes two passes (``two``) or one, in ``precision``."""
    with mock.patch.object(DCGAN, "critic_has_batch_statistics", two), training_precision(CPU, precision):
        yield


def main() -> int:
    args = speed_arguments(__doc__.split("\n")[0])
    precision = resolve_precision(CPU, "auto")
    print(f"{precision}; {args.threads} thread(s), batch {args.batch_size}, 32 px")
    settings = {"two passes": functools.partial(critic_passes, True, precision),
                "one pass": functools.partial(critic_passes, False, precision)}
    for name in ("cgan", "dcgan", "wgan_gp"):
        report(name, alternating_rates(*timed_model(name, args.batch_size), settings, args.steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
