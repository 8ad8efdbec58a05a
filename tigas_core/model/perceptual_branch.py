"""Perceptual branch: an ImageNet-pretrained trunk read out at several scales, each tap through a
gated residual block + CBAM adapter."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from tigas_core.model.backbone import InputNormalisation, create_trunk, inference_copy

ADAPTER_MIN_REDUCTION = 8  # adapters work at 1/8 of the view's resolution or coarser

_trunk_dtype: ContextVar[torch.dtype | None] = ContextVar("tigas_trunk_dtype", default=None)


@contextlib.contextmanager
def trunk_precision(precision: str) -> Iterator[None]:
    """Within the block, a frozen trunk computes in ``precision`` ("fp32" or "bf16", as
    `tigas_core.precision.resolve_precision` gives it); its maps, the statistics read from them,
    the other branches and the heads stay float32.

    Why only the trunk: it is about 60 % of a forward pass, and bfloat16 convolutions run about twice
    as fast on CPUs with AVX512-BF16 or AMX (and on GPUs). Its maps move by about 5 % (relative
    norm), scores by about 0.004 on average; the read-out sums 8,800 statistics, which bfloat16's
    8-bit mantissa would round more. A context rather than a model setting, so scorers sharing a
    model can differ."""
    dtypes = {"fp32": None, "bf16": torch.bfloat16}
    if precision not in dtypes:
        raise ValueError(f"trunk precision {precision!r}: expected fp32 or bf16 (resolve 'auto' first)")
    token = _trunk_dtype.set(dtypes[precision])
    try:
        yield
    finally:
        _trunk_dtype.reset(token)


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


class ScaleAdapter(nn.Module):
    """One trunk tap -> ``width`` channels (``stride`` x ``stride`` patches), a gated residual block, CBAM.

    The trunk's ImageNet features describe content; the adapter learns which of them (and where)
    carry a generator's traces, with a few thousand parameters per scale. Fine taps are read in
    patches so that no adapter works above 1/8 of the view's resolution: at 1/4 the adapter cost
    more than the rest of the learnt layers together.
    """

    def __init__(self, in_channels: int, width: int, stride: int = 1):
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(in_channels, width, stride, stride=stride, bias=False), nn.BatchNorm2d(width),
                                    nn.SiLU(inplace=True))
        self.block = GatedResidualBlock(width)
        self.attention = CBAM(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.block(self.reduce(x)))


def mean_std_pool(x: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> [B,2C]: where a feature fires on average, and how unevenly (texture statistics)."""
    return torch.cat([x.mean(dim=(2, 3)), torch.sqrt(x.var(dim=(2, 3), unbiased=False) + 1e-6)], dim=1)


def standardised_positions(x: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> [B,C,H*W], each channel at zero mean and unit variance over positions."""
    centred = x - x.mean(dim=(2, 3), keepdim=True)
    return (centred / torch.sqrt(centred.pow(2).mean(dim=(2, 3), keepdim=True) + 1e-6)).flatten(2)


def channel_correlations(x: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> [B, C(C-1)/2]: the correlation over positions of every pair of channels (the Gram
    matrix of the standardised map, texture as style transfer reads it), upper triangle."""
    z = standardised_positions(x)
    gram = z @ z.transpose(1, 2) / z.shape[-1]
    upper = torch.triu_indices(x.shape[1], x.shape[1], offset=1, device=x.device)
    return gram[:, upper[0], upper[1]]


def tap_statistics(taps: list[torch.Tensor], correlated: tuple[int, ...] = ()) -> torch.Tensor:
    """Trunk maps (one per tap) -> [B, features]: `mean_std_pool` of every tap, then the
    `channel_correlations` of the taps at positions ``correlated``, side by side.
    What the score's read-out reads (`TIGASModel.readout`): a frozen ImageNet trunk's texture
    statistics already carry most of a generator's traces to generators never seen (issue #26);
    the channel correlations of the finer taps carry more of them (benchmarks/results/readout_study.md)."""
    taps = [tap.float() for tap in taps]
    return torch.cat([mean_std_pool(tap) for tap in taps] + [channel_correlations(taps[i]) for i in correlated], dim=1)


def tap_statistics_size(channels: list[int], correlated: tuple[int, ...] = ()) -> int:
    """How many numbers `tap_statistics` gives for taps of these channel counts."""
    return 2 * sum(channels) + sum(channels[i] * (channels[i] - 1) // 2 for i in correlated)


class PerceptualBranch(nn.Module):
    """Tokens from an ImageNet-pretrained trunk (`tigas_core.model.backbone`) at several scales.

    Tokens: one mean/std-pooled token per tap plus a 4x4 grid of spatial tokens from the deepest
    tap, so fusion can attend over scales and positions. With ``train_trunk=False`` the trunk is
    frozen (weights and batch-norm statistics): with a few hundred generated images, fine-tuning it
    learns them by heart. Inputs still get gradients, so TIGAS stays a loss.
    """

    grid = 4

    def __init__(self, backbone: str, taps: tuple[int, ...], width: int, feature_dim: int, train_trunk: bool = False):
        super().__init__()
        self.trunk = create_trunk(backbone, taps)
        self.train_trunk = train_trunk
        self.trunk.requires_grad_(train_trunk)
        self.normalise = InputNormalisation(backbone)
        channels = self.trunk.feature_info.channels()
        strides = [max(1, ADAPTER_MIN_REDUCTION // r) for r in self.trunk.feature_info.reduction()]
        self.adapters = nn.ModuleList(ScaleAdapter(c, width, s) for c, s in zip(channels, strides))
        self.scale_proj = nn.ModuleList(nn.Linear(2 * width, feature_dim) for _ in channels)
        self.spatial_proj = nn.Linear(width, feature_dim)
        self.position = nn.Parameter(torch.zeros(1, self.grid * self.grid, feature_dim))
        nn.init.trunc_normal_(self.position, std=0.02)

    def train(self, mode: bool = True) -> PerceptualBranch:
        super().train(mode)
        if not self.train_trunk:
            self.trunk.eval()  # a frozen trunk keeps its ImageNet batch-norm statistics
        return self

    def trunk_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The trunk's feature maps of [B,3,H,W] in [0,1], one per tap (what a training cache stores).
        A frozen trunk runs as its `inference_copy`: the same function, faster (still
        differentiable in x, so TIGAS stays a loss), in bfloat16 within `trunk_precision`."""
        trunk = self.trunk if self.train_trunk else self._inference_trunk()
        dtype = None if self.train_trunk else _trunk_dtype.get()
        if dtype is None:
            return trunk(self.normalise(x))
        with torch.autocast(x.device.type, dtype=dtype):
            maps = trunk(self.normalise(x))
        return [m.float() for m in maps]

    def _inference_trunk(self) -> nn.Module:
        """`inference_copy` of the trunk, made again when the trunk's weights, device, dtype or memory
        layout changed (it is not a submodule: weights files hold the trunk as trained)."""
        weight = self.trunk.conv_stem.weight
        key = (weight.device, weight.dtype, weight.is_contiguous(memory_format=torch.channels_last), weight._version)
        if getattr(self, "_inference", (None, None))[0] != key:
            with torch.inference_mode(False):  # made during scoring, used later with autograd (saliency, loss)
                object.__setattr__(self, "_inference", (key, inference_copy(self.trunk)))
        return self._inference[1]

    def forward(self, taps: list[torch.Tensor]) -> torch.Tensor:
        """`trunk_features`' maps -> tokens [B, n_taps + 16, D]."""
        maps = [adapter(tap.to(self.position.dtype)) for adapter, tap in zip(self.adapters, taps)]
        scale_tokens = torch.stack([proj(mean_std_pool(m)) for proj, m in zip(self.scale_proj, maps)], dim=1)
        spatial = F.adaptive_avg_pool2d(maps[-1], self.grid).flatten(2).transpose(1, 2)
        return torch.cat([scale_tokens, self.spatial_proj(spatial) + self.position], dim=1)
