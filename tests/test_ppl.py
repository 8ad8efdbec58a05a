"""Perceptual Path Length: zero for a generator that ignores its latent, growing with how jumpy a
generator is, the same for the same seed, and `tigas ppl` on a zoo checkpoint."""
from __future__ import annotations

import json

import pytest
import torch

from tigas_core.cli import main as cli_main
from tigas_core.generators import build_model
from tigas_core.metrics.perceptual import LiteFeatures, perceptual_distance
from tigas_core.metrics.ppl import lerp, perceptual_path_length, slerp, trimmed_mean, zoo_path_length


@pytest.fixture(scope="module")
def features() -> LiteFeatures:
    return LiteFeatures(size=32)


class SineGenerator(torch.nn.Module):
    """Images sigmoid(A sin(frequency * z)): a fixed random map whose images change ``frequency``
    times faster along any path in z; frequency 0 is a constant generator."""

    def __init__(self, frequency: float, latent: int = 16, size: int = 16):
        super().__init__()
        self.frequency, self.size = frequency, size
        self.map = torch.nn.Linear(latent, 3 * size * size)
        torch.nn.init.normal_(self.map.weight, std=1.0, generator=torch.Generator().manual_seed(3))

    def forward(self, z: torch.Tensor, context=None) -> torch.Tensor:
        return torch.sigmoid(self.map(torch.sin(self.frequency * z))).view(-1, 3, self.size, self.size)


def endpoints(n: int = 24, latent: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    noise = torch.Generator().manual_seed(0)
    return torch.randn(n, latent, generator=noise), torch.randn(n, latent, generator=noise)


def test_ppl_is_zero_for_a_constant_generator(features):
    start, end = endpoints()
    result = perceptual_path_length(SineGenerator(0.0), start, end, features=features)
    assert result.ppl == pytest.approx(0.0, abs=1e-6)


def test_ppl_grows_with_a_jumpier_generator(features):
    start, end = endpoints()
    ppl = [perceptual_path_length(SineGenerator(f), start, end, features=features).ppl for f in (0.5, 2.0, 8.0)]
    assert 0 < ppl[0] < ppl[1] < ppl[2]
    assert ppl[2] > 10 * ppl[0]  # distances are squared: about frequency ** 2 where sin stays smooth over epsilon


def test_ppl_hardly_depends_on_epsilon_while_the_step_stays_small(features):
    start, end = endpoints()
    generator = SineGenerator(2.0)
    small, large = (perceptual_path_length(generator, start, end, epsilon=e, features=features).ppl for e in (1e-4, 1e-3))
    assert small == pytest.approx(large, rel=0.05)


def test_perceptual_distance_is_zero_for_equal_images_and_symmetric(features):
    a, b = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1)).split(1)
    assert perceptual_distance(features(a), features(a)).item() == 0.0
    assert perceptual_distance(features(a), features(b)).item() == pytest.approx(perceptual_distance(features(b), features(a)).item())
    assert perceptual_distance(features(a), features(b)).item() > 0.0


def test_slerp_keeps_the_ends_and_interpolates_the_length():
    a, b = endpoints(4, 8)
    assert torch.allclose(slerp(a, b, torch.zeros(4)), a, atol=1e-5)
    assert torch.allclose(slerp(a, b, torch.ones(4)), b, atol=1e-5)
    middle = slerp(a, b, torch.full((4,), 0.5))
    assert torch.allclose(middle.norm(dim=1), (a.norm(dim=1) + b.norm(dim=1)) / 2, atol=1e-5)
    assert torch.allclose(lerp(a, b, torch.full((4,), 0.5)), (a + b) / 2)


def test_trimming_drops_the_outer_percentiles():
    values = torch.cat([torch.ones(98), torch.tensor([0.0, 1e6])]).double().numpy()
    mean, kept = trimmed_mean(values)
    assert mean == 1.0 and kept == 98


@pytest.mark.parametrize("name, config", [("dcgan", {"nz": 8, "ngf": 8, "ndf": 8, "layout_prior": 0}),
                                          ("vae", {"latent": 8, "width": 8, "ndf": 8})])
def test_zoo_models_have_a_reproducible_path_length(name, config, features):
    torch.manual_seed(0)
    model = build_model(name, {**config, "img_size": 16}, for_training=False)
    first = zoo_path_length(model, n=8, features=features, seed=1)
    assert first.ppl > 0 and len(first.distances) == 8
    assert zoo_path_length(model, n=8, features=features, seed=1).ppl == first.ppl


def test_a_model_without_a_latent_or_that_space_is_refused(features):
    with pytest.raises(ValueError, match="no PPL in space 'w'"):
        zoo_path_length(build_model("dcgan", {"nz": 8, "ngf": 8, "img_size": 16}, for_training=False), n=4, space="w", features=features)
    ddpm = build_model("ddpm", {"width": 8, "mults": [1, 2], "timesteps": 50, "n_classes": 2, "img_size": 16},
                       for_training=False)
    with pytest.raises(ValueError, match="no latent code"):
        zoo_path_length(ddpm, n=4, features=features)


def test_ppl_command_on_an_exported_checkpoint(tmp_path, capsys):
    from tigas_core.generators.common import save_checkpoint

    model = build_model("dcgan", {"nz": 8, "ngf": 8, "layout_prior": 0, "img_size": 16}, for_training=False)
    save_checkpoint(tmp_path / "g", model.sampler_tensors(), {"model": "dcgan", "config": model.config})
    assert cli_main(["ppl", str(tmp_path / "g"), "--n", "6", "--json", str(tmp_path / "ppl.json")]) == 0
    assert "PPL " in capsys.readouterr().out
    record = json.loads((tmp_path / "ppl.json").read_text())
    assert record["model"] == "dcgan" and record["pairs"] == 6 and record["ppl"] > 0
    assert cli_main(["ppl", str(tmp_path / "g"), "--space", "w"]) == 2  # a DCGAN has no w
