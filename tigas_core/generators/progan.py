"""Progressive growing of GANs (Karras et al. 2018) sized for 32 px CIFAR-10 on a CPU.

Training starts with a 4x4 generator and critic and adds one resolution at a time. Each new
resolution is faded in: for ``phase_steps`` steps the new layers' output is blended with the
upsampled output of the layers before it, the blend weight ``alpha`` rising from 0 to 1, then it
trains alone for another ``phase_steps``. The real images the critic sees are blended the same
way, so both sides change resolution smoothly. The paper's other parts are here too: equalised
learning rate (weights drawn N(0, 1) and scaled by He's constant at run time), pixel-wise
feature normalisation in the generator, a minibatch standard-deviation feature in the critic.
The paper's WGAN-GP objective is an option (``objective`` "wgan-gp"); the default is the
non-saturating loss with an R1 penalty, because on this budget (a few thousand steps of 32) the
WGAN-GP runs collapsed to one image per run while the logistic one kept its samples varied
(docs/zoo.md, "ProGAN").

The generator keeps its training resolution (``level``) and blend (``alpha``) as buffers, so a
checkpoint saved mid-growth samples as it was trained; samples are always ``img_size``, lower
resolutions upsampled to it.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tigas_core.generators.base import ZooModel, frozen
from tigas_core.generators.gan import critic_loss, diff_augment, generator_loss
from tigas_core.generators.stylegan import MinibatchStdDev, pixel_norm


def _equalise(layer: nn.Conv2d | nn.Linear) -> float:
    """Redraw ``layer``'s weights N(0, 1), zero its bias; return the He constant sqrt(2 / fan_in)
    that its forward pass multiplies the weights by."""
    nn.init.normal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return math.sqrt(2.0 / layer.weight[0].numel())


class EqualisedConv(nn.Conv2d):
    """A same-padded convolution with an equalised learning rate: weights N(0, 1) scaled by He's
    constant in every forward pass, so Adam's per-parameter step sizes move every layer at the
    same relative speed whatever its fan-in."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(c_in, c_out, kernel, padding=kernel // 2)
        self.scale = _equalise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.scale, self.bias)


class EqualisedLinear(nn.Linear):
    """A linear layer with an equalised learning rate (see `EqualisedConv`)."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__(d_in, d_out)
        self.scale = _equalise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def _widths(img_size: int, channels: int, max_channels: int) -> list[int]:
    """Feature channels at 4, 8, ..., img_size px: wider at low resolution."""
    levels = int(math.log2(img_size // 4))
    return [min(max_channels, channels * 2 ** (levels - i)) for i in range(levels + 1)]


def growth(step: int, phase_steps: int, levels: int) -> tuple[int, float]:
    """(level, alpha) at training ``step``: 4x4 alone for ``phase_steps`` steps, then per new level
    a fade-in (alpha rising from 0 to 1) and a stable phase of ``phase_steps`` each."""
    phase = step // phase_steps
    if phase >= 2 * levels:
        return levels, 1.0
    level = (phase + 1) // 2
    return level, (step % phase_steps) / phase_steps if phase % 2 else 1.0


def resize_to(images: torch.Tensor, size: int) -> torch.Tensor:
    """Area average down, nearest-neighbour up: the resolution changes of progressive growing."""
    if images.shape[-1] > size:
        return F.avg_pool2d(images, images.shape[-1] // size)
    if images.shape[-1] < size:
        return F.interpolate(images, scale_factor=size // images.shape[-1], mode="nearest")
    return images


def faded(images: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
    """Full-size ``images`` as they look at ``level`` (4 * 2**level px) during its fade-in: the
    level's own resolution blended with the one below by ``alpha``, upsampled back to full size."""
    size = images.shape[-1]
    current = resize_to(images, 4 * 2**level)
    if level > 0 and alpha < 1.0:
        current = alpha * current + (1 - alpha) * resize_to(resize_to(images, 2 * 2**level), 4 * 2**level)
    return resize_to(current, size)


class GrowingGenerator(nn.Module):
    """z -> 4x4 (a linear layer) -> one block of two 3x3 convolutions per doubling, an RGB 1x1
    read-out per resolution; pixel norm after every layer."""

    def __init__(self, img_size: int, z_dim: int, channels: int, max_channels: int):
        super().__init__()
        widths = _widths(img_size, channels, max_channels)
        self.img_size, self.first_width = img_size, widths[0]
        self.first = EqualisedLinear(z_dim, widths[0] * 16)
        self.first_conv = EqualisedConv(widths[0], widths[0], 3)
        self.blocks = nn.ModuleList([nn.ModuleList([EqualisedConv(c_in, c_out, 3), EqualisedConv(c_out, c_out, 3)])
                                     for c_in, c_out in zip(widths[:-1], widths[1:])])
        self.to_rgb = nn.ModuleList([EqualisedConv(width, 3, 1) for width in widths])
        self.register_buffer("level", torch.tensor(len(widths) - 1))
        self.register_buffer("alpha", torch.tensor(1.0))

    @staticmethod
    def _act(x: torch.Tensor) -> torch.Tensor:
        return pixel_norm(F.leaky_relu(x, 0.2))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, level: int | None = None,
                alpha: float | None = None) -> torch.Tensor:
        """Images [N,3,img_size,img_size] at ``level`` and ``alpha`` (default: the buffers')."""
        level = int(self.level) if level is None else level
        alpha = float(self.alpha) if alpha is None else alpha
        x = self._act(self.first(pixel_norm(z)).view(len(z), self.first_width, 4, 4))
        x = self._act(self.first_conv(x))
        previous = x
        for conv_a, conv_b in self.blocks[:level]:
            previous = x
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = self._act(conv_b(self._act(conv_a(x))))
        image = self.to_rgb[level](x)
        if level > 0 and alpha < 1.0:
            image = alpha * image + (1 - alpha) * resize_to(self.to_rgb[level - 1](previous), image.shape[-1])
        return resize_to(image, self.img_size)


class GrowingCritic(nn.Module):
    """The mirror image: an RGB 1x1 read-in per resolution, one block of two 3x3 convolutions and
    a 2x average pool per halving, then a minibatch standard-deviation channel, a 3x3 convolution
    and a linear score at 4x4."""

    def __init__(self, img_size: int, channels: int, max_channels: int):
        super().__init__()
        widths = _widths(img_size, channels, max_channels)
        self.from_rgb = nn.ModuleList([EqualisedConv(3, width, 1) for width in widths])
        self.blocks = nn.ModuleList([nn.ModuleList([EqualisedConv(c_out, c_out, 3), EqualisedConv(c_out, c_in, 3)])
                                     for c_in, c_out in zip(widths[:-1], widths[1:])])
        self.stddev = MinibatchStdDev()
        self.final_conv = EqualisedConv(widths[0] + 1, widths[0], 3)
        self.head = EqualisedLinear(widths[0] * 16, 1)

    def _block(self, index: int, h: torch.Tensor) -> torch.Tensor:
        conv_a, conv_b = self.blocks[index]
        return F.avg_pool2d(F.leaky_relu(conv_b(F.leaky_relu(conv_a(h), 0.2)), 0.2), 2)

    def forward(self, images: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
        """Scores [N, 1] of full-size ``images`` judged at ``level`` (4 * 2**level px) and ``alpha``."""
        h = F.leaky_relu(self.from_rgb[level](resize_to(images, 4 * 2**level)), 0.2)
        if level > 0:
            h = self._block(level - 1, h)
            if alpha < 1.0:
                below = F.leaky_relu(self.from_rgb[level - 1](resize_to(images, 2 * 2**level)), 0.2)
                h = alpha * h + (1 - alpha) * below
        for index in range(level - 2, -1, -1):
            h = self._block(index, h)
        h = F.leaky_relu(self.final_conv(self.stddev(h)), 0.2)
        return self.head(h.flatten(1))


class ProGAN(ZooModel):
    """Progressive growing with a logistic critic and R1 penalty ``r1_weight`` (or WGAN-GP: gradient
    penalty ``gp_weight`` on real/fake interpolates, drift ``drift`` on the real scores), DiffAugment
    on what the critic sees by default, and the growth schedule of `growth` (``phase_steps`` per fade-in and per stable
    phase; 32 px is reached after 5 phases). ``--tigas-weight`` adds its term to the generator step."""

    name = "progan"
    sampler = "generator"
    latent_dim_key = "z_dim"
    path_spaces = ("z",)
    batch_size = 32
    defaults: dict[str, Any] = {
        "z_dim": 128, "channels": 16, "max_channels": 128, "lr": 1e-3, "betas": [0.0, 0.99], "ttur": False, "ema": 0.0,
        "grad_clip": 10.0, "diffaug": True, "phase_steps": 600, "objective": "logistic", "gp_weight": 10.0, "drift": 0.001,
        "r1_weight": 1.0,
    }

    def build(self, for_training: bool) -> None:
        c = self.config
        self.levels = int(math.log2(c["img_size"] // 4))
        self.networks["generator"] = GrowingGenerator(c["img_size"], c["z_dim"], c["channels"], c["max_channels"])
        if not for_training:
            return
        self.networks["critic"] = GrowingCritic(c["img_size"], c["channels"], c["max_channels"])
        lr_g, lr_d = self.lrs()
        self.optimizers["generator"] = self.adam(self.networks["generator"].parameters(), lr_g, c["betas"])
        self.optimizers["critic"] = self.adam(self.networks["critic"].parameters(), lr_d, c["betas"])

    def _sample(self, net: nn.Module, n: int, labels: torch.Tensor | None, noise: torch.Generator,
                truncation: float) -> torch.Tensor:
        return net(self.latent(n, noise, truncation))

    def path_endpoints(self, n: int, noise: torch.Generator, space: str) -> tuple[torch.Tensor, torch.Tensor, Any]:
        return self.latent(n, noise), self.latent(n, noise), None

    def render_path(self, net: nn.Module, latents: torch.Tensor, context: Any, space: str) -> torch.Tensor:
        return net(latents)

    def critic(self, images: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
        seen = diff_augment(images) if self.config["diffaug"] else images
        return self.networks["critic"](seen, level, alpha).float()

    def critic_loss(self, real: torch.Tensor, fake: torch.Tensor, level: int, alpha: float) -> tuple[torch.Tensor, dict[str, float]]:
        """The non-saturating logistic loss with an R1 penalty on the real images (``objective``
        "logistic", StyleGAN's, the default), or the paper's WGAN-GP with drift ("wgan-gp")."""
        d_real, d_fake = self.critic(torch.cat([real, fake]), level, alpha).chunk(2)  # no batch statistics to mix
        if self.config["objective"] == "logistic":
            real = real.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.critic(real, level, alpha).sum(), real, create_graph=True)
            penalty = grad.flatten(1).pow(2).sum(dim=1).mean()
            loss = critic_loss(d_real, d_fake) + 0.5 * float(self.config["r1_weight"]) * penalty
            return loss, {"d/real_minus_fake": (d_real.mean() - d_fake.mean()).item(), "d/r1": penalty.item()}
        mix = torch.rand(len(real), 1, 1, 1, device=real.device)
        between = (mix * real + (1 - mix) * fake).requires_grad_(True)
        # The penalty holds the critic as it scores, augmentation included, to slope 1.
        (grad,) = torch.autograd.grad(self.critic(between, level, alpha).sum(), between, create_graph=True)
        penalty = (grad.flatten(1).norm(dim=1) - 1.0).pow(2).mean()
        loss = d_fake.mean() - d_real.mean() + float(self.config["gp_weight"]) * penalty
        loss = loss + float(self.config["drift"]) * d_real.pow(2).mean()
        return loss, {"d/wasserstein": (d_real.mean() - d_fake.mean()).item(), "d/gp": penalty.item()}

    def generator_adversarial(self, fake: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
        """The generator's side of ``objective``: non-saturating, or minus the critic's mean score."""
        d_fake = self.critic(fake, level, alpha)
        return generator_loss(d_fake) if self.config["objective"] == "logistic" else -d_fake.mean()

    def train_step(self, real: torch.Tensor, labels: torch.Tensor, step: int, tigas=None) -> dict[str, float]:
        g, d = self.networks["generator"], self.networks["critic"]
        level, alpha = growth(step, int(self.config["phase_steps"]), self.levels)
        g.level.fill_(level)
        g.alpha.fill_(alpha)
        real = faded(real, level, alpha)
        fake = g(self.latent(len(real)))
        d_loss, logs = self.critic_loss(real, fake.detach(), level, alpha)
        self.optimise("critic", d_loss, d)
        logs.update({"loss/d": d_loss.item(), "growth/resolution": 4 * 2**level, "growth/alpha": alpha})
        with frozen(d):
            adv = self.generator_adversarial(fake, level, alpha)
        g_loss = adv if tigas is None else self.with_tigas_term(adv, tigas, fake, step, logs)
        logs["grad_norm/g"] = self.optimise("generator", g_loss, g)
        logs["loss/g_adv"] = adv.item()
        return logs
