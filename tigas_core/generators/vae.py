"""Convolutional VAE: its blurry, low-frequency-heavy samples are a different failure mode from
GAN checkerboards, which is exactly why the TIGAS trainer wants them as fakes."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tigas_core.generators.base import ZooModel
from tigas_core.generators.common import MixturePrior, from_uint8
from tigas_core.generators.gan import Discriminator, Generator


class Encoder(nn.Module):
    """Image -> (mu, logvar); the DCGAN critic's trunk with two linear heads."""

    def __init__(self, img_size: int, width: int, latent: int):
        super().__init__()
        self.trunk = Discriminator(img_size, width, norm="batch")
        feat_dim = self.trunk.head.in_features
        self.trunk.head = nn.Identity()
        self.mu = nn.Linear(feat_dim, latent)
        self.logvar = nn.Linear(feat_dim, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk.features(x)
        return self.mu(h), self.logvar(h).clamp(-10, 10)


class VAE(ZooModel):
    """Gaussian decoder with fixed pixel std ``sigma`` (in [-1,1] units): loss per image =
    ||x - x_hat||^2 / (2 sigma^2) + beta * KL. A small sigma trades blur for prior mismatch,
    and the mixture prior fitted at each checkpoint (``prior_components``; 0 keeps N(0, I)) is
    what samples are drawn from, so the mismatch costs less."""

    name = "vae"
    sampler = "decoder"
    latent_dim_key = "latent"
    defaults: dict[str, Any] = {
        "latent": 128, "width": 32, "lr": 1e-3, "betas": [0.9, 0.999], "sigma": 0.2, "beta": 1.0,
        "ema": 0.0, "grad_clip": 10.0, "prior_components": 10,
    }
    sampling_extras = ("prior",)
    PRIOR_FIT_IMAGES = 4000  # the fit of 10 components in 128-d then takes ~8 s of one CPU thread per checkpoint
    predates_key = {"prior_components": 0}  # VAEs sampled from N(0, I) before the mixture prior

    def build(self, for_training: bool) -> None:
        c = self.config
        self.networks["decoder"] = Generator(c["img_size"], c["latent"], c["width"])
        self.networks["prior"] = MixturePrior(c["latent"], int(c["prior_components"]))
        if not for_training:
            return
        self.networks["encoder"] = Encoder(c["img_size"], c["width"], c["latent"])
        params = list(self.networks["encoder"].parameters()) + list(self.networks["decoder"].parameters())
        self.optimizers["vae"] = self.adam(params, c["lr"], c["betas"])

    def _sample(self, net: nn.Module, n: int, labels: torch.Tensor | None, noise: torch.Generator,
                truncation: float) -> torch.Tensor:
        return net(self.networks["prior"].sample(self.latent(n, noise), noise, truncation))

    @torch.no_grad()
    def prepare_sampling(self, images: torch.Tensor, seed: int) -> None:
        """Fit the mixture prior to the encoder means of ``images`` (uint8 [N,3,H,W]), so that
        every checkpoint samples from codes that match its encoder."""
        if self.config["prior_components"] <= 0:
            return
        encoder = self.networks["encoder"]
        was_training = encoder.training
        encoder.eval()
        subset = images[:: max(1, len(images) // self.PRIOR_FIT_IMAGES)]  # bounds the cost of a checkpoint
        means = torch.cat([encoder(from_uint8(chunk.to(self.device)))[0] for chunk in subset.split(500)])
        encoder.train(was_training)
        self.networks["prior"].fit(means, seed)

    def train_step(self, real: torch.Tensor, labels: torch.Tensor, step: int, tigas=None) -> dict[str, float]:
        enc, dec = self.networks["encoder"], self.networks["decoder"]
        mu, logvar = (out.float() for out in enc(real))  # float32 losses under bf16 autocast
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        recon = dec(z).float()
        n = len(real)
        rec_loss = ((recon - real) ** 2).flatten(1).sum(1).mean() / (2 * self.config["sigma"] ** 2)
        kl = (0.5 * (mu**2 + logvar.exp() - 1.0 - logvar)).sum(1).mean()
        loss = rec_loss + self.config["beta"] * kl
        logs = {"loss/recon": rec_loss.item(), "loss/kl": kl.item()}
        if tigas is not None:
            # Judge what `generate` emits: decodes of prior samples (the mixture once it is fitted), not reconstructions.
            codes = self.networks["prior"].sample(self.latent(n), None, 1.0)
            loss = self.with_tigas_term(loss, tigas, dec(codes), step, logs)
        self.optimizers["vae"].zero_grad(set_to_none=True)
        loss.backward()
        logs["grad_norm/vae"] = self.clip(dec) + self.clip(enc)
        self.optimizers["vae"].step()
        logs["loss/total"] = loss.item()
        return logs
