"""Perceptual Path Length (Karras et al. 2019): how abruptly a generator's images change along a
short step of a path between two latent codes. Lower means a smoother latent space.

For each pair of endpoints a point ``t ~ U(0, 1)`` on the path between them is drawn; the images
at ``t`` and ``t + epsilon`` are compared with a perceptual distance (here the frozen ImageNet
EfficientNet-Lite0 features, `tigas_core.metrics.perceptual`, since LPIPS's VGG weights cannot be
downloaded), divided by ``epsilon ** 2``; the mean is taken after dropping values below the 1st and
above the 99th percentile, which a few degenerate pairs would otherwise dominate. Paths in z (a
Gaussian prior) are spherical (slerp), in a style model's w linear (lerp), as in the paper.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from tigas_core.generators.common import to_unit
from tigas_core.metrics.perceptual import LiteFeatures, perceptual_distance

if TYPE_CHECKING:
    from tigas_core.generators.base import ZooModel

Interpolation = Literal["slerp", "lerp"]
PPL_IMAGE_SIZE = 64  # 32 px samples are read at twice their side: the deepest Lite0 tap then has 2x2 positions


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Straight line from ``a`` to ``b`` [N, ...] at ``t`` [N]."""
    return a + (b - a) * t.view(-1, *([1] * (a.ndim - 1)))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Great-circle path between the directions of ``a`` and ``b`` [N, D] at ``t`` [N], the path
    in z of the PPL paper: it stays on the shell where a high-dimensional Gaussian's mass lies,
    where a straight line would cut through its hollow centre. The length moves linearly from
    ``|a|`` to ``|b|`` (the paper's generators normalise z first; the zoo's GANs read it as it is)."""
    t = t.view(-1, 1)
    norm_a, norm_b = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    a, b = a / norm_a, b / norm_b
    cos = (a * b).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    angle = torch.acos(cos) * t
    towards = b - cos * a  # b's component orthogonal to a
    towards = towards / towards.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (a * angle.cos() + towards * angle.sin()) * (norm_a + (norm_b - norm_a) * t)


INTERPOLATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {"slerp": slerp, "lerp": lerp}


@dataclasses.dataclass
class PPLResult:
    """``ppl``: the trimmed mean; ``distances``: every pair's ``d / epsilon**2`` before trimming."""

    ppl: float
    kept: int
    epsilon: float
    interpolation: str
    distances: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"ppl": self.ppl, "pairs": len(self.distances), "kept": self.kept, "epsilon": self.epsilon,
                "interpolation": self.interpolation, "median": float(np.median(self.distances))}


def _take(context: Any, index: slice) -> Any:
    """Rows ``index`` of a context: a tensor, a tuple/list of tensors, or None."""
    if context is None:
        return None
    if isinstance(context, (tuple, list)):
        return type(context)(_take(part, index) for part in context)
    return context[index]


def trimmed_mean(values: np.ndarray, low: float = 1.0, high: float = 99.0) -> tuple[float, int]:
    """Mean of the values between the ``low``-th and ``high``-th percentiles (inclusive), and how many those are."""
    lo, hi = np.percentile(values, [low, high])
    kept = values[(values >= lo) & (values <= hi)]
    return float(kept.mean()), int(len(kept))


@torch.no_grad()
def perceptual_path_length(render: Callable[[torch.Tensor, Any], torch.Tensor], start: torch.Tensor, end: torch.Tensor,
                           context: Any = None, interpolation: Interpolation = "slerp", epsilon: float = 1e-4,
                           features: LiteFeatures | None = None, batch_size: int = 64, seed: int = 0) -> PPLResult:
    """PPL of ``render`` (latents [B, ...], its rows of ``context`` -> images [B,3,H,W] in [0, 1])
    over the paths from ``start`` to ``end`` [N, ...]. ``context`` (a tensor, a tuple of tensors,
    or None; rows per pair) is held fixed along a path: labels, noise inputs, a mixture component."""
    if start.shape != end.shape or len(start) < 2:
        raise ValueError(f"start and end must be the same shape with at least 2 pairs, got {tuple(start.shape)}, {tuple(end.shape)}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {interpolation!r}; choose one of {', '.join(INTERPOLATIONS)}")
    path = INTERPOLATIONS[interpolation]
    features = features if features is not None else LiteFeatures(size=PPL_IMAGE_SIZE)
    device = features.normalise.mean.device
    t = torch.rand(len(start), generator=torch.Generator().manual_seed(seed)) * (1.0 - epsilon)  # t + epsilon stays on the path
    distances = []
    for first in range(0, len(start), batch_size):
        rows = slice(first, first + batch_size)
        a, b, here = start[rows], end[rows], t[rows].to(start.device)
        ctx = _take(context, rows)
        near = render(path(a, b, here), ctx)
        far = render(path(a, b, here + epsilon), ctx)
        d = perceptual_distance(features(near.to(device)), features(far.to(device)))
        distances.append((d.double() / epsilon**2).cpu())
    values = torch.cat(distances).numpy()
    ppl, kept = trimmed_mean(values)
    return PPLResult(ppl, kept, epsilon, interpolation, values)


def zoo_path_length(model: ZooModel, n: int = 1000, space: str = "z", epsilon: float = 1e-4, seed: int = 0,
                    batch_size: int = 64, features: LiteFeatures | None = None) -> PPLResult:
    """PPL of a zoo model's sampling network over ``n`` paths in its latent ``space`` ("z", or "w"
    for a style-based model); the model's condition (label, layout code, mixture component, noise
    inputs) is drawn once per path and held fixed along it (`ZooModel.path_endpoints`)."""
    if space not in model.path_spaces:
        spaces = ", ".join(model.path_spaces) or "none: it has no latent code to walk"
        raise ValueError(f"{model.name}: no PPL in space {space!r}; its spaces: {spaces}")
    net = model.sampling_network()
    was_training = net.training
    net.eval()
    try:
        start, end, context = model.path_endpoints(n, torch.Generator().manual_seed(seed), space)

        def render(latents: torch.Tensor, ctx: Any) -> torch.Tensor:
            return to_unit(model.render_path(net, latents, ctx, space).float())

        interpolation: Interpolation = "slerp" if space == "z" else "lerp"
        return perceptual_path_length(render, start, end, context, interpolation, epsilon, features, batch_size, seed)
    finally:
        net.train(was_training)
