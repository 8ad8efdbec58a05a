"""Progressive growing: the schedule grows one resolution at a time with a fade-in, a new level at
alpha 0 is exactly the level below (generator and critic), a few steps on a fixed batch lower
both losses, and a checkpoint saved mid-growth samples at the resolution it was trained at."""
from __future__ import annotations

import pytest
import torch

from tigas_core.generators import build_model, load_for_sampling
from tigas_core.generators.base import frozen
from tigas_core.generators.progan import faded, growth
from tigas_core.generators.train import ZooTrainOptions, train_zoo_model

TINY = {"z_dim": 8, "channels": 8, "max_channels": 16, "img_size": 16}


def test_growth_schedule_fades_each_level_in_then_holds_it():
    schedule = [growth(step, 10, levels=2) for step in (0, 9, 10, 15, 20, 29, 30, 35, 40, 1000)]
    assert schedule == [(0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0), (1, 1.0), (2, 0.0), (2, 0.5), (2, 1.0), (2, 1.0)]


def test_a_new_level_at_alpha_zero_is_the_level_below():
    torch.manual_seed(0)
    model = build_model("progan", {**TINY, "img_size": 32})
    g, critic = model.networks["generator"], model.networks["critic"]
    z, images = torch.randn(4, 8), torch.rand(4, 3, 32, 32) * 2 - 1
    for level in (1, 2, 3):
        assert torch.allclose(g(z, level=level, alpha=0.0), g(z, level=level - 1, alpha=1.0), atol=1e-6)
        assert torch.allclose(critic(images, level, 0.0), critic(images, level - 1, 1.0), atol=1e-5)
        assert not torch.allclose(g(z, level=level, alpha=1.0), g(z, level=level - 1, alpha=1.0))
    low = g(z, level=0, alpha=1.0)
    assert torch.equal(low, low[..., ::8, ::8].repeat_interleave(8, -1).repeat_interleave(8, -2))  # 4x4, upsampled


def test_real_images_fade_between_resolutions_like_the_generator():
    images = torch.rand(2, 3, 16, 16)
    assert torch.allclose(faded(images, 2, 1.0), images)
    half = torch.nn.functional.interpolate(torch.nn.functional.avg_pool2d(images, 2), scale_factor=2)
    assert torch.allclose(faded(images, 2, 0.0), half, atol=1e-6)
    assert torch.allclose(faded(images, 2, 0.25), 0.25 * images + 0.75 * half, atol=1e-6)


@pytest.mark.parametrize("objective", ["logistic", "wgan-gp"])
def test_a_few_steps_lower_the_critic_and_generator_losses_on_a_fixed_batch(objective):
    torch.manual_seed(0)
    model = build_model("progan", {**TINY, "diffaug": False, "objective": objective})
    g, critic = model.networks["generator"], model.networks["critic"]
    real = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    z = model.latent(8, torch.Generator().manual_seed(1))
    d_losses = []
    for _ in range(20):  # the critic alone, against the same fakes, at 4x4
        loss, _ = model.critic_loss(real, g(z).detach(), 0, 1.0)
        d_losses.append(loss.item())
        model.optimise("critic", loss, critic)
    assert d_losses[-1] < d_losses[0] - 0.2
    g_losses = []
    for _ in range(10):  # then the generator alone, against that critic
        with frozen(critic):
            loss = model.generator_adversarial(g(z), 0, 1.0)
        g_losses.append(loss.item())
        model.optimise("generator", loss, g)
    assert g_losses[-1] < g_losses[0]


def test_a_checkpoint_saved_mid_growth_samples_as_trained(tmp_path):
    from conftest import natural_like
    from PIL import Image

    (tmp_path / "data").mkdir()
    for i in range(8):
        Image.fromarray(natural_like(32, 32, seed=i)).save(tmp_path / "data" / f"{i}.png")
    torch.manual_seed(0)
    train_zoo_model(ZooTrainOptions(model="progan", data=tmp_path / "data", out=tmp_path / "run", minutes=5, max_steps=3, batch_size=4,
                                    img_size=16, overrides={"z_dim": 8, "channels": 8, "max_channels": 16, "phase_steps": 2}, grid_size=4))
    model = load_for_sampling(str(tmp_path / "run"))
    g = model.networks["generator"]
    assert (int(g.level), float(g.alpha)) == growth(2, 2, 2) == (1, 0.0)  # the last step's: fading 8 px in
    images = model.sample(2, seed=0)
    assert images.shape == (2, 3, 16, 16)
    assert torch.equal(images[..., ::4, ::4].repeat_interleave(4, -1).repeat_interleave(4, -2), images)  # still 4x4 content
