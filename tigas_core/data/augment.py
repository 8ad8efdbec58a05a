"""Training augmentation that removes format and size shortcuts, on pixel-scale views.

Both classes get identical processing: a random JPEG re-encode (quality 30-100) of every
training image, so "JPEG = real, PNG = fake" carries no signal; random resizing 0.5-1.5x or an
upload-style downscale, so "large/sharp = generated" carries none either; then flips, Gaussian
blur and noise. The ``strong-colour`` level also jitters saturation and sometimes drops colour
altogether, so that "vivid colours = generated" stops being a shortcut. Views are cut like
`tigas_core.io.preprocess` cuts them: at the image's own pixel scale, resized only when smaller
than the view (`native_view`).
"""
from __future__ import annotations

import dataclasses
import io
import random

import numpy as np
import torch
from PIL import Image, ImageFilter

from tigas_core.io import MIN_SIDE, at_least, crop, preprocess, resize_shorter_side, to_uint8_image


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """Probabilities and ranges of one augmentation level."""

    flip: bool = False
    jpeg_quality: tuple[int, int] | None = None  # applied to every image when set
    resize: tuple[float, float] = (1.0, 1.0)
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    noise_p: float = 0.0
    noise_std: tuple[float, float] = (0.005, 0.03)
    saturation: tuple[float, float] = (1.0, 1.0)  # colour scaled around each pixel's grey level
    greyscale_p: float = 0.0
    upload_p: float = 0.0  # chance of a downscale as uploads and thumbnails get: shorter side to U(upload_side)
    upload_side: tuple[int, int] = (224, 512)


LEVELS: dict[str, AugmentSpec] = {
    "none": AugmentSpec(),
    "light": AugmentSpec(flip=True, jpeg_quality=(30, 100), resize=(0.75, 1.25)),
    "medium": AugmentSpec(flip=True, jpeg_quality=(30, 100), resize=(0.5, 1.5), blur_p=0.2, noise_p=0.2, upload_p=0.2),
    "strong": AugmentSpec(
        flip=True, jpeg_quality=(30, 100), resize=(0.5, 1.5), blur_p=0.4, blur_sigma=(0.3, 2.5),
        noise_p=0.4, noise_std=(0.005, 0.05), upload_p=0.3,
    ),
}
LEVELS["strong-colour"] = dataclasses.replace(LEVELS["strong"], saturation=(0.4, 1.6), greyscale_p=0.15)
# The bundled weights' level: JPEG 30-100 on both classes, resizing 0.5-1.5x or an upload-style
# downscale, a little blur and noise.
LEVELS["native"] = AugmentSpec(
    flip=True, jpeg_quality=(30, 100), resize=(0.5, 1.5), blur_p=0.1, blur_sigma=(0.3, 1.2), noise_p=0.1,
    noise_std=(0.003, 0.02), upload_p=0.4,
)


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
    """[...,3,H,W] with its colour scaled by ``saturation`` around the luma (0 = greyscale, 1 = unchanged)."""
    luma = (0.299 * image[..., 0, :, :] + 0.587 * image[..., 1, :, :] + 0.114 * image[..., 2, :, :]).unsqueeze(-3)
    return (luma + saturation * (image - luma)).clamp(0, 1)


def rescale(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Resize [3,H,W] by ``factor`` (aspect kept), never below MIN_SIDE on the shorter side."""
    short = min(image.shape[-2:])
    target = max(MIN_SIDE, round(short * factor))
    return image if target == short else resize_shorter_side(image[None], target)[0].clamp(0, 1)


def upload_copy(image: torch.Tensor, side: int, quality: int) -> torch.Tensor:
    """[3,H,W] as an upload or thumbnail ends up: the whole image resized (up or down) to ``side``
    px on its shorter side, then saved as JPEG at ``quality``. Unlike `native_view`'s resizing, a
    small image is enlarged before the JPEG, as sites and the private evaluation of issue #26 do."""
    return jpeg_reencode(rescale(image, side / min(image.shape[-2:])), quality)


# Shorter sides and JPEG qualities of the training's upload views (`upload_view`).
UPLOAD_SIDES, UPLOAD_QUALITIES = (224, 384), (60, 95)


def upload_view(image: torch.Tensor, img_size: int, rng: random.Random) -> torch.Tensor:
    """One training view of the image as an upload: `upload_copy` at a random side in UPLOAD_SIDES
    and quality in UPLOAD_QUALITIES, then exactly the view inference takes of it (`preprocess`)."""
    return preprocess(upload_copy(image, rng.randint(*UPLOAD_SIDES), rng.randint(*UPLOAD_QUALITIES)), img_size)


def native_view(image: torch.Tensor, img_size: int, spec: AugmentSpec, rng: random.Random) -> torch.Tensor:
    """Training counterpart of `preprocess` for pixel-scale views: one augmented img_size square.

    The image is flipped and resized (an upload-style downscale with chance ``upload_p``, else by
    U(resize)), a region a little larger than the view is cut at a random place, blurred, noised,
    recoloured and JPEG re-encoded like a whole image would be (so a 2048 px photo costs what a small one
    does), and the view is cropped from it at a random offset to the JPEG grid. Images smaller
    than the view are resized up to it after the JPEG, exactly as inference sees a small file.
    """
    if spec.flip and rng.random() < 0.5:
        image = image.flip(-1)
    short = min(image.shape[-2:])
    if spec.upload_p and rng.random() < spec.upload_p:
        target = rng.randint(*spec.upload_side)
        if target < short:
            image = rescale(image, target / short)
    elif spec.resize != (1.0, 1.0):
        image = rescale(image, rng.uniform(*spec.resize))
    region = img_size + 16
    height, width = image.shape[-2:]
    top, left = rng.randint(0, max(0, height - region)), rng.randint(0, max(0, width - region))
    image = image[:, top : top + region, left : left + region]
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
    image = at_least(image[None], img_size)[0]
    height, width = image.shape[-2:]
    return crop(image, img_size, rng.randint(0, height - img_size), rng.randint(0, width - img_size)).clamp(0, 1)
