"""Training augmentation that removes format and size shortcuts.

Both classes get identical processing: a random JPEG re-encode (quality 30-100) of every
training image, so "JPEG = real, PNG = fake" carries no signal; random resizing 0.5-1.5x and an
occasional low-resolution round trip, so "small/blurry = real" carries none either; then flips,
Gaussian blur and noise. The ``strong-colour`` level also jitters saturation and sometimes drops
colour altogether, so that "vivid colours = generated" stops being a shortcut: the bundled
weights read colourful real close-ups as generated and their greyscale copies as real. The result
goes through `tigas_core.io.preprocess`-style resizing with a random crop, i.e. the same
shorter-side resize as inference.
"""
from __future__ import annotations

import dataclasses
import io
import random

import numpy as np
import torch
from PIL import Image, ImageFilter

from tigas_core.io import MIN_SIDE, crop, resize_shorter_side, to_uint8_image


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """Probabilities and ranges of one augmentation level."""

    flip: bool = False
    jpeg_quality: tuple[int, int] | None = None  # applied to every image when set
    resize: tuple[float, float] = (1.0, 1.0)
    lowres_p: float = 0.0  # chance of a round trip through a 32-64 px shorter side
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    noise_p: float = 0.0
    noise_std: tuple[float, float] = (0.005, 0.03)
    crop_scale: tuple[float, float] = (1.0, 1.0)  # shorter side img_size * U(crop_scale) before the random crop
    saturation: tuple[float, float] = (1.0, 1.0)  # colour scaled around each pixel's grey level
    greyscale_p: float = 0.0


LEVELS: dict[str, AugmentSpec] = {
    "none": AugmentSpec(),
    "light": AugmentSpec(flip=True, jpeg_quality=(30, 100), resize=(0.75, 1.25), crop_scale=(1.0, 1.15)),
    "medium": AugmentSpec(
        flip=True, jpeg_quality=(30, 100), resize=(0.5, 1.5), lowres_p=0.2, blur_p=0.2, noise_p=0.2, crop_scale=(1.0, 1.3)
    ),
    "strong": AugmentSpec(
        flip=True, jpeg_quality=(30, 100), resize=(0.5, 1.5), lowres_p=0.35, blur_p=0.4, blur_sigma=(0.3, 2.5),
        noise_p=0.4, noise_std=(0.005, 0.05), crop_scale=(1.0, 1.5),
    ),
}
LEVELS["strong-colour"] = dataclasses.replace(LEVELS["strong"], saturation=(0.4, 1.6), greyscale_p=0.15)


def get_level(name: str) -> AugmentSpec:
    if name not in LEVELS:
        raise ValueError(f"unknown augment level {name!r}; choose from {sorted(LEVELS)}")
    return LEVELS[name]


def jpeg_reencode(image: torch.Tensor, quality: int) -> torch.Tensor:
    """[3,H,W] float -> the same image after a JPEG round trip at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(to_uint8_image(image)).save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(decoded).permute(2, 0, 1).contiguous()


def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """[3,H,W] float blurred with PIL's Gaussian filter (radius = sigma)."""
    blurred = Image.fromarray(to_uint8_image(image)).filter(ImageFilter.GaussianBlur(radius=float(sigma)))
    return torch.from_numpy(np.asarray(blurred, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def recolour(image: torch.Tensor, saturation: float) -> torch.Tensor:
    """[3,H,W] with its colour scaled by ``saturation`` around the luma (0 = greyscale, 1 = unchanged)."""
    luma = (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).unsqueeze(0)
    return (luma + saturation * (image - luma)).clamp(0, 1)


def rescale(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Resize [3,H,W] by ``factor`` (aspect kept), never below MIN_SIDE on the shorter side."""
    short = min(image.shape[-2:])
    target = max(MIN_SIDE, round(short * factor))
    return image if target == short else resize_shorter_side(image[None], target)[0].clamp(0, 1)


def augment(image: torch.Tensor, spec: AugmentSpec, rng: random.Random) -> torch.Tensor:
    """Apply one level's pixel-space augmentations to a [3,H,W] image at (roughly) native size."""
    if spec.flip and rng.random() < 0.5:
        image = image.flip(-1)
    if spec.lowres_p and rng.random() < spec.lowres_p:
        short = min(image.shape[-2:])
        low = rng.randint(MIN_SIDE, 2 * MIN_SIDE)
        if short > low:
            image = resize_shorter_side(resize_shorter_side(image[None], low), short)[0].clamp(0, 1)
    if spec.resize != (1.0, 1.0):
        image = rescale(image, rng.uniform(*spec.resize))
    if spec.blur_p and rng.random() < spec.blur_p:
        image = gaussian_blur(image, rng.uniform(*spec.blur_sigma))
    if spec.noise_p and rng.random() < spec.noise_p:
        generator = torch.Generator().manual_seed(rng.getrandbits(31))
        image = (image + torch.randn(image.shape, generator=generator) * rng.uniform(*spec.noise_std)).clamp(0, 1)
    if spec.greyscale_p and rng.random() < spec.greyscale_p:
        image = recolour(image, 0.0)
    elif spec.saturation != (1.0, 1.0):
        image = recolour(image, rng.uniform(*spec.saturation))
    if spec.jpeg_quality is not None:
        image = jpeg_reencode(image, rng.randint(*spec.jpeg_quality))
    return image


def random_view(image: torch.Tensor, img_size: int, spec: AugmentSpec, rng: random.Random) -> torch.Tensor:
    """Training counterpart of `preprocess`: shorter side to img_size * U(crop_scale), random square crop."""
    side = max(img_size, round(img_size * rng.uniform(*spec.crop_scale)))
    resized = resize_shorter_side(image[None], side)[0]
    height, width = resized.shape[-2:]
    return crop(resized, img_size, rng.randint(0, height - img_size), rng.randint(0, width - img_size)).clamp(0, 1)
