"""What a Generate view (app tab, notebook) asks of the zoo: samples of a bundled or trained
generator, each with its TIGAS score, best first. The view then only lays the results out."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from tigas_core.generators import load_for_sampling


@dataclasses.dataclass
class ScoredSample:
    """One sample: ``image`` HxWx3 uint8, its TIGAS ``score``, the class ``label`` asked for (or None)."""

    image: np.ndarray
    score: float
    label: int | None


def bundled_generator(name: str) -> Path:
    """The stem of bundled zoo checkpoint ``name`` (``assets/zoo/<name>``); a ValueError lists the choices."""
    from tigas_core.demo import bundled_generators

    stems = {stem.name: stem for stem in bundled_generators()}
    if name not in stems:
        raise ValueError(f"no bundled zoo model {name!r}; choose one of {', '.join(sorted(stems))}")
    return stems[name]


def sample_grid_with_scores(model: str, n: int = 16, seed: int = 0, truncation: float = 1.0, label: int | None = None,
                            scorer=None, device: str = "auto", prompt: str | None = None) -> list[ScoredSample]:
    """``n`` samples of ``model`` (a bundled zoo name such as "cgan", or a checkpoint path) from
    ``seed``, scored by ``scorer`` (a `tigas_core.TIGAS`; the bundled weights when None), sorted by
    score, highest first. ``truncation`` < 1 trades variety for fidelity; ``label`` picks the class
    of a class-conditional model (default: every class in turn), ``prompt`` what a text-conditioned
    one draws."""
    from tigas_core import TIGAS
    from tigas_core.api import resolve_device
    from tigas_core.generators.sampling import prompted_sampler
    from tigas_core.io import to_uint8_image

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    checkpoint = model if Path(model).with_suffix(".json").exists() or Path(model).is_dir() else bundled_generator(model)
    generator = load_for_sampling(str(checkpoint)).to(resolve_device(device))
    generator.check_sampling(None if label is None else torch.tensor([label]), truncation)
    images = prompted_sampler(generator, prompt, label)(0, n, seed, truncation)
    labels = [None] * n
    if generator.conditional and prompt is None:
        labels = [int(label)] * n if label is not None else [i % int(generator.config["n_classes"]) for i in range(n)]
    scorer = scorer if scorer is not None else TIGAS(device=device)
    with torch.no_grad():
        scores = scorer(images).flatten().tolist()
    samples = [ScoredSample(to_uint8_image(image), score, labels[i]) for i, (image, score) in enumerate(zip(images, scores))]
    return sorted(samples, key=lambda sample: sample.score, reverse=True)
