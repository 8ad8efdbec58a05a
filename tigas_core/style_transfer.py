"""Neural style transfer (Gatys et al. 2016): optimise an image's pixels so that its deep features
match a content image's and the Gram matrices of its features (which channels fire together,
wherever they fire: texture and colour, not layout) match a style image's.

Features are the frozen ImageNet EfficientNet-Lite0 trunk's (`tigas_core.metrics.perceptual`),
standing in for the VGG of the paper, whose weights cannot be downloaded here. Each Gram matrix's
loss is relative to the style image's own, so the taps weigh alike although their activations
differ in scale by orders of magnitude. Lite0's features are harsher to optimise through than
VGG's: results keep more of the content and carry some high-frequency noise.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from tigas_core.io import load_image, resize_shorter_side
from tigas_core.metrics.perceptual import LiteFeatures

CONTENT_TAP = 3  # stride 16: object layout, little texture (the paper's conv4_2 is at stride 8 of a much wider network)
# Style from the pixels' colours and the three shallow taps (strides 2-8): with the deep taps'
# Gram matrices too, results carried more high-frequency noise and kept more of the content's
# colours (by eye: skimage's cat in three skimage styles, 150 steps at 128 px).
STYLE_TAPS = (0, 1, 2)
TAPS = (0, 1, 2, 3)
PYRAMID_LEVELS = 4


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """[B,C,H,W] -> [B,C,C] channel co-activations averaged over positions: independent of the
    image size, so a style image of any size serves."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels: a little of it keeps the optimised pixels
    from the checkerboard noise that strided, depth-wise convolutions leave in their gradients."""
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., :, 1:] - image[..., :, :-1]).abs().mean()


@dataclasses.dataclass
class StyleTransferResult:
    """``image`` [3,H,W] in [0,1]; the losses at every step (before that step's update); the
    result's TIGAS realism score when one was asked for."""

    image: torch.Tensor
    content_loss: list[float]
    style_loss: list[float]
    score: float | None = None


class StyleLosses(torch.nn.Module):
    """The content and style targets of one (content, style) pair and the losses of an image against them."""

    def __init__(self, content: torch.Tensor, style: torch.Tensor, features: LiteFeatures):
        super().__init__()
        self.features = features
        index = {tap: i for i, tap in enumerate(features.taps)}
        missing = {CONTENT_TAP, *STYLE_TAPS} - set(index)
        if missing:
            raise ValueError(f"the feature network must read taps {sorted(missing)} too")
        self.content_index, self.style_index = index[CONTENT_TAP], [index[t] for t in STYLE_TAPS]
        with torch.no_grad():
            self.content_target = self.features(content[None])[self.content_index]
            self.style_targets = self.grams(style[None])

    def grams(self, image: torch.Tensor, maps: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """The Gram matrices the style is made of: the normalised pixels' (colour) and the style taps'."""
        maps = self.features(image) if maps is None else maps
        pixels = self.features.normalise(image)
        return [gram_matrix(pixels)] + [gram_matrix(maps[i]) for i in self.style_index]

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(content loss, style loss) of ``image`` [1,3,H,W]: mean squared feature difference, and
        the mean over Gram matrices of their squared difference relative to the style's own."""
        maps = self.features(image)
        content = F.mse_loss(maps[self.content_index], self.content_target)
        grams = self.grams(image, maps)
        style = sum((gram - target).pow(2).sum() / target.pow(2).sum() for gram, target in zip(grams, self.style_targets))
        return content, style / len(grams)


class PyramidImage(torch.nn.Module):
    """An image optimised as a start image plus corrections at ``levels`` resolutions (full, 1/2,
    1/4, ...), each up-sampled and added. Adam moves every parameter by about the same step, so a
    colour shift over a whole region, which per pixel would take many small agreeing steps, is a
    few steps of the coarse levels: plain pixel optimisation left the colours almost unchanged."""

    def __init__(self, start: torch.Tensor, levels: int = PYRAMID_LEVELS):
        super().__init__()
        self.register_buffer("start", start[None].clone())
        h, w = start.shape[-2:]
        self.levels = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros(1, 3, max(1, h >> k), max(1, w >> k), device=start.device)) for k in range(levels)])

    def forward(self) -> torch.Tensor:
        size = self.start.shape[-2:]
        image = self.start + sum(F.interpolate(level, size=size, mode="bilinear", align_corners=False) for level in self.levels)
        return image.clamp(0.0, 1.0)


def style_transfer(content: torch.Tensor, style: torch.Tensor, steps: int = 200, style_weight: float = 10.0,
                   content_weight: float = 1.0, tv_weight: float = 1.0, lr: float = 0.01, features: LiteFeatures | None = None,
                   on_step: Callable[[int, float, float], None] | None = None) -> StyleTransferResult:
    """``content`` painted in ``style`` (both [3,H,W] in [0,1], any sizes): ``steps`` Adam updates,
    starting from the content image (`PyramidImage`), of content_weight * content loss +
    style_weight * style loss + tv_weight * total variation; pixels stay in [0, 1].
    ``on_step(step, content, style)`` sees every step's losses (progress bars)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    for name, image in (("content", content), ("style", style)):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"{name} must be an image [3,H,W] in [0, 1], got shape {tuple(image.shape)}")
    features = features if features is not None else LiteFeatures(taps=TAPS)
    device = features.normalise.mean.device
    losses = StyleLosses(content.to(device), style.to(device), features)
    pyramid = PyramidImage(content.to(device))
    optimizer = torch.optim.Adam(pyramid.parameters(), lr=lr)
    content_history, style_history = [], []
    for step in range(steps):
        image = pyramid()
        content_loss, style_loss = losses(image)
        loss = content_weight * content_loss + style_weight * style_loss + tv_weight * total_variation(image)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        content_history.append(content_loss.item())
        style_history.append(style_loss.item())
        if on_step is not None:
            on_step(step, content_history[-1], style_history[-1])
    with torch.no_grad():
        return StyleTransferResult(pyramid()[0].cpu(), content_history, style_history)


def load_for_transfer(source, size: int) -> torch.Tensor:
    """An image (path, URL, array, PIL, tensor) as [3,H,W] in [0,1], its shorter side resized to ``size``."""
    if size < 32:
        raise ValueError(f"size must be >= 32 px, got {size}")
    return resize_shorter_side(load_image(source)[None], size)[0]


def transfer_and_score(content, style, size: int = 256, steps: int = 200, style_weight: float = 10.0, scorer=None,
                       on_step: Callable[[int, float, float], None] | None = None, **options) -> StyleTransferResult:
    """`style_transfer` of two images given as anything `load_image` reads, at ``size`` px (shorter
    side), with the result's TIGAS score from ``scorer`` (a `tigas_core.TIGAS`; the bundled weights
    when None). What the CLI and an app tab call. The result is rounded to 8-bit levels first, so the
    score is the score of the PNG a user gets back."""
    from tigas_core import TIGAS

    result = style_transfer(load_for_transfer(content, size), load_for_transfer(style, size), steps, style_weight,
                            on_step=on_step, **options)
    result.image = torch.round(result.image * 255) / 255
    scorer = scorer if scorer is not None else TIGAS()
    result.score = float(scorer(result.image))
    return result
