"""Post-training calibration and the real-image reference spectrum stored with the weights.

Platt scaling on the validation split's raw logits, with the two classes weighted equally, so a
calibrated score of 0.5 means even odds between "real" and "generated" whatever the class mix of
the validation set. The fit is constrained to a positive slope, so calibration never changes the
order of scores (AUROC is unchanged).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import expit

from tigas_core.model import TIGASModel

MIN_TEMPERATURE = 1e-2


def fit_platt(raw_logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(temperature, bias) minimising class-balanced log loss of sigmoid((z - bias) / temperature).

    labels: 1 = real. Falls back to (1, 0) when only one class is present.
    """
    z = np.asarray(raw_logits, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    n_real, n_fake = y.sum(), (1 - y).sum()
    if n_real == 0 or n_fake == 0:
        return 1.0, 0.0
    weights = np.where(y > 0.5, 0.5 / n_real, 0.5 / n_fake)

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        log_t, bias = params
        t = math.exp(log_t)
        s = (z - bias) / t
        # log(1 + exp(-s)) for reals, log(1 + exp(s)) for fakes, computed stably
        value = np.sum(weights * np.logaddexp(0.0, np.where(y > 0.5, -s, s)))
        p = expit(s)  # no overflow warning for logits in the hundreds
        ds = weights * (p - y)
        return value, np.array([np.sum(ds * -s), np.sum(ds * -1.0 / t)])

    result = minimize(loss, x0=np.array([math.log(max(z.std(), 1e-3)), float(np.median(z))]), jac=True, method="L-BFGS-B",
                      bounds=[(math.log(MIN_TEMPERATURE), math.log(1e3)), (None, None)])
    log_t, bias = result.x
    return float(math.exp(log_t)), float(bias)


def apply_calibration(model: TIGASModel, temperature: float, bias: float, greyscale: tuple[float, float] | None = None) -> None:
    """Store the calibration in the model's config, so it travels in config.json; ``greyscale``:
    (temperature, bias) fitted on greyscale images (`TIGASConfig.greyscale_calibration`)."""
    model.config.calibration_temperature = float(temperature)
    model.config.calibration_bias = float(bias)
    model.config.greyscale_calibration = None if greyscale is None else (float(greyscale[0]), float(greyscale[1]))


@torch.no_grad()
def set_reference_profile(model: TIGASModel, real_batches) -> int:
    """Fill ``model.reference_profile`` with the mean normalised radial profile of real images.

    ``real_batches`` yields [B,3,S,S] tensors of real training images in their evaluation view.
    Returns how many images went into the mean (0 leaves the power-law default in place).
    """
    was_training = model.training
    model.eval()
    device = model.reference_profile.device
    total, count = torch.zeros_like(model.reference_profile), 0
    for batch in real_batches:
        profile = model(batch.to(device))["spectral_profile"]
        total += profile.sum(dim=0)
        count += profile.shape[0]
    if count:
        model.reference_profile.copy_(total / count)
    model.train(was_training)
    return count
