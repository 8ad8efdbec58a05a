"""TIGASLoss: gradients reach the generator, TIGAS stays frozen; TIGASScheduler follows its curve."""
from __future__ import annotations

import math

import pytest
import torch

from tigas_core.api import TIGAS
from tigas_core.generator_loss import TIGASLoss, TIGASScheduler
from tigas_core.generators.gan import Generator


@pytest.fixture
def generator() -> Generator:
    torch.manual_seed(0)
    return Generator(img_size=32, nz=8, ngf=8)


def fake_batch(generator: Generator, n: int = 3) -> torch.Tensor:
    return (generator(torch.randn(n, 8)) + 1.0) / 2.0


def test_gradients_flow_into_generator_not_tigas(generator, small_model):
    scorer = TIGAS(model=small_model, device="cpu")
    before = {k: v.clone() for k, v in scorer.model.state_dict().items()}
    loss_fn = TIGASLoss(scorer, weight=0.5)
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.1)
    images = fake_batch(generator)
    loss = loss_fn(images)
    with torch.no_grad():
        expected = 0.5 * (1.0 - scorer(images.detach()).mean())
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    assert loss_fn.last_score == pytest.approx(1.0 - loss.item() / 0.5, abs=1e-5)
    loss.backward()
    grads = [p.grad for p in generator.parameters()]
    assert all(g is not None for g in grads)
    assert sum(g.abs().sum().item() for g in grads) > 0.0
    assert all(not p.requires_grad and p.grad is None for p in scorer.model.parameters())
    assert not scorer.model.training
    optimizer.step()
    after = scorer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_wraps_a_bare_model_and_freezes_it(small_model, generator):
    loss_fn = TIGASLoss(small_model, weight=1.0)
    assert isinstance(loss_fn.scorer, TIGAS)
    assert not any(p.requires_grad for p in small_model.parameters())
    loss_fn(fake_batch(generator)).backward()
    assert generator.net[0].weight.grad.abs().sum() > 0


def test_the_first_batch_is_checked_for_the_unit_range_later_strays_are_clamped(generator, tigas):
    from tigas_core.io import TIGASInputError

    below_zero = generator(torch.randn(3, 8)) - 0.9  # far below 0, as a [-1, 1] generator's output is
    with pytest.raises(TIGASInputError, match=r"map a \[-1, 1\] image"):
        TIGASLoss(tigas)(below_zero)
    loss_fn = TIGASLoss(tigas, weight=1.0)
    good = fake_batch(generator)
    loss_fn(good)
    stray = good.detach().clone()
    stray[0, 0, 0, 0], stray[1, 1, 2, 2] = -0.8, 1.9  # a run's later batch with two wild pixels
    assert loss_fn(stray).item() == pytest.approx(1.0 - float(tigas(stray.clamp(0, 1)).mean()), abs=1e-5)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        TIGASLoss(tigas, weight=-1.0)


def test_every_n_steps_skips(generator, tigas):
    loss_fn = TIGASLoss(tigas, weight=1.0, every_n_steps=3)
    images = fake_batch(generator)
    values = [loss_fn(images, step=s) for s in range(4)]
    assert values[0].item() > 0 and values[3].item() > 0
    assert values[1].item() == 0.0 and values[2].item() == 0.0
    assert not values[1].requires_grad and loss_fn.last_score is not None  # step 3 ran last
    loss_fn(images, step=4)
    assert loss_fn.last_score is None
    with pytest.raises(ValueError):
        TIGASLoss(tigas, every_n_steps=0)


def test_multi_scale_averages_coarse_copies(generator, tigas):
    images = fake_batch(generator)
    loss_fn = TIGASLoss(tigas, weight=1.0, multi_scale=True, scales=(1.0, 0.5))
    half = torch.nn.functional.interpolate(
        torch.nn.functional.interpolate(images, scale_factor=0.5, mode="bilinear", align_corners=False, antialias=True),
        size=(32, 32), mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = 1.0 - 0.5 * (tigas(images).mean() + tigas(half).mean())
    loss = loss_fn(images)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    loss.backward()
    assert generator.net[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\[B,3,H,W\]"):
        loss_fn(images[0])


def test_default_model_uses_bundled_weights(weights_dir, monkeypatch):
    monkeypatch.setenv("TIGAS_ASSETS_DIR", str(weights_dir))
    loss_fn = TIGASLoss()
    assert str(weights_dir) in loss_fn.scorer.weights_source
    assert loss_fn.scorer.config.feature_dim == 32


@pytest.mark.parametrize("mode", ["linear", "cosine"])
def test_scheduler_curve(mode, tigas):
    loss_fn = TIGASLoss(tigas, weight=0.3)
    scheduler = TIGASScheduler(loss_fn, target_weight=0.2, warmup_steps=100, mode=mode)
    assert loss_fn.weight == 0.0
    curve = {s: scheduler.weight_at(s) for s in (0, 25, 50, 75, 100, 500)}
    if mode == "linear":
        assert curve == pytest.approx({0: 0.0, 25: 0.05, 50: 0.1, 75: 0.15, 100: 0.2, 500: 0.2})
    else:
        assert curve[25] == pytest.approx(0.2 * (1 - math.cos(math.pi / 4)) / 2)
        assert curve[50] == pytest.approx(0.1) and curve[100] == pytest.approx(0.2)
        assert curve[25] < 0.05 < curve[75] - 0.1  # slow start, fast middle
    weights = [scheduler.step() for _ in range(100)]
    assert weights == sorted(weights) and weights[-1] == pytest.approx(0.2)
    assert loss_fn.weight == pytest.approx(0.2)
    assert scheduler.step(10) == pytest.approx(scheduler.weight_at(10)) == pytest.approx(loss_fn.weight)
    with pytest.raises(ValueError):
        TIGASScheduler(loss_fn, 0.1, 10, mode="exp")
