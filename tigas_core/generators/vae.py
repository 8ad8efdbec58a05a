"""Convolutional VAE: its blurry, low-frequency-heavy samples are a different failure mode from
GAN checkerboards, which is exactly why the TIGAS trainer wants them as fakes."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tigas_core.generators.base import ZooModel, frozen
from tigas_core.generators.common import MixturePrior, from_uint8
from tigas_core.generators.gan import Discriminator, Generator, critic_loss, diff_augment, generator_loss


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
    what samples are drawn from, so the mismatch costs less.

    ``adversarial`` > 0 adds a learned similarity (VAE-GAN, Larsen et al. 2016): a spectral-norm
    critic with DiffAugment tells real images from reconstructions and from decodes of prior
    codes, and the decoder is also trained to fool it. Its weight adapts every step so that the
    adversarial gradient at the decoder's last layer is ``adversarial`` times the reconstruction
    gradient there (Esser et al. 2021), which spares tuning it against the pixel loss's scale; it
    ramps up linearly over the first ``adversarial_warmup`` steps, while the decoder learns to
    reconstruct at all. On by default (0.5): in 20 one-core minutes (bf16) it made 7,742 steps
    against 18,140 for the plain fp32 VAE bundled before it (19,359 for a plain bf16 one), yet
    FD-classifier fell from 17.05 to 9.57 and the classifier score
    rose from 1.66 to 1.77 (weight 1.0: 9.64 / 1.74); ``--set adversarial=0`` is the plain VAE."""

    name = "vae"
    sampler = "decoder"
    latent_dim_key = "latent"
    defaults: dict[str, Any] = {
        "latent": 128, "width": 32, "lr": 1e-3, "betas": [0.9, 0.999], "sigma": 0.2, "beta": 1.0,
        "ema": 0.0, "grad_clip": 10.0, "prior_components": 10,
        "adversarial": 0.5, "adversarial_warmup": 1000, "ndf": 32, "critic_lr": 2e-4, "critic_betas": [0.5, 0.999],
    }
    sampling_extras = ("prior",)
    path_spaces = ("z",)
    PRIOR_FIT_IMAGES = 4000  # the fit of 10 components in 128-d then takes ~8 s of one CPU thread per checkpoint
    # VAEs sampled from N(0, I) before the mixture prior and had no critic before `adversarial`.
    predates_key = {"prior_components": 0, "adversarial": 0.0}

    def build(self, for_training: bool) -> None:
        c = self.config
        self.networks["decoder"] = Generator(c["img_size"], c["latent"], c["width"])
        self.networks["prior"] = MixturePrior(c["latent"], int(c["prior_components"]))
        if not for_training:
            return
        self.networks["encoder"] = Encoder(c["img_size"], c["width"], c["latent"])
        params = list(self.networks["encoder"].parameters()) + list(self.networks["decoder"].parameters())
        self.optimizers["vae"] = self.adam(params, c["lr"], c["betas"])
        if self.adversarial:
            self.networks["critic"] = Discriminator(c["img_size"], c["ndf"], norm="none", use_sn=True)
            self.optimizers["critic"] = self.adam(self.networks["critic"].parameters(), c["critic_lr"], c["critic_betas"])

    @property
    def adversarial(self) -> bool:
        """Trained with a critic as a learned similarity next to the pixel loss (VAE-GAN)."""
        return float(self.config["adversarial"]) > 0

    def _sample(self, net: nn.Module, n: int, labels: torch.Tensor | None, noise: torch.Generator,
                truncation: float) -> torch.Tensor:
        return net(self.networks["prior"].sample(self.latent(n, noise), noise, truncation))

    def path_endpoints(self, n: int, noise: torch.Generator, space: str) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Paths in the prior's standard-normal noise within one mixture component each (drawn by
        weight): the component's affine map makes that a path between two of its codes."""
        start, end = self.latent(n, noise), self.latent(n, noise)
        return start, end, self.networks["prior"].draw(n, noise).to(self.device)

    def render_path(self, net: nn.Module, latents: torch.Tensor, context: Any, space: str) -> torch.Tensor:
        return net(self.networks["prior"].codes(latents, context))

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

    def critic(self, images: torch.Tensor) -> torch.Tensor:
        """The critic's float32 logits on DiffAugmented ``images``."""
        return self.networks["critic"](diff_augment(images)).float()

    def critic_step(self, real: torch.Tensor, fakes: torch.Tensor) -> dict[str, float]:
        """One non-saturating step of the critic: ``real`` against ``fakes`` (reconstructions and
        prior decodes, detached), in one pass since a spectral-norm critic has no batch statistics."""
        d_real, d_fake = self.critic(torch.cat([real, fakes])).split([len(real), len(fakes)])
        loss = critic_loss(d_real, d_fake)
        self.optimise("critic", loss, self.networks["critic"])
        return {"loss/d": loss.item(), "d/real": d_real.mean().item(), "d/fake": d_fake.mean().item()}

    def adversarial_weight(self, rec_loss: torch.Tensor, adv_loss: torch.Tensor, step: int) -> torch.Tensor:
        """``adversarial`` (ramped up over the warm-up) times the ratio of the reconstruction to the
        adversarial gradient norm at the decoder's last layer, detached: at 1 the two terms pull that
        layer equally hard."""
        last = self.networks["decoder"].net[-2].weight
        (g_rec,) = torch.autograd.grad(rec_loss, last, retain_graph=True)
        (g_adv,) = torch.autograd.grad(adv_loss, last, retain_graph=True)
        ratio = (g_rec.norm() / (g_adv.norm() + 1e-4)).clamp(max=1e4)
        ramp = min(1.0, (step + 1) / max(1, int(self.config["adversarial_warmup"])))
        return ramp * float(self.config["adversarial"]) * ratio.detach()

    def train_step(self, real: torch.Tensor, labels: torch.Tensor, step: int, tigas=None) -> dict[str, float]:
        enc, dec = self.networks["encoder"], self.networks["decoder"]
        mu, logvar = (out.float() for out in enc(real))  # float32 losses under bf16 autocast
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        n = len(real)
        # Decodes of prior codes are what `generate` emits: the mixture once it is fitted. The TIGAS
        # term judges a batch of them, the critic half a batch of them beside half a batch of
        # reconstructions (a whole batch of each made the step 1.7x as long: 0.53 s against 0.32 s on one
        # CPU core); one decoder pass serves all.
        n_prior = n if tigas is not None else (n // 2 if self.adversarial else 0)
        codes = self.networks["prior"].sample(self.latent(n_prior), None, 1.0)
        recon, prior_fake = dec(torch.cat([z, codes])).float().split([n, n_prior])
        rec_loss = ((recon - real) ** 2).flatten(1).sum(1).mean() / (2 * self.config["sigma"] ** 2)
        kl = (0.5 * (mu**2 + logvar.exp() - 1.0 - logvar)).sum(1).mean()
        loss = rec_loss + self.config["beta"] * kl
        logs = {"loss/recon": rec_loss.item(), "loss/kl": kl.item()}
        if self.adversarial:
            fakes = torch.cat([recon[: n - n // 2], prior_fake[: n // 2]])
            logs.update(self.critic_step(real, fakes.detach()))
            with frozen(self.networks["critic"]):  # the VAE step must leave no gradients in the critic
                adv = generator_loss(self.critic(fakes))
            weight = self.adversarial_weight(rec_loss, adv, step)
            loss = loss + weight * adv
            logs["loss/g_adv"], logs["adv_weight"] = adv.item(), weight.item()
        if tigas is not None:
            loss = self.with_tigas_term(loss, tigas, prior_fake, step, logs)
        logs["grad_norm/vae"] = self.optimise("vae", loss, dec, enc)
        logs["loss/total"] = loss.item()
        return logs
