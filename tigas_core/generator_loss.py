"""TIGAS as a training loss: a frozen TIGAS network whose gradient pushes a generator's outputs
towards "looks real".

    tigas_loss = TIGASLoss(weight=0.1)             # bundled TIGAS weights
    loss = adversarial + tigas_loss(fake_01)        # fake_01: [B,3,H,W] in [0,1], requires grad

TIGAS itself never trains here: its parameters are frozen and it stays in eval mode, so the
gradient only reaches the generator.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from tigas_core.api import TIGAS
    from tigas_core.model import TIGASModel


class TIGASLoss:
    """``weight * (1 - mean TIGAS score)`` of a batch, differentiable w.r.t. the images.

    Images are [B,3,H,W] in [0, 1]. The first batch scored is checked for that convention (a
    [-1, 1] or 0-255 batch raises a TIGASInputError that says how to map it); later batches are
    clamped to [0, 1], so a long run never stops on a few stray pixels.

    Args:
        model: a ``TIGAS`` scorer, a bare ``TIGASModel`` (wrapped in TIGAS) or None for the
            default ``TIGAS()`` (bundled weights).
        weight: multiplier of the term (a ``TIGASScheduler`` can ramp it up).
        every_n_steps: compute the term only when ``step % every_n_steps == 0`` and return 0
            otherwise; TIGAS's forward/backward is the expensive part of a small generator's step.
        multi_scale: average the score over the batch and copies of it resampled to ``scales``
            of its resolution and back (coarse views), so the generator has to look real both
            in fine detail and in its coarse structure.
    """

    def __init__(self, model: TIGAS | TIGASModel | None = None, weight: float = 0.1, every_n_steps: int = 1,
                 multi_scale: bool = False, scales: Sequence[float] = (1.0, 0.5, 0.25)):
        from tigas_core.api import TIGAS

        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        if weight < 0:
            raise ValueError(f"weight must be >= 0 (a negative weight would reward looking generated), got {weight}")
        if model is None:
            model = TIGAS()
        elif isinstance(model, torch.nn.Module):
            model = TIGAS(model=model)
        self.scorer: TIGAS = model
        self.scorer.model.eval().requires_grad_(False)
        self.weight = float(weight)
        self.every_n_steps = int(every_n_steps)
        self.multi_scale = multi_scale
        self.scales = tuple(scales)
        self.last_score: float | None = None
        self._calls = 0
        self._range_checked = False

    def score(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image TIGAS score [B] (mean over scales when multi-scale), keeping the graph."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"TIGASLoss expects images [B,3,H,W] in [0,1], got shape {tuple(images.shape)}")
        if self._range_checked:
            # The first batch was checked for the [0, 1] convention (a [-1, 1] or 0-255 generator is
            # refused there); later strays are clamped, so a long run never dies on one pixel.
            images = images.clamp(0.0, 1.0)
        if self.multi_scale:
            size = images.shape[-2:]
            copies = [
                images if s == 1.0 else F.interpolate(
                    F.interpolate(images, scale_factor=s, mode="bilinear", align_corners=False, antialias=s < 1.0),
                    size=size, mode="bilinear", align_corners=False)
                for s in self.scales
            ]
            scores = torch.stack([self.scorer(copy).reshape(-1) for copy in copies]).mean(dim=0)
        else:
            scores = self.scorer(images).reshape(-1)
        self._range_checked = True
        return scores

    def __call__(self, images: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """The loss term (a 0-d tensor). ``step`` defaults to an internal call counter.
        ``last_score`` holds the batch's mean score, or None when this step was skipped."""
        step = self._calls if step is None else step
        self._calls += 1
        if step % self.every_n_steps != 0 or self.weight == 0.0:
            self.last_score = None
            return images.new_zeros(())
        score = self.score(images).mean()
        self.last_score = float(score.detach())
        return self.weight * (1.0 - score)


class TIGASScheduler:
    """Warm-up of the TIGAS weight from 0 to ``target_weight`` over ``warmup_steps``.

    Starting a GAN with a strong TIGAS term lets the generator chase TIGAS before it has learned
    the data; a ramp lets the adversarial signal lead. ``mode``: "linear" or "cosine"
    (half-cosine, gentle at both ends).
    """

    def __init__(self, loss: TIGASLoss | None, target_weight: float, warmup_steps: int, mode: str = "linear"):
        if mode not in ("linear", "cosine"):
            raise ValueError(f"mode must be 'linear' or 'cosine', got {mode!r}")
        self.loss = loss
        self.target_weight = float(target_weight)
        self.warmup_steps = int(warmup_steps)
        self.mode = mode
        self.current_step = 0
        if loss is not None:
            loss.weight = self.weight_at(0)

    def weight_at(self, step: int) -> float:
        if self.warmup_steps <= 0 or step >= self.warmup_steps:
            return self.target_weight
        frac = max(0, step) / self.warmup_steps
        if self.mode == "linear":
            return self.target_weight * frac
        return self.target_weight * 0.5 * (1.0 - math.cos(math.pi * frac))

    def step(self, step: int | None = None) -> float:
        """Set the loss weight for ``step`` (default: one past the last) and return it."""
        self.current_step = self.current_step + 1 if step is None else step
        weight = self.weight_at(self.current_step)
        if self.loss is not None:
            self.loss.weight = weight
        return weight
