"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) over ImageNet classes.

Needs Inception-v3 weights in the local torch cache (see ``frechet.load_inception``); it rewards
confident, diverse ImageNet-class predictions, so on 32 px CIFAR-like images it is a rough signal.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def inception_score_from_probs(probs: np.ndarray, splits: int = 10, eps: float = 1e-12,
                               seed: int | None = 0) -> tuple[float, float]:
    """(mean, std) of the score over ``splits`` equal parts of the class-probability rows, the
    rows shuffled first (seeded). p(y) is taken per part, so parts of consecutive rows of a
    class-sorted set (a folder of class sub-folders, read in order) would each hold a few classes
    and cap the score near that number: 10 confident classes sorted into 5 parts score 2, not 10.
    ``seed=None`` splits the rows in the order given."""
    probs = np.asarray(probs, np.float64)
    if probs.ndim != 2 or len(probs) < splits:
        raise ValueError(f"need a [N, classes] array with N >= splits ({splits}), got {probs.shape}")
    if seed is not None:
        probs = probs[np.random.default_rng(seed).permutation(len(probs))]
    scores = []
    for part in np.array_split(probs, splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part + eps) - np.log(marginal + eps))).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score_for_files(paths: Sequence[Path], splits: int = 10, batch_size: int = 32, device: str = "cpu",
                              model=None) -> tuple[float, float]:
    """Inception Score of image files; raises InceptionUnavailableError without cached weights.
    ``model``: an Inception-v3 already loaded by ``frechet.load_inception`` to reuse."""
    from tigas_core.metrics.frechet import InceptionFeatures

    probs, _errors = InceptionFeatures("probs", device, model).features_for_files(list(paths), batch_size)
    return inception_score_from_probs(probs, min(splits, len(probs)))
