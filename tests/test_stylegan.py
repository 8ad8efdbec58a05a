"""The style-based generator: a few steps on a fixed batch lower its losses, style mixing keeps the
coarse layers' maps when only the fine styles are swapped, truncation pulls towards w's mean,
path-length regularisation tracks its mean, PPL walks z and w."""
from __future__ import annotations

import pytest
import torch

from tigas_core.generators import build_model
from tigas_core.generators.base import frozen
from tigas_core.generators.gan import generator_loss
from tigas_core.metrics.perceptual import LiteFeatures
from tigas_core.metrics.ppl import zoo_path_length

TINY = {"z_dim": 16, "w_dim": 16, "mapping_layers": 2, "channels": 8, "max_channels": 16, "ndf": 8, "img_size": 16}


def fixed_batch(n: int = 8) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_a_few_steps_lower_the_critic_and_generator_losses_on_a_fixed_batch():
    torch.manual_seed(0)
    model = build_model("stylegan", {**TINY, "diffaug": False, "pl_weight": 0.0})
    real, labels = fixed_batch(), torch.zeros(8, dtype=torch.long)
    d_losses = [model.train_step(real, labels, step)["loss/d"] for step in range(30)]
    assert d_losses[-1] < d_losses[0] - 0.05  # the critic starts to tell the batch from the samples
    g, critic = model.networks["generator"], model.networks["critic"]
    z = model.latent(8, torch.Generator().manual_seed(1))
    g_losses = []
    for _ in range(12):  # the critic held fixed: the generator's own steps lower its loss
        with frozen(critic):
            loss = generator_loss(model.critic(g(z)))
        g_losses.append(loss.item())
        model.optimise("generator", loss, g)
    assert g_losses[-1] < g_losses[0]


def test_swapping_fine_styles_keeps_the_coarse_maps_and_changes_the_image_less():
    torch.manual_seed(0)
    model = build_model("stylegan", TINY, for_training=False)
    convs = model.networks["generator"].synthesis.convs
    maps: list[torch.Tensor] = []
    hooks = [conv.register_forward_hook(lambda module, args, out: maps.append(out)) for conv in convs]
    noise = torch.Generator().manual_seed(2)
    za, zb = torch.randn(8, 16, generator=noise), torch.randn(8, 16, generator=noise)
    try:
        runs = {}
        for name, (first, second, crossover) in {"a": (za, za, 0), "coarse": (zb, za, 2), "fine": (za, zb, model.num_ws - 2)}.items():
            maps.clear()
            runs[name] = (model.sample_mixed(first, second, crossover), list(maps))
    finally:
        for hook in hooks:
            hook.remove()
    (a, a_maps), (coarse, coarse_maps), (fine, fine_maps) = runs["a"], runs["coarse"], runs["fine"]
    fine_from = model.num_ws - 2
    assert all(torch.equal(x, y) for x, y in zip(a_maps[:fine_from], fine_maps[:fine_from]))  # 4 and 8 px untouched
    assert not torch.equal(a_maps[-1], fine_maps[-1])
    assert all(not torch.equal(x, y) for x, y in zip(a_maps, coarse_maps))  # a coarse style reaches every layer after it
    assert (fine - a).abs().mean() < (coarse - a).abs().mean()
    assert torch.equal(model.sample_mixed(za, zb, model.num_ws), a)  # crossover past the last layer: all of the first


def test_truncation_pulls_every_image_towards_the_mean_style():
    torch.manual_seed(0)
    model = build_model("stylegan", TINY, for_training=False)
    model.networks["generator"].mapping.w_avg.normal_()
    spread = {psi: model.sample(16, seed=3, truncation=psi).std(dim=0).mean().item() for psi in (1.0, 0.5, 0.01)}
    assert spread[0.01] < spread[0.5] < spread[1.0]


def test_training_tracks_w_mean_and_path_length():
    torch.manual_seed(0)
    model = build_model("stylegan", {**TINY, "pl_every": 2})
    g = model.networks["generator"]
    logs = model.train_step(fixed_batch(), torch.zeros(8, dtype=torch.long), step=0)
    assert logs["path_length"] > 0 and g.pl_mean.item() > 0 and g.mapping.w_avg.abs().sum() > 0
    assert "path_length" not in model.train_step(fixed_batch(), torch.zeros(8, dtype=torch.long), step=1)  # lazy: every 2nd step


def test_path_length_in_z_and_w():
    torch.manual_seed(0)
    model = build_model("stylegan", TINY, for_training=False)
    features = LiteFeatures(size=32)
    z, w = (zoo_path_length(model, n=6, space=space, features=features) for space in ("z", "w"))
    assert z.ppl > 0 and w.ppl > 0 and z.interpolation == "slerp" and w.interpolation == "lerp"


def test_sample_grid_with_scores_sorts_bundled_samples_best_first(weights_dir):
    from tigas_core import TIGAS
    from tigas_core.generators.showcase import sample_grid_with_scores

    samples = sample_grid_with_scores("cgan", n=4, seed=1, label=3, scorer=TIGAS(str(weights_dir), device="cpu"))
    scores = [sample.score for sample in samples]
    assert scores == sorted(scores, reverse=True) and len(samples) == 4
    assert samples[0].image.shape == (32, 32, 3) and samples[0].image.dtype.name == "uint8"
    assert {sample.label for sample in samples} == {3}
    with pytest.raises(ValueError, match="no bundled zoo model 'nope'"):
        sample_grid_with_scores("nope")
