"""A small DDPM (Ho et al. 2020): U-Net noise predictor, cosine schedule (Nichol & Dhariwal 2021)
and a deterministic DDIM sampler (Song et al. 2021) so a few dozen steps give a sample."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tigas_core.generators.base import ZooModel


def cosine_alpha_bar(timesteps: int, s: float = 0.008) -> torch.Tensor:
    """Cumulative signal fraction alpha_bar_t, t = 1..T, with betas capped at 0.999."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0).float()


def min_snr_weight(alpha_bar: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma weight of the epsilon loss: min(SNR, gamma) / SNR, so 1 for noisy inputs
    and gamma / SNR once the signal-to-noise ratio alpha_bar / (1 - alpha_bar) exceeds gamma."""
    snr = alpha_bar / (1 - alpha_bar)
    return snr.clamp(max=gamma) / snr


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, t_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(8, c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time = nn.Linear(t_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(8, c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, t_emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time(t_emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(tokens, tokens, tokens, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
    """Predicts the noise in x_t. One residual block per level, attention at the coarsest level.

    On the way up, the 3x3 convolution runs *before* the nearest-neighbour upsampling and maps to
    the finer level's width: a quarter of the pixels and fewer channels, which roughly halves the
    cost of a training step on a CPU against convolving after upsampling.

    ``patch`` > 1 folds each patch x patch block of pixels into channels first (space-to-depth, as
    the patch embedding of a vision transformer) and unfolds the prediction at the end, so every
    level runs on patch^2 times fewer positions: the trade that lets a CPU take enough steps."""

    def __init__(self, width: int = 32, mults: tuple[int, ...] = (1, 2, 2), dropout: float = 0.0, patch: int = 1,
                 n_classes: int = 0):
        super().__init__()
        t_dim = width * 4
        self.width, self.patch = width, patch
        self.time = nn.Sequential(nn.Linear(width, t_dim), nn.SiLU(), nn.Linear(t_dim, t_dim))
        # Class labels join the time embedding; index n_classes is "no label" (classifier-free guidance).
        self.label_embed = nn.Embedding(n_classes + 1, t_dim) if n_classes else None
        self.stem = nn.Conv2d(3 * patch**2, width, 3, padding=1)
        chans = [width * m for m in mults]
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        c_prev = width
        for i, c in enumerate(chans):
            self.down.append(ResBlock(c_prev, c, t_dim, dropout))
            self.downsample.append(nn.Conv2d(c, c, 3, stride=2, padding=1) if i < len(chans) - 1 else nn.Identity())
            c_prev = c
        self.mid1, self.mid_attn = ResBlock(c_prev, c_prev, t_dim, dropout), SelfAttention(c_prev)
        self.mid2 = ResBlock(c_prev, c_prev, t_dim, dropout)
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for i, c in reversed(list(enumerate(chans))):
            self.up.append(ResBlock(c_prev + c, c, t_dim, dropout))
            c_prev = chans[i - 1] if i > 0 else c
            self.upsample.append(nn.Conv2d(c, c_prev, 3, padding=1) if i > 0 else nn.Identity())
        self.out = nn.Sequential(nn.GroupNorm(8, c_prev), nn.SiLU(), nn.Conv2d(c_prev, 3 * patch**2, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        t_emb = self.time(timestep_embedding(t, self.width))
        if self.label_embed is not None:
            if labels is None:
                raise ValueError("this U-Net is class-conditional: labels are required (n_classes for none)")
            t_emb = t_emb + self.label_embed(labels)
        h = self.stem(F.pixel_unshuffle(x, self.patch) if self.patch > 1 else x)
        skips = []
        for block, down in zip(self.down, self.downsample):
            h = block(h, t_emb)
            skips.append(h)
            h = down(h)
        h = self.mid2(self.mid_attn(self.mid1(h, t_emb)), t_emb)
        for block, up in zip(self.up, self.upsample):
            h = block(torch.cat([h, skips.pop()], dim=1), t_emb)
            if not isinstance(up, nn.Identity):
                h = F.interpolate(up(h), scale_factor=2.0, mode="nearest")
        out = self.out(h)
        return F.pixel_shuffle(out, self.patch) if self.patch > 1 else out


class DDPM(ZooModel):
    """epsilon-prediction DDPM with Min-SNR-gamma loss weights (Hang et al. 2023): the plain
    epsilon loss spends most of its effort on nearly clean inputs; capping each timestep's
    signal-to-noise weight at ``min_snr`` moves it to the noisy steps that decide an image's
    layout, which is what a 20-minute CPU run gets to learn first. ``min_snr`` 0 is the plain loss.

    ``class_conditional`` (default; the class sub-folders of the data are the labels): the U-Net
    also sees the class label, dropped to "no label" for a ``label_dropout`` share of training
    images, so one network predicts both and sampling uses classifier-free guidance (Ho & Salimans
    2022): eps_uncond + ``guidance`` * (eps_cond - eps_uncond). In a 20-minute CPU run this is what
    turns coherent scenes into recognisable ones (see the README's zoo table).

    With a TIGAS term, TIGAS judges the predicted clean image x0_hat, only for timesteps
    t < tigas_max_t * T (the low-noise end, reached late in sampling), where x0_hat is sharp
    enough for a realism score to mean something."""

    name = "ddpm"
    sampler = "unet"
    defaults: dict[str, Any] = {
        "width": 32, "mults": [1, 2, 2], "dropout": 0.0, "timesteps": 1000, "sample_steps": 50,
        "lr": 5e-4, "betas": [0.9, 0.999], "ema": 0.995, "grad_clip": 1.0, "tigas_max_t": 0.25,
        "min_snr": 5.0, "patch": 2, "class_conditional": True, "label_dropout": 0.1, "guidance": 3.0,
    }

    predates_key = {"class_conditional": False}  # DDPMs were unconditional before the option

    def build(self, for_training: bool) -> None:
        c = self.config
        if c["img_size"] % (c["patch"] * 2 ** (len(c["mults"]) - 1)):
            raise ValueError(f"img_size {c['img_size']} is not divisible by patch x 2^(levels - 1)")
        n_classes = int(c["n_classes"]) if self.conditional else 0
        self.networks["unet"] = UNet(c["width"], tuple(c["mults"]), c["dropout"], c["patch"], n_classes)
        self.alpha_bar = cosine_alpha_bar(int(c["timesteps"]))
        if for_training:
            self.optimizers["unet"] = self.adam(self.networks["unet"].parameters(), c["lr"], c["betas"])

    def to(self, device: str | torch.device) -> DDPM:
        super().to(device)
        self.alpha_bar = self.alpha_bar.to(self.device)
        return self

    def train_step(self, real: torch.Tensor, labels: torch.Tensor, step: int, tigas=None) -> dict[str, float]:
        unet = self.networks["unet"]
        n, T = len(real), int(self.config["timesteps"])
        t = torch.randint(0, T, (n,), device=real.device)
        ab = self.alpha_bar[t].view(-1, 1, 1, 1)
        eps = torch.randn_like(real)
        x_t = ab.sqrt() * real + (1 - ab).sqrt() * eps
        cond = None
        if self.conditional:
            dropped = torch.rand(n, device=real.device) < float(self.config["label_dropout"])
            cond = torch.where(dropped, torch.full_like(labels, int(self.config["n_classes"])), labels)
        eps_hat = unet(x_t, t, cond).float()  # a float32 loss under bf16 autocast
        per_image = (eps_hat - eps).pow(2).flatten(1).mean(1)
        if self.config["min_snr"] > 0:
            per_image = per_image * min_snr_weight(ab.flatten(), float(self.config["min_snr"]))
        mse = per_image.mean()
        loss, logs = mse, {"loss/mse": mse.item()}
        late = t < self.config["tigas_max_t"] * T
        if tigas is not None and late.any():
            x0_hat = ((x_t[late] - (1 - ab[late]).sqrt() * eps_hat[late]) / ab[late].sqrt()).clamp(-1, 1)
            loss = self.with_tigas_term(loss, tigas, x0_hat, step, logs)
        logs["grad_norm/unet"] = self.optimise("unet", loss, unet)
        return logs

    def _predict_noise(self, net: nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The U-Net's noise prediction; with labels, guided: both passes in one batch."""
        if labels is None:
            return net(x, t)
        w = float(self.config["guidance"])
        if w == 1.0:
            return net(x, t, labels)
        unlabelled = torch.full_like(labels, int(self.config["n_classes"]))
        eps_cond, eps_uncond = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, unlabelled])).chunk(2)
        return eps_uncond + w * (eps_cond - eps_uncond)

    def _sample(self, net: nn.Module, n: int, labels: torch.Tensor | None, noise: torch.Generator,
                truncation: float) -> torch.Tensor:
        """DDIM with eta = 0 over ``sample_steps`` evenly spaced timesteps."""
        size = int(self.config["img_size"])
        T, steps = int(self.config["timesteps"]), int(self.config["sample_steps"])
        times = torch.linspace(T - 1, 0, steps).round().long().unique_consecutive()
        x = self.noise(n, 3, size, size, generator=noise)
        for i, t in enumerate(times):
            ab = self.alpha_bar[t]
            ab_prev = self.alpha_bar[times[i + 1]] if i + 1 < len(times) else ab.new_ones(())
            eps = self._predict_noise(net, x, t.repeat(n).to(self.device), labels)
            x0 = ((x - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()  # consistent with the clamped x0
            x = ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps
        return x
