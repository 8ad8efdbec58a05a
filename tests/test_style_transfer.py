"""Neural style transfer: the style loss falls, the result stays nearer the content than the style
image is, Gram matrices ignore layout, and `tigas style-transfer` writes a scored image."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import natural_like
from PIL import Image

from tigas_core.cli import main as cli_main
from tigas_core.metrics.perceptual import LiteFeatures
from tigas_core.style_transfer import TAPS, StyleLosses, gram_matrix, style_transfer


@pytest.fixture(scope="module")
def features() -> LiteFeatures:
    return LiteFeatures(taps=TAPS)


def image(seed: int, size: int = 64) -> torch.Tensor:
    return torch.from_numpy(natural_like(size, size, seed=seed)).permute(2, 0, 1).float() / 255.0


def stripes(size: int = 64) -> torch.Tensor:
    """A saturated red/blue stripe pattern: a style far from any natural-like image."""
    rows = (torch.arange(size) // 4 % 2).float().view(size, 1).expand(size, size)
    return torch.stack([rows, torch.zeros(size, size), 1 - rows])


def test_style_loss_falls_and_content_loss_stays_bounded(features):
    content, style = image(1), image(7) * torch.tensor([1.0, 0.3, 0.2]).view(3, 1, 1)  # another scene, tinted red
    result = style_transfer(content, style, steps=30, features=features)
    assert result.style_loss[-1] < 0.8 * result.style_loss[0]
    assert result.content_loss[0] == pytest.approx(0.0, abs=1e-6)  # it starts from the content image
    style_as_content, _ = StyleLosses(content, style, features)(style[None])
    assert result.content_loss[-1] < 0.5 * style_as_content.item()  # still far nearer the content than the style image is
    assert result.image.shape == content.shape and 0.0 <= result.image.min() and result.image.max() <= 1.0


def test_a_larger_style_weight_moves_further_towards_the_style(features):
    content, style = image(2), stripes()
    light, heavy = (style_transfer(content, style, steps=15, style_weight=w, features=features) for w in (1.0, 100.0))
    assert heavy.style_loss[-1] < light.style_loss[-1]
    assert heavy.content_loss[-1] > light.content_loss[-1]


def test_gram_matrix_keeps_texture_and_ignores_layout():
    maps = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    shuffled = maps.flatten(2)[:, :, torch.randperm(64, generator=torch.Generator().manual_seed(1))].view_as(maps)
    assert torch.allclose(gram_matrix(maps), gram_matrix(shuffled), atol=1e-6)
    assert torch.allclose(gram_matrix(maps.repeat(1, 1, 2, 2)), gram_matrix(maps), atol=1e-6)  # size-independent
    assert not torch.allclose(gram_matrix(maps), gram_matrix(maps * torch.tensor([1.0, 2.0, 1.0, 1.0]).view(1, 4, 1, 1)))


def test_style_transfer_refuses_a_batch(features):
    with pytest.raises(ValueError, match="content must be an image"):
        style_transfer(image(1)[None], stripes(), steps=1, features=features)


def test_style_transfer_command_writes_a_scored_image(tmp_path, capsys, weights_dir):
    Image.fromarray(natural_like(48, 64, seed=3)).save(tmp_path / "content.png")
    Image.fromarray((stripes(40).permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(tmp_path / "style.png")
    out = tmp_path / "out" / "styled.png"
    code = cli_main(["style-transfer", str(tmp_path / "content.png"), str(tmp_path / "style.png"), "--out", str(out),
                     "--steps", "3", "--size", "40", "--weights", str(weights_dir)])
    assert code == 0
    assert Image.open(out).size == (53, 40)  # shorter side 40, aspect kept
    printed = capsys.readouterr().out
    assert "TIGAS score" in printed and "style loss" in printed
    assert cli_main(["style-transfer", str(tmp_path / "content.png"), str(tmp_path / "style.png"), "--out", str(out),
                     "--size", "16"]) == 2
