"""Statistical branch: moments, entropy and local statistics compared with learnt natural-image prototypes."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from tigas_core.model.encoders import measurement_encoder

EPS = 1e-6


def channel_moments(x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean, variance, skewness and kurtosis: [B,C,H,W] -> [B,C,4]."""
    flat = x.flatten(2)
    mean = flat.mean(dim=2)
    centred = flat - mean.unsqueeze(2)
    var = centred.square().mean(dim=2)
    std = torch.sqrt(var + EPS)
    skew = (centred.pow(3).mean(dim=2)) / std.pow(3)
    kurt = (centred.pow(4).mean(dim=2)) / std.pow(4)
    return torch.stack([mean, torch.log(var + EPS), skew, torch.log(kurt + EPS)], dim=2)


def soft_entropy(x: torch.Tensor, bins: int = 32, bandwidth: float | None = None) -> torch.Tensor:
    """Differentiable histogram entropy per channel (Gaussian soft binning): [B,C,H,W] -> [B,C].

    Hard histograms have zero gradient; soft assignment keeps TIGAS usable as a loss.
    """
    centres = torch.linspace(0.0, 1.0, bins, device=x.device, dtype=x.dtype)
    bandwidth = bandwidth or 1.0 / bins
    sample = F.adaptive_avg_pool2d(x, 32).flatten(2)  # bounded cost at any resolution
    weights = torch.exp(-0.5 * ((sample.unsqueeze(-1) - centres) / bandwidth).square())
    weights = weights / (weights.sum(dim=-1, keepdim=True) + EPS)
    hist = weights.mean(dim=2)
    return -(hist * torch.log(hist + EPS)).sum(dim=-1)


def local_statistics(x: torch.Tensor, block: int = 8) -> torch.Tensor:
    """Statistics of local contrast and of the high-pass residual: [B,C,H,W] -> [B, 4C + 2].

    Natural photos have heavy-tailed residuals and a wide spread of local contrast; smooth or
    over-sharpened generator output shifts both. Local contrast is measured on non-overlapping
    blocks and the residual with a discrete Laplacian, both cheap at any resolution.
    """
    block = max(1, min(block, x.shape[-1] // 4, x.shape[-2] // 4))
    block_mean = F.avg_pool2d(x, block)
    block_var = (F.avg_pool2d(x.square(), block) - block_mean.square()).clamp(min=0)
    log_contrast = torch.log(block_var + EPS).flatten(2)
    centre = x[..., 1:-1, 1:-1]
    residual = (4 * centre - x[..., :-2, 1:-1] - x[..., 2:, 1:-1] - x[..., 1:-1, :-2] - x[..., 1:-1, 2:]).flatten(2)
    res_var = residual.square().mean(dim=2)
    res_kurt = residual.pow(4).mean(dim=2) / (res_var.square() + EPS)
    gray = x.mean(dim=1)
    grad = torch.sqrt((gray[:, 1:, :-1] - gray[:, :-1, :-1]).square() + (gray[:, :-1, 1:] - gray[:, :-1, :-1]).square() + EPS)
    return torch.cat(
        [log_contrast.mean(dim=2), log_contrast.std(dim=2), torch.log(res_var + EPS), torch.log(res_kurt + EPS),
         torch.log(grad.mean(dim=(1, 2)) + EPS).unsqueeze(1), torch.log(grad.std(dim=(1, 2)) + EPS).unsqueeze(1)],
        dim=1,
    )


class StatisticalBranch(nn.Module):
    """Tokens: global moments+entropy, local statistics at scales 1, 1/2, 1/4, and prototype distances."""

    scales = (1, 2, 4)
    global_dim, local_dim = 3 * 5, 3 * 4 + 2

    def __init__(self, feature_dim: int, num_prototypes: int = 16):
        super().__init__()
        global_dim, local_dim = self.global_dim, self.local_dim
        self.global_mlp = measurement_encoder(global_dim, feature_dim)
        self.local_mlps = nn.ModuleList(measurement_encoder(local_dim, feature_dim) for _ in self.scales)
        self.embed = measurement_encoder(global_dim + local_dim * len(self.scales), feature_dim)
        self.prototypes = nn.Parameter(torch.randn(num_prototypes, feature_dim) * 0.5)
        self.distance_proj = nn.Sequential(nn.Linear(num_prototypes, feature_dim), nn.SiLU(inplace=True),
                                           nn.Linear(feature_dim, feature_dim))


    def measure(self, x: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] in [0,1] -> [B, 15 + 14*3]: global moments and entropy, then local statistics
        at each scale (nothing learnt; differentiable; a training cache stores it)."""
        global_stats = torch.cat([channel_moments(x).flatten(1), soft_entropy(x)], dim=1)
        local_stats = [local_statistics(F.avg_pool2d(x, s) if s > 1 else x) for s in self.scales]
        return torch.cat([global_stats, *local_stats], dim=1)

    def forward(self, measured: torch.Tensor) -> torch.Tensor:
        """`measure`'s output -> tokens [B, 5, D]."""
        global_stats, *local_stats = measured.split([self.global_dim] + [self.local_dim] * len(self.scales), dim=1)
        tokens = [self.global_mlp(global_stats)] + [mlp(stats) for mlp, stats in zip(self.local_mlps, local_stats)]
        embedding = self.embed(measured)
        distances = torch.cdist(embedding.unsqueeze(0), self.prototypes.unsqueeze(0)).squeeze(0)
        tokens.append(self.distance_proj(torch.log1p(distances)))
        return torch.stack(tokens, dim=1)
