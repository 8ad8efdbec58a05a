"""Perceptual branch: a small multi-scale CNN (gated residual blocks + CBAM) read out at 4 scales."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def conv_bn_act(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.SiLU(inplace=True),
    )


def separable_downsample(in_channels: int, out_channels: int) -> nn.Sequential:
    """Stride-2 depthwise 3x3 + pointwise: a ninth of the cost of a full 3x3 convolution."""
    return nn.Sequential(
        nn.Conv2d(in_channels, in_channels, 3, stride=2, padding=1, groups=in_channels, bias=False),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.SiLU(inplace=True),
    )


class CBAM(nn.Module):
    """Convolutional block attention: reweight channels, then spatial positions."""

    def __init__(self, channels: int, reduction: int = 8, kernel_size: int = 7):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.channel_mlp = nn.Sequential(nn.Linear(channels, hidden), nn.SiLU(inplace=True), nn.Linear(hidden, channels))
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel_logits = self.channel_mlp(x.mean(dim=(2, 3))) + self.channel_mlp(x.amax(dim=(2, 3)))
        x = x * torch.sigmoid(channel_logits)[:, :, None, None]
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.spatial(pooled))


class GatedResidualBlock(nn.Module):
    """Depthwise-separable residual block whose update is gated by a learnt sigmoid mask.

    The gate lets the block pass fine texture (where generator artefacts hide) or suppress it,
    per position and channel, at the cost of one extra pointwise projection.
    """

    def __init__(self, channels: int, expansion: int = 1):
        super().__init__()
        hidden = channels * expansion
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.expand = nn.Conv2d(channels, 2 * hidden, 1)
        self.project = nn.Conv2d(hidden, channels, 1, bias=False)
        self.project_norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.expand(F.silu(self.norm(self.depthwise(x)))).chunk(2, dim=1)
        return x + self.project_norm(self.project(value * torch.sigmoid(gate)))


class PerceptualStage(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, depth: int, downsample: bool):
        super().__init__()
        if not downsample and in_channels != out_channels:
            raise ValueError("a stage without downsampling keeps its width")
        self.entry = separable_downsample(in_channels, out_channels) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*[GatedResidualBlock(out_channels) for _ in range(depth)])
        self.attention = CBAM(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.blocks(self.entry(x)))


class PerceptualBranch(nn.Module):
    """Features at 1/2, 1/4, 1/8 and 1/16 of the input, returned as tokens.

    Tokens: one pooled token per scale (4) plus a 4x4 grid of spatial tokens from the deepest
    stage (16), so fusion can attend over scales and positions.
    """

    grid = 4

    def __init__(self, base_channels: int, feature_dim: int, depths: tuple[int, ...] = (1, 1, 2, 1)):
        super().__init__()
        widths = [base_channels * 2**i for i in range(4)]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = conv_bn_act(3, widths[0], stride=2)
        self.stages = nn.ModuleList(
            PerceptualStage(widths[max(i - 1, 0)], widths[i], depths[i], downsample=i > 0) for i in range(4)
        )
        self.scale_proj = nn.ModuleList(nn.Linear(w, feature_dim) for w in widths)
        self.spatial_proj = nn.Linear(widths[-1], feature_dim)
        self.position = nn.Parameter(torch.zeros(1, self.grid * self.grid, feature_dim))
        nn.init.trunc_normal_(self.position, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem((x - self.mean) / self.std)
        scale_tokens = []
        for stage, proj in zip(self.stages, self.scale_proj):
            h = stage(h)
            scale_tokens.append(proj(h.mean(dim=(2, 3))))
        spatial = F.adaptive_avg_pool2d(h, self.grid).flatten(2).transpose(1, 2)
        spatial_tokens = self.spatial_proj(spatial) + self.position
        return torch.cat([torch.stack(scale_tokens, dim=1), spatial_tokens], dim=1)
