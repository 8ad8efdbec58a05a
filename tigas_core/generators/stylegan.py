"""A style-based generator (Karras et al. 2019, 2020) sized for 32 px CIFAR-10 on a CPU.

A mapping network turns z into a style code w; the synthesis network starts from a learnt 4x4
constant and every convolution is modulated by its own copy of w (weights scaled per input
channel, then demodulated to unit output variance: StyleGAN2's form of AdaIN), with per-pixel
noise inputs for stochastic detail and an RGB read-out at every resolution summed up (skip
architecture). Because each layer takes its own w, styles can be mixed: the early (4-8 px)
layers set layout and pose, the late ones colour and texture. Training adds style-mixing
regularisation and lazy path-length regularisation; the critic is the zoo's spectral-norm critic
with DiffAugment plus a minibatch standard-deviation feature.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from tigas_core.generators.base import ZooModel, frozen
from tigas_core.generators.gan import critic_loss, diff_augment, generator_loss


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each row scaled to unit root-mean-square: z's length carries no information."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


class MappingNetwork(nn.Module):
    """z -> w through an MLP; keeps a running mean of w (``w_avg``) for the truncation trick in w."""

    def __init__(self, z_dim: int, w_dim: int, layers: int):
        super().__init__()
        blocks: list[nn.Module] = []
        for i in range(layers):
            linear = nn.Linear(z_dim if i == 0 else w_dim, w_dim)
            # He init keeps w at unit scale; PyTorch's default shrank it ~20x over four layers, so every z
            # gave nearly the same styles and a 4-minute run collapsed to one image.
            nn.init.kaiming_normal_(linear.weight, a=0.2, nonlinearity="leaky_relu")
            nn.init.zeros_(linear.bias)
            blocks += [linear, nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*blocks)
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_norm(z))


class ModulatedConv(nn.Module):
    """3x3 (or 1x1) convolution whose input channels are scaled by a style from w, demodulated so
    each output channel has unit variance again; then noise, bias and a leaky ReLU. Modulating the
    activations instead of the weights gives the same result with one ordinary convolution for the
    whole batch (no grouped convolution per sample)."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, kernel: int = 3, up: bool = False, demodulate: bool = True,
                 noise: bool = True, activate: bool = True):
        super().__init__()
        self.up, self.demodulate, self.activate = up, demodulate, activate
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel) / math.sqrt(c_in * kernel * kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.affine = nn.Linear(w_dim, c_in)
        nn.init.normal_(self.affine.weight, std=1.0 / math.sqrt(w_dim))  # a unit-scale w moves each style by about 1
        nn.init.ones_(self.affine.bias)  # styles centred on 1: the layer starts near a plain convolution
        self.noise_strength = nn.Parameter(torch.zeros(())) if noise else None

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        style = self.affine(w)  # [N, c_in]
        x = x * style[:, :, None, None]
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x, self.weight, padding=self.weight.shape[-1] // 2)
        if self.demodulate:
            scale = torch.rsqrt((self.weight[None] * style[:, None, :, None, None]).pow(2).sum(dim=(2, 3, 4)) + 1e-8)
            x = x * scale[:, :, None, None]
        if self.noise_strength is not None:
            if noise is None:
                noise = torch.randn(len(x), 1, *x.shape[-2:], device=x.device, dtype=x.dtype)
            x = x + self.noise_strength * noise
        x = x + self.bias[None, :, None, None]
        return F.leaky_relu(x, 0.2) * math.sqrt(2) if self.activate else x


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> image [N,3,S,S] in [-1, 1]. Style index i drives convolution i; the
    RGB read-out of a resolution takes the style of its last convolution."""

    def __init__(self, img_size: int, w_dim: int, channels: int, max_channels: int):
        super().__init__()
        levels = int(math.log2(img_size // 4))
        width = [min(max_channels, channels * 2 ** (levels - i)) for i in range(levels + 1)]  # at 4, 8, ..., img_size
        self.const = nn.Parameter(torch.randn(width[0], 4, 4))
        self.convs = nn.ModuleList([ModulatedConv(width[0], width[0], w_dim)])
        self.to_rgb = nn.ModuleList([ModulatedConv(width[0], 3, w_dim, kernel=1, demodulate=False, noise=False, activate=False)])
        for i in range(1, levels + 1):
            self.convs.append(ModulatedConv(width[i - 1], width[i], w_dim, up=True))
            self.convs.append(ModulatedConv(width[i], width[i], w_dim))
            self.to_rgb.append(ModulatedConv(width[i], 3, w_dim, kernel=1, demodulate=False, noise=False, activate=False))
        self.num_ws = len(self.convs)

    def noise_shapes(self) -> list[tuple[int, int, int]]:
        """Shape [1,H,W] of each convolution's noise input."""
        sizes = [4] + [4 * 2 ** (i // 2 + 1) for i in range(self.num_ws - 1)]
        return [(1, s, s) for s in sizes]

    def forward(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        if ws.shape[1] != self.num_ws:
            raise ValueError(f"expected {self.num_ws} styles per image, got {ws.shape[1]}")
        noise = noise or [None] * self.num_ws
        x = self.const[None].expand(len(ws), -1, -1, -1)
        x = self.convs[0](x, ws[:, 0], noise[0])
        image = self.to_rgb[0](x, ws[:, 0])
        for level in range(1, len(self.to_rgb)):
            first = 2 * level - 1
            x = self.convs[first](x, ws[:, first], noise[first])
            x = self.convs[first + 1](x, ws[:, first + 1], noise[first + 1])
            image = F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False) + self.to_rgb[level](x, ws[:, first + 1])
        return torch.tanh(image)


class StyleGenerator(nn.Module):
    """Mapping + synthesis. ``forward(z)`` is one style for every layer; `styles` and `synthesis`
    give the pieces for truncation, mixing and path lengths."""

    def __init__(self, img_size: int, z_dim: int, w_dim: int, mapping_layers: int, channels: int, max_channels: int):
        super().__init__()
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_layers)
        self.synthesis = SynthesisNetwork(img_size, w_dim, channels, max_channels)
        self.register_buffer("pl_mean", torch.zeros(()))  # running mean path length (training only; resumes with the run)

    def styles(self, z: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """ws [N, num_ws, w_dim]: one w per image, pulled towards ``w_avg`` by ``truncation`` (psi)."""
        w = self.mapping(z)
        if truncation != 1.0:
            w = self.mapping.w_avg + truncation * (w - self.mapping.w_avg)
        return w[:, None].expand(-1, self.synthesis.num_ws, -1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, noise: list[torch.Tensor] | None = None) -> torch.Tensor:
        return self.synthesis(self.styles(z), noise)


def mix_styles(first: torch.Tensor, second: torch.Tensor, crossover: int) -> torch.Tensor:
    """ws of ``first`` at layers < ``crossover`` and of ``second`` from there on."""
    mixed = first.clone()
    mixed[:, crossover:] = second[:, crossover:]
    return mixed


class MinibatchStdDev(nn.Module):
    """Appends the mean over channels and positions of the features' standard deviation across
    groups of ``group`` images (Karras et al. 2018): a critic that sees how varied a batch is
    catches a generator that makes the same image for every z."""

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = min(self.group, n)
        while n % group:
            group -= 1
        grouped = x.float().view(group, n // group, c, h, w)
        std = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [n // group]
        feature = std.repeat(group).view(n, 1, 1, 1).expand(n, 1, h, w).to(x.dtype)
        return torch.cat([x, feature], dim=1)


class StyleCritic(nn.Module):
    """Spectral-norm strided convolutions down to 4x4, a minibatch standard-deviation channel, a
    3x3 convolution and a linear score. ``features`` (the flattened last maps) serve feature matching."""

    def __init__(self, img_size: int, ndf: int):
        super().__init__()
        levels = int(math.log2(img_size // 4))
        widths = [ndf * 2**i for i in range(levels)]
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(3, widths[0], 4, 2, 1)), nn.LeakyReLU(0.2)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2)]
        layers += [MinibatchStdDev(), spectral_norm(nn.Conv2d(widths[-1] + 1, widths[-1], 3, 1, 1)), nn.LeakyReLU(0.2), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.head = spectral_norm(nn.Linear(widths[-1] * 16, 1))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x))


class StyleGAN(ZooModel):
    """Style-based GAN: non-saturating loss, DiffAugment, style-mixing regularisation (two ws per
    image with probability ``style_mixing``, crossing over at a random layer), lazy path-length
    regularisation every ``pl_every`` generator steps (``pl_weight``; the Jacobian of the image
    with respect to w should have the same norm in every direction and for every w, Karras et al.
    2020), w's running mean for truncation. The mapping network learns at ``mapping_lr`` times the
    generator's rate, as in the paper. ``--tigas-weight`` adds its term to the generator step."""

    name = "stylegan"
    sampler = "generator"
    latent_dim_key = "z_dim"
    path_spaces = ("z", "w")
    batch_size = 32
    defaults: dict[str, Any] = {
        "z_dim": 128, "w_dim": 128, "mapping_layers": 4, "channels": 32, "max_channels": 128, "ndf": 32,
        "lr": 2e-4, "betas": [0.0, 0.99], "mapping_lr": 0.01, "ttur": False, "ema": 0.0, "grad_clip": 10.0,
        "diffaug": True, "style_mixing": 0.9, "pl_weight": 2.0, "pl_every": 4, "pl_decay": 0.01, "w_avg_beta": 0.995,
    }

    def build(self, for_training: bool) -> None:
        c = self.config
        self.networks["generator"] = StyleGenerator(c["img_size"], c["z_dim"], c["w_dim"], c["mapping_layers"], c["channels"],
                                                    c["max_channels"])
        if not for_training:
            return
        self.networks["critic"] = StyleCritic(c["img_size"], c["ndf"])
        g = self.networks["generator"]
        lr_g, lr_d = self.lrs()
        self.optimizers["generator"] = torch.optim.Adam([
            {"params": g.synthesis.parameters()},
            {"params": g.mapping.parameters(), "lr": lr_g * float(c["mapping_lr"])},
        ], lr=lr_g, betas=tuple(c["betas"]))
        self.optimizers["critic"] = self.adam(self.networks["critic"].parameters(), lr_d, c["betas"])

    @property
    def num_ws(self) -> int:
        return self.networks["generator"].synthesis.num_ws

    def noise_inputs(self, n: int, generator: torch.Generator | None) -> list[torch.Tensor]:
        """Per-pixel noise for every convolution, drawn on the CPU from ``generator`` (same images on every device)."""
        return [self.noise(n, *shape, generator=generator) for shape in self.networks["generator"].synthesis.noise_shapes()]

    def _sample(self, net: nn.Module, n: int, labels: torch.Tensor | None, noise: torch.Generator,
                truncation: float) -> torch.Tensor:
        ws = net.styles(self.latent(n, noise), truncation)
        return net.synthesis(ws, self.noise_inputs(n, noise))

    @torch.no_grad()
    def sample_mixed(self, z_first: torch.Tensor, z_second: torch.Tensor, crossover: int, seed: int = 0,
                     truncation: float = 1.0) -> torch.Tensor:
        """Images [N,3,H,W] in [0,1] taking the styles of ``z_first`` at layers < ``crossover`` (the
        coarse ones: layout, pose) and of ``z_second`` from there on (colour, texture); the noise
        inputs come from ``seed``, the same for every crossover."""
        if not 0 <= crossover <= self.num_ws:
            raise ValueError(f"crossover must be in 0..{self.num_ws}, got {crossover}")
        self.check_sampling(None, truncation)
        net = self.sampling_network()
        was_training = net.training
        net.eval()
        try:
            ws = mix_styles(net.styles(z_first.to(self.device), truncation), net.styles(z_second.to(self.device), truncation),
                            crossover)
            images = net.synthesis(ws, self.noise_inputs(len(ws), torch.Generator().manual_seed(seed)))
        finally:
            net.train(was_training)
        return ((images.clamp(-1, 1) + 1) / 2).float().cpu()

    def path_endpoints(self, n: int, noise: torch.Generator, space: str) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Paths in z, or in w between the ws of two zs; each path keeps its noise inputs."""
        start, end = self.latent(n, noise), self.latent(n, noise)
        context = tuple(self.noise_inputs(n, noise))
        if space == "w":
            mapping = self.sampling_network().mapping
            start, end = mapping(start), mapping(end)
        return start, end, context

    def render_path(self, net: nn.Module, latents: torch.Tensor, context: Any, space: str) -> torch.Tensor:
        w = net.mapping(latents) if space == "z" else latents
        return net.synthesis(w[:, None].expand(-1, self.num_ws, -1), list(context))

    def training_styles(self, n: int) -> torch.Tensor:
        """ws for a training batch, two zs mixed at a random layer for a ``style_mixing`` share of
        the images, so that no layer comes to rely on its neighbours sharing its style."""
        g = self.networks["generator"]
        ws = g.styles(self.latent(n))
        if float(self.config["style_mixing"]) > 0:
            other = g.styles(self.latent(n))
            layer = torch.arange(self.num_ws, device=self.device)[None]
            crossover = torch.randint(1, self.num_ws, (n, 1), device=self.device)
            crossover = torch.where(torch.rand(n, 1, device=self.device) < float(self.config["style_mixing"]), crossover, self.num_ws)
            ws = torch.where((layer < crossover)[..., None], ws, other)
        return ws

    def track_w_avg(self, ws: torch.Tensor) -> None:
        w_avg = self.networks["generator"].mapping.w_avg
        w_avg.lerp_(ws[:, 0].detach().float().mean(dim=0), 1.0 - float(self.config["w_avg_beta"]))

    def critic(self, images: torch.Tensor) -> torch.Tensor:
        seen = diff_augment(images) if self.config["diffaug"] else images
        return self.networks["critic"](seen).float()

    def path_length_penalty(self, n: int) -> tuple[torch.Tensor, float]:
        """(penalty, mean path length) on ``n`` images: the norm of J_w^T y for image-space noise y,
        pulled towards its running mean ``pl_mean``."""
        g = self.networks["generator"]
        ws = g.styles(self.latent(n)).detach().requires_grad_(True)
        images = g.synthesis(ws).float()
        y = torch.randn_like(images) / math.sqrt(images.shape[2] * images.shape[3])
        (grad,) = torch.autograd.grad((images * y).sum(), ws, create_graph=True)
        lengths = grad.float().pow(2).sum(dim=2).mean(dim=1).sqrt()
        g.pl_mean.lerp_(lengths.mean().detach().to(g.pl_mean.dtype), float(self.config["pl_decay"]))
        return (lengths - g.pl_mean).pow(2).mean(), float(lengths.mean().detach())

    def train_step(self, real: torch.Tensor, labels: torch.Tensor, step: int, tigas=None) -> dict[str, float]:
        g, d = self.networks["generator"], self.networks["critic"]
        ws = self.training_styles(len(real))
        self.track_w_avg(ws)
        fake = g.synthesis(ws)
        d_real, d_fake = self.critic(torch.cat([real, fake.detach()])).chunk(2)  # spectral norm: no batch statistics
        d_loss = critic_loss(d_real, d_fake)
        self.optimise("critic", d_loss, d)
        logs = {"loss/d": d_loss.item(), "d/real": d_real.mean().item(), "d/fake": d_fake.mean().item()}

        with frozen(d):
            adv = generator_loss(self.critic(fake))
        g_loss = adv
        every = int(self.config["pl_every"])
        if float(self.config["pl_weight"]) > 0 and every > 0 and step % every == 0:
            penalty, length = self.path_length_penalty(max(2, len(real) // 2))
            g_loss = g_loss + float(self.config["pl_weight"]) * every * penalty  # lazy: scaled by how rarely it runs
            logs["loss/g_path_length"], logs["path_length"] = penalty.item(), length
        if tigas is not None:
            g_loss = self.with_tigas_term(g_loss, tigas, fake, step, logs)
        logs["grad_norm/g"] = self.optimise("generator", g_loss, g)
        logs["loss/g_adv"] = adv.item()
        return logs
