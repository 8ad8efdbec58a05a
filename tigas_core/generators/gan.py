"""DCGAN, WGAN-GP and a class-conditional GAN on one pair of convolutional networks.

The three differ only in the objective (non-saturating vs. Wasserstein with gradient penalty),
the critic's normalisation and whether labels enter the networks, so they share the networks
and the generator step; that is also the one place where the TIGAS term joins the generator
objective.
"""
from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from tigas_core.generators.base import ZooModel, frozen
from tigas_core.generators.clusters import COMPONENTS, ImageClusters, LayoutCodes
from tigas_core.generators.common import MixturePrior, to_unit
from tigas_core.generators.features import FeatureNet, ProjectedCritic, train_feature_net

log = logging.getLogger("tigas.zoo")


def diff_augment(images: torch.Tensor) -> torch.Tensor:
    """Differentiable colour jitter, translation (up to 1/8 of the side) and cutout (a square of
    half the side), drawn per image: DiffAugment (Zhao et al. 2020). Applied to everything the
    critic sees, real and generated, so a critic trained on 10k CIFAR images cannot memorise
    them, and the generator still gets gradients through the augmentation."""
    n, _, h, w = images.shape
    device = images.device

    def per_image(scale: float, offset: float) -> torch.Tensor:
        return torch.rand(n, 1, 1, 1, device=device) * scale + offset

    x = images + per_image(1.0, -0.5)  # brightness
    grey = x.mean(dim=1, keepdim=True)
    x = (x - grey) * per_image(2.0, 0.0) + grey  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * per_image(1.0, 0.5) + mean  # contrast
    # Integer shifts with zero fill: an affine grid of pure translations, sampled at the nearest pixel.
    shift = torch.randint(-(h // 8), h // 8 + 1, (n, 2), device=device).float()
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2], theta[:, 1, 2] = 2 * shift[:, 0] / w, 2 * shift[:, 1] / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    centre_y = torch.randint(0, h, (n, 1, 1), device=device)
    centre_x = torch.randint(0, w, (n, 1, 1), device=device)
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    hole = ((rows - centre_y).abs() < h // 4) & ((cols - centre_x).abs() < w // 4)
    return x * (~hole).unsqueeze(1).to(x.dtype)


def critic_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating GAN loss of a critic with logits ``d_real`` on real and ``d_fake`` on
    generated images ([N, critics]: the losses of several critics add up)."""
    return F.softplus(-d_real).sum(dim=1).mean() + F.softplus(d_fake).sum(dim=1).mean()


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating GAN loss of a generator whose images get the critics' logits ``d_fake`` [N, critics]."""
    return F.softplus(-d_fake).sum(dim=1).mean()


def condition_embedding(n_classes: int, code_dim: int, dim: int, vocab_size: int = 0) -> nn.Module | None:
    """What a condition becomes inside the networks: a class label (``n_classes``) through a
    lookup table, a continuous code (``code_dim``) through a linear map, a prompt's word indices
    (``vocab_size``; 0 pads) through the mean of learnt word embeddings; None without one."""
    if vocab_size:
        return nn.EmbeddingBag(vocab_size, dim, mode="mean", padding_idx=0)
    if n_classes:
        return nn.Embedding(n_classes, dim)
    return nn.Linear(code_dim, dim, bias=False) if code_dim else None


def _levels(img_size: int) -> int:
    """Number of 2x up/down-samplings between 4x4 and img_size."""
    return int(math.log2(img_size // 4))


class Generator(nn.Module):
    """z (+ embedding of a label or layout code) -> 4x4 -> ... -> img_size, transposed convolutions, BatchNorm, tanh."""

    def __init__(self, img_size: int = 32, nz: int = 100, ngf: int = 64, n_classes: int = 0, embed_dim: int = 32,
                 code_dim: int = 0, vocab_size: int = 0):
        super().__init__()
        self.nz, self.n_classes = nz, n_classes
        levels = _levels(img_size)
        widths = [ngf * 2 ** (levels - 1 - i) for i in range(levels)]
        self.embed = condition_embedding(n_classes, code_dim, embed_dim, vocab_size)
        in_dim = nz + (embed_dim if self.embed is not None else 0)
        layers: list[nn.Module] = [nn.ConvTranspose2d(in_dim, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], 3, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: labels are required")
            z = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """Strided convolutions down to 4x4 and a linear score; with classes (or a layout code), a
    projection term (Miyato & Koyama 2018) adds <embed(y), h> so the critic judges image *and* label."""

    def __init__(self, img_size: int = 32, ndf: int = 64, n_classes: int = 0, norm: str = "batch", use_sn: bool = False,
                 code_dim: int = 0, vocab_size: int = 0):
        super().__init__()
        sn = spectral_norm if use_sn else (lambda m: m)
        levels = _levels(img_size)
        widths = [ndf * 2**i for i in range(levels)]
        layers: list[nn.Module] = [sn(nn.Conv2d(3, widths[0], 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers.append(sn(nn.Conv2d(c_in, c_out, 4, 2, 1)))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(c_out))
            elif norm == "layer":
                layers.append(nn.GroupNorm(1, c_out))
            layers.append(nn.LeakyReLU(0.2, True))
        self.features = nn.Sequential(*layers, nn.Flatten())
        feat_dim = widths[-1] * 16
        self.head = sn(nn.Linear(feat_dim, 1))
        embed = condition_embedding(n_classes, code_dim, feat_dim, vocab_size)
        self.embed = sn(embed) if embed is not None else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.head(h)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(dim=1, keepdim=True)
        return out


class DCGAN(ZooModel):
    """Radford et al. 2016 with the non-saturating loss; options: spectral norm in D, TTUR, EMA,
    DiffAugment (on by default: without it the critic memorises a 10k-image set within minutes),
    and, without labels, what structure of the images the networks are conditioned on (clusters.py).

    By default the DCGAN is conditioned on the **colour layout** of the images (``layout_prior``):
    the generator gets, next to z, the 32-d layout code of a real image (its 8x8 mean colours in
    principal components), a ``layout_weight`` term asks its output to keep that layout, and the
    spectral-norm critic judges image and code together (a projection term, as the cGAN does with
    labels). Sampling draws codes from a ``layout_prior``-component Gaussian mixture fitted to the
    training images' codes: a two-stage model that uses no labels and no stored image. In 20
    one-core minutes it came closer to the real images than the previous default,
    self-conditioning on 20 k-means ``clusters`` of the same codes (Liu et al. 2020), at the same
    classifier score (README zoo table: FD-classifier 7.2 and 6.7 against 9.1 and 11.9 over two
    seeds each). ``--clusters 20 --set layout_prior=0`` is that model, ``--set layout_prior=0
    --set spectral_norm=false`` the classic DCGAN.

    ``feature_matching`` > 0 adds that weight times `feature_matching_loss` to the generator's
    objective (off by default). Spectral norm (``spectral_norm``) and TTUR (``ttur``) are the
    other stability options.

    ``feature_critic`` adds a second critic that judges through a network trained on the class
    folders and then frozen (features.py; off by default: it uses the labels in training).

    EMA is off by default: in 20-minute CPU runs the generator still moves fast, and averaging
    its weights blurs the samples (cGAN, 20 one-core minutes: a CIFAR-10 classifier names the
    intended class of 65% of the last generator's samples, of 37% with EMA 0.999). Turn it on
    (``--ema 0.999``) for long runs."""

    name = "dcgan"
    sampler = "generator"
    latent_dim_key = "nz"
    path_spaces = ("z",)
    defaults: dict[str, Any] = {
        "nz": 100, "ngf": 32, "ndf": 32, "lr": 2e-4, "betas": [0.5, 0.999], "spectral_norm": True,
        "ttur": False, "ema": 0.0, "grad_clip": 10.0, "diffaug": True, "clusters": 0,
        "class_conditional": False, "layout_prior": 20, "layout_weight": 1.0, "feature_critic": False,
        "feature_epochs": 10, "feature_matching": 0.0,
    }
    critic_norm = "batch"
    # Batches of 32, not 64: in 20 one-core minutes (bf16, seed 0) 20,472 steps instead of 13,212
    # and FD-classifier 5.12 instead of 6.05, a modest gain against the spread of runs (three of
    # each: 5.06-5.86 against 5.32-6.21). Batches of 16 made more steps (36,787) but came no
    # closer (5.02) and scored lower (README zoo section).
    batch_size = 32
    # GANs were unconditioned before `clusters`, not conditioned on layouts before `layout_prior`
    # (the layout weight, unused then, reads as today's default so such runs resume with it), and
    # only the cGAN took labels before `class_conditional`.
    predates_key = {"clusters": 0, "layout_prior": 0, "layout_weight": 1.0, "class_conditional": False,
                    "feature_critic": False, "feature_epochs": 10, "feature_matching": 0.0}

    @property
    def clustered(self) -> bool:
        """Self-conditioned on ``clusters`` k-means clusters of the training images (see clusters.py)."""
        return int(self.config["clusters"]) > 0

    @property
    def layout_conditioned(self) -> bool:
        """Conditioned on the colour-layout code of each image, drawn from a ``layout_prior``-component
        Gaussian mixture fitted to the training images' codes when sampling."""
        return int(self.config["layout_prior"]) > 0

    @property
    def projected(self) -> bool:
        """A second critic judges the images through a frozen feature network (features.py)."""
        return bool(self.config["feature_critic"])

    def _n_classes(self) -> int:
        if self.conditional:
            return int(self.config["n_classes"])
        return int(self.config["clusters"])

    def build(self, for_training: bool) -> None:
        c = self.config
        if self.conditional and self.clustered:
            raise ValueError(f"{self.name}: `clusters` stand in for class labels; a class-conditional model has its labels")
        if self.layout_conditioned and (self.conditional or self.clustered):
            raise ValueError(f"{self.name}: `layout_prior` conditions on layouts; it excludes labels and clusters "
                             "(add --set layout_prior=0 to use those)")
        if self.projected and self.name == "wgan_gp":
            raise ValueError(f"{self.name}: feature_critic is for the non-saturating GANs (dcgan, cgan); "
                             "a second critic has no gradient penalty here")
        if self.clustered:
            self.networks["clusters"] = ImageClusters(int(c["clusters"]))
            self.sampling_extras = ("clusters",)
        if self.layout_conditioned:
            self.networks["layout"] = LayoutCodes()
            self.networks["layout_prior"] = MixturePrior(COMPONENTS, int(c["layout_prior"]))
            self.sampling_extras = ("layout_prior",)
        self.networks["generator"] = Generator(c["img_size"], c["nz"], c["ngf"], **self.condition_size())
        if not for_training:
            return
        norm = "none" if c["spectral_norm"] else self.critic_norm
        self.networks["discriminator"] = Discriminator(c["img_size"], c["ndf"], norm=norm, use_sn=c["spectral_norm"],
                                                       **self.condition_size())
        critic_parameters = list(self.networks["discriminator"].parameters())
        if self.projected:
            self.networks["features"] = FeatureNet()
            self.networks["feature_critic"] = ProjectedCritic(c["img_size"])
            critic_parameters += list(self.networks["feature_critic"].parameters())
        lr_g, lr_d = self.lrs()
        self.optimizers["generator"] = self.adam(self.networks["generator"].parameters(), lr_g, c["betas"])
        self.optimizers["discriminator"] = self.adam(critic_parameters, lr_d, c["betas"])

    def condition_size(self) -> dict[str, int]:
        """What the networks are conditioned on, as `condition_embedding` takes it."""
        return {"n_classes": self._n_classes(), "code_dim": COMPONENTS if self.layout_conditioned else 0}

    def _labels(self, labels: torch.Tensor) -> torch.Tensor | None:
        return labels if self.conditional or self.clustered or self.layout_conditioned else None

    def training_labels(self, images: torch.Tensor, labels: torch.Tensor, seed: int) -> torch.Tensor:
        if self.projected and not bool(self.networks["features"].trained):  # a resumed run brings it trained
            train_feature_net(self.networks["features"], images, labels, int(self.config["feature_epochs"]), seed)
        if self.layout_conditioned:
            prior = self.networks["layout_prior"]
            if not prior.fitted:  # a fresh run; a resumed one brings its layout prior in the checkpoint
                prior.fit(torch.from_numpy(self.networks["layout"].fit_codes(images, seed)), seed)
            log.info("%s: conditioned on the colour layout of each image (%d-d codes; %d-component prior)",
                     self.name, COMPONENTS, len(prior.weights))
            return labels
        if not self.clustered:
            return labels
        clusters = self.networks["clusters"]
        if not clusters.fitted:  # a fresh run; a resumed one brings its clusters in the checkpoint
            clusters.fit(images, seed)
        assigned = clusters.assign(images)
        agreement, folders = "", len(labels.unique())
        if folders > 1:  # class folders: say how object-like the clusters are
            from sklearn.metrics import normalized_mutual_info_score

            agreement = f"; NMI with the {folders} class folders {normalized_mutual_info_score(labels, assigned):.2f}"
        log.info("%s: self-conditioned on %d clusters of the training images (largest %.1f%%%s)",
                 self.name, len(clusters.weights), 100 * float(clusters.weights.max()), agreement)
        return assigned

    def _sample(self, net: nn.Module, n: int, labels: torch.Tensor | None, noise: torch.Generator,
                truncation: float) -> torch.Tensor:
        z = self.latent(n, noise, truncation)
        if self.clustered:
            labels = self.networks["clusters"].draw(n, noise).to(self.device)
        if self.layout_conditioned:
            labels = self.networks["layout_prior"].sample(self.noise(n, COMPONENTS, generator=noise), noise, 1.0)
        return net(z, self._labels(labels))

    def path_endpoints(self, n: int, noise: torch.Generator, space: str) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Paths in z; the condition (class label, cluster or layout code), drawn as `_sample`
        draws it, is the same at both ends."""
        start, end = self.latent(n, noise), self.latent(n, noise)
        condition = torch.arange(n, device=self.device) % max(1, int(self.config["n_classes"])) if self.conditional else None
        if self.clustered:
            condition = self.networks["clusters"].draw(n, noise).to(self.device)
        if self.layout_conditioned:
            condition = self.networks["layout_prior"].sample(self.noise(n, COMPONENTS, generator=noise), noise, 1.0)
        return start, end, condition

    def render_path(self, net: nn.Module, latents: torch.Tensor, context: Any, space: str) -> torch.Tensor:
        return net(latents, self._labels(context))

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` as the critic sees them: through DiffAugment when ``diffaug`` is on."""
        return diff_augment(images) if self.config["diffaug"] else images

    def discriminate(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The discriminator's output on ``images`` as given, float32 (also under bf16 autocast)."""
        return self.networks["discriminator"](images, labels).float()

    def critic(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The critics' outputs [N, critics] on (augmented) images, float32 (also under bf16
        autocast): the discriminator's, then the feature critic's per scale when there is one."""
        seen = self.augment(images)
        out = self.discriminate(seen, labels)
        if self.projected:
            maps = self.networks["features"].feature_maps(seen)
            out = torch.cat([out, self.networks["feature_critic"](maps).float()], dim=1)
        return out

    def critics(self) -> list[nn.Module]:
        """The trained critic networks (frozen during the generator's step)."""
        return [self.networks[name] for name in ("discriminator", "feature_critic") if name in self.networks]

    @property
    def critic_has_batch_statistics(self) -> bool:
        """A BatchNorm critic (the classic DCGAN) normalises by the statistics of its batch, so real
        and fake images must go through it in separate batches."""
        return not self.config["spectral_norm"] and self.critic_norm == "batch"

    def critic_pair(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None,
                    critic=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The critic's float32 outputs on real and on fake images (``critic``: images, labels ->
        output, by default `critic`). Without batch statistics one pass over both gives the same
        outputs as two and costs less: one larger convolution instead of two (1.04-1.13x the
        training steps per second at batch 32 on one CPU core, benchmarks/zoo_critic_pass.py)."""
        critic = critic or self.critic
        if self.critic_has_batch_statistics:
            return critic(real, labels), critic(fake, labels)
        both_labels = None if labels is None else torch.cat([labels, labels])
        d_real, d_fake = critic(torch.cat([real, fake]), both_labels).chunk(2)
        return d_real, d_fake

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor,
                           labels: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, float]]:
        d_real, d_fake = self.critic_pair(real, fake, labels)
        return critic_loss(d_real, d_fake), {"d/real": d_real.mean().item(), "d/fake": d_fake.mean().item()}

    def generator_adversarial(self, fake: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return generator_loss(self.critic(fake, labels))

    def generator_turn(self, step: int) -> bool:
        return True

    def train_step(self, real: torch.Tensor, labels: torch.Tensor, step: int, tigas=None) -> dict[str, float]:
        g = self.networks["generator"]
        cond = self.networks["layout"].codes(to_unit(real)) if self.layout_conditioned else self._labels(labels)
        z = self.latent(len(real))
        g_turn = self.generator_turn(step)
        with torch.set_grad_enabled(g_turn):  # no generator graph on critic-only steps
            fake = g(z, cond)

        d_loss, logs = self.discriminator_loss(real, fake.detach(), cond)
        self.optimise("discriminator", d_loss, *self.critics())
        logs["loss/d"] = d_loss.item()

        if g_turn:
            with frozen(*self.critics()):  # the generator step must leave no gradients in the critics
                adv = self.generator_adversarial(fake, cond)
                g_loss = adv
                if self.config["feature_matching"] > 0:
                    matching = self.feature_matching_loss(real, fake)
                    g_loss = g_loss + self.config["feature_matching"] * matching
                    logs["loss/g_feature_matching"] = matching.item()
            if self.layout_conditioned and self.config["layout_weight"] > 0:  # the fake must keep the layout it was given
                layout_error = (self.networks["layout"].codes(to_unit(fake)) - cond).pow(2).mean()
                g_loss = g_loss + self.config["layout_weight"] * layout_error
                logs["loss/g_layout"] = layout_error.item()
            if tigas is not None:
                g_loss = self.with_tigas_term(g_loss, tigas, fake, self.generator_step_index(step), logs)
            logs["grad_norm/g"] = self.optimise("generator", g_loss, g)
            logs["loss/g_adv"] = adv.item()
        return logs

    def generator_step_index(self, step: int) -> int:
        return step

    def feature_matching_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Squared distance between the mean discriminator features (its last layer before the
        score) of the real and the generated batch, both as the critic sees them (Salimans et al.
        2016): the generator is asked to match the statistics the critic looks at, not to win
        against its latest decision, which damps the chase between the two."""
        features = self.networks["discriminator"].features
        with torch.no_grad():
            target = features(self.augment(real)).float().mean(dim=0)
        return (features(self.augment(fake)).float().mean(dim=0) - target).pow(2).mean()


class WGANGP(DCGAN):
    """Gulrajani et al. 2017: Wasserstein critic (no BatchNorm) with a gradient penalty on
    real/fake interpolates; the generator moves once every ``n_critic`` batches.

    By default the critic takes one step per generator step but on TTUR's faster clock (Heusel
    et al. 2017; critic lr 4e-4, generator 1e-4) instead of the paper's 5 critic steps at 1e-4,
    which in 20 one-core minutes leave the generator about 1,250 steps (classifier score 1.58 in
    the README's benchmark, an older build of its judge). Against ``n_critic`` 2 at 1e-4 (3,350
    generator steps) it scored 1.93 against 1.78 and came closer to the real images in the
    classifier's features (FD 11.4 against 13.4). The paper's recipe is
    ``--set n_critic=5 --set lr=1e-4 --set ttur=false``.

    Not self-conditioned by default: with 20 clusters a 20-minute run (``n_critic`` 2) scored 1.79
    against 1.78 and moved further from the real images (FD 17.2 against 13.4)."""

    name = "wgan_gp"
    defaults: dict[str, Any] = {
        **DCGAN.defaults, "spectral_norm": False, "layout_prior": 0, "lr": 2e-4, "betas": [0.0, 0.9], "gp_weight": 10.0,
        "n_critic": 1, "ttur": True,
    }  # the gradient penalty, not spectral norm, keeps this critic Lipschitz
    critic_norm = "layer"
    batch_size = 64  # 32 made 2.4x the steps (19,642) in 20 one-core minutes but came no closer: 1.86 / 8.20 against 1.84 / 8.36

    def discriminator_loss(self, real, fake, labels):
        d = self.networks["discriminator"]
        real, fake = self.augment(real), self.augment(fake)  # the penalty holds between the images D sees
        d_real, d_fake = self.critic_pair(real, fake, labels, self.discriminate)
        alpha = torch.rand(len(real), 1, 1, 1, device=real.device)
        mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        (grad,) = torch.autograd.grad(d(mixed, labels).sum(), mixed, create_graph=True)
        penalty = ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
        loss = d_fake.mean() - d_real.mean() + self.config["gp_weight"] * penalty
        return loss, {"d/wasserstein": (d_real.mean() - d_fake.mean()).item(), "d/gp": penalty.item()}

    def generator_adversarial(self, fake, labels):
        return -self.critic(fake, labels).mean()

    def generator_turn(self, step: int) -> bool:
        return step % int(self.config["n_critic"]) == int(self.config["n_critic"]) - 1

    def generator_step_index(self, step: int) -> int:
        return step // int(self.config["n_critic"])


class ConditionalGAN(DCGAN):
    """Class-conditional DCGAN: label embedding into G, projection discriminator with spectral
    norm (stable without BatchNorm statistics mixing classes)."""

    name = "cgan"
    defaults: dict[str, Any] = {**DCGAN.defaults, "layout_prior": 0, "class_conditional": True}
    predates_key = {**DCGAN.predates_key, "class_conditional": True}
    # with 32 (27,359 steps in 20 one-core minutes, bf16) its requested class was named less often: 51%, the bundled run 63%
    batch_size = 64
