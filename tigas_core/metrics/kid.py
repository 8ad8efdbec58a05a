"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with the polynomial kernel
k(x, y) = (gamma <x, y> + coef)^degree, gamma = 1/dim, averaged over random subsets.

Unlike the Fréchet distance it has an unbiased estimator, so small sets (a few hundred
generated images) give a fair comparison; it works on any features (TIGAS or Inception).
"""
from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> np.ndarray:
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef: float = 1.0) -> float:
    """Unbiased MMD^2: within-set kernel means leave out the diagonal (i = j) terms."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"need at least 2 samples per set, got {m} and {n}")
    k_xx = polynomial_kernel(x, x, degree, gamma, coef)
    k_yy = polynomial_kernel(y, y, degree, gamma, coef)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef)
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(term_xx + term_yy - 2.0 * k_xy.mean())


def kernel_inception_distance(features_a: np.ndarray, features_b: np.ndarray, subset_size: int = 1000,
                              n_subsets: int = 100, seed: int = 0, degree: int = 3, coef: float = 1.0) -> tuple[float, float]:
    """(mean, std) of unbiased MMD^2 over ``n_subsets`` random subsets (without replacement)
    of ``min(subset_size, len(a), len(b))`` samples from each set."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be [N, D] with the same D, got {a.shape} and {b.shape}")
    size = min(subset_size, len(a), len(b))
    rng = np.random.default_rng(seed)
    values = [
        mmd2_unbiased(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)], degree, None, coef)
        for _ in range(n_subsets)
    ]
    return float(np.mean(values)), float(np.std(values))
