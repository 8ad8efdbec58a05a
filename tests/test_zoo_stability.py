"""Training-stability options of the zoo GANs: feature matching (a config key), next to spectral
norm and TTUR."""
from __future__ import annotations

import pytest
import torch

from tigas_core.generators import build_model
from tigas_core.generators.base import frozen

TINY_GAN = {"nz": 8, "ngf": 8, "ndf": 8, "layout_prior": 0, "img_size": 16}


def batch(seed: int = 0) -> torch.Tensor:
    return torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_feature_matching_is_zero_for_the_real_batch_and_trains_the_generator_towards_it():
    torch.manual_seed(0)
    model = build_model("dcgan", {**TINY_GAN, "feature_matching": 1.0, "diffaug": False})
    real, g = batch(), model.networks["generator"]
    assert model.feature_matching_loss(real, real).item() < 1e-5  # not 0: spectral norm steps its power iteration per pass
    z = model.latent(8, torch.Generator().manual_seed(1))
    losses = []
    for _ in range(30):  # the critic held fixed: the term alone is a generator objective that falls
        with frozen(*model.critics()):
            loss = model.feature_matching_loss(real, g(z))
        losses.append(loss.item())
        model.optimise("generator", loss, g)
    assert losses[-1] < 0.5 * losses[0]
    assert all(p.grad is None for p in model.networks["discriminator"].parameters())


@pytest.mark.parametrize("name", ["dcgan", "wgan_gp", "cgan"])
def test_feature_matching_joins_the_generator_step_of_each_gan(name):
    torch.manual_seed(0)
    config = {**TINY_GAN, "feature_matching": 1.0, **({"n_critic": 1} if name == "wgan_gp" else {})}
    if name == "cgan":
        config["n_classes"] = 2
    model = build_model(name, config)
    logs = model.train_step(batch(), torch.zeros(8, dtype=torch.long), step=0)
    assert logs["loss/g_feature_matching"] > 0
    plain = build_model(name, {**config, "feature_matching": 0.0}).train_step(batch(), torch.zeros(8, dtype=torch.long), step=0)
    assert "loss/g_feature_matching" not in plain


def test_spectral_norm_and_ttur_are_config_options():
    plain = build_model("dcgan", {**TINY_GAN, "spectral_norm": False})
    normed = build_model("dcgan", {**TINY_GAN, "spectral_norm": True, "ttur": True})
    assert not any("parametrizations" in name for name, _ in plain.networks["discriminator"].named_parameters())
    assert any("parametrizations" in name for name, _ in normed.networks["discriminator"].named_parameters())
    lr_g, lr_d = (normed.optimizers[n].param_groups[0]["lr"] for n in ("generator", "discriminator"))
    assert lr_d == pytest.approx(4 * lr_g)
