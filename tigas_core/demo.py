"""Images the project makes itself, for demos, examples and tests.

Real: crops of the photographs that scikit-image ships (``skimage.data``). Generated: samples
of the small zoo checkpoints bundled in ``assets/zoo/``. Nothing comes from ``shared/data``, so
the app, the dashboard and CI work from a clean checkout.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from tigas_core.config import atomic_write_bytes
from tigas_core.generators.common import png_bytes
from tigas_core.io import crop, load_image, resize_shorter_side

log = logging.getLogger("tigas.demo")

# skimage.data photographs available without a download (colour first, then greyscale).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
          "camera", "coins", "grass", "gravel", "brick", "moon")


def zoo_assets_dir() -> Path:
    from tigas_core.hub import bundled_weights_dir

    return bundled_weights_dir() / "zoo"


def bundled_generators() -> list[Path]:
    """Stems of the bundled zoo checkpoints (``assets/zoo/<model>.safetensors`` + ``.json``)."""
    folder = zoo_assets_dir()
    return sorted(p.with_suffix("") for p in folder.glob("*.json") if p.with_suffix(".safetensors").is_file())


def photo(name: str) -> torch.Tensor:
    """A skimage.data photograph as [3,H,W] in [0,1] (greyscale repeated to RGB)."""
    import skimage.data

    return load_image(np.asarray(getattr(skimage.data, name)()), name=f"skimage.data.{name}")


def real_crops(n: int, size: int = 32, seed: int = 0) -> list[tuple[str, torch.Tensor]]:
    """``n`` random square crops (35-90 % of the shorter side) of the photos, resized to ``size``,
    cycling through PHOTOS so every photo appears."""
    rng = np.random.default_rng(seed)
    crops = []
    cache: dict[str, torch.Tensor] = {}
    for i in range(n):
        name = PHOTOS[i % len(PHOTOS)]
        image = cache.setdefault(name, photo(name))
        height, width = image.shape[-2:]
        side = int(min(height, width) * rng.uniform(0.35, 0.9))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        patch = crop(image.unsqueeze(0), side, top, left)
        crops.append((f"{name}_{i:03d}", resize_shorter_side(patch, size)[0].clamp(0, 1)))
    return crops


def build_demo_set(root: Path, n_per_generator: int = 16, size: int = 32, seed: int = 0) -> Path:
    """Write ``root/real/*.png`` and ``root/<generator>/*.png`` (one folder per bundled zoo
    checkpoint) and return ``root``. Reals are resized to ``size`` (the zoo's 32 px) and saved as
    PNG like the fakes, so neither format nor size tells the classes apart."""
    from tigas_core.generators import load_for_sampling
    from tigas_core.generators.sampling import write_samples

    root = Path(root)
    for name, image in real_crops(n_per_generator, size, seed):
        atomic_write_bytes(root / "real" / f"{name}.png", png_bytes(image))
    stems = bundled_generators()
    if not stems:
        log.warning("no bundled zoo checkpoints in %s: the demo set has real images only", zoo_assets_dir())
    for stem in stems:
        model = load_for_sampling(str(stem))
        write_samples(model, root / stem.name, n_per_generator, seed=seed, batch_size=n_per_generator)
    return root


def example_images(dest_dir: Path, n_real: int = 3, size: int = 256) -> list[Path]:
    """A handful of example inputs for the app: ``n_real`` photo crops at ``size`` px and one
    sample from each bundled generator (at its native 32 px)."""
    from tigas_core.generators import load_for_sampling

    dest_dir = Path(dest_dir)
    paths = []
    for name, image in real_crops(n_real, size, seed=1):
        path = dest_dir / f"real_{name}.png"
        atomic_write_bytes(path, png_bytes(image))
        paths.append(path)
    for stem in bundled_generators():
        image = load_for_sampling(str(stem)).sample(1, seed=0)[0]
        path = dest_dir / f"generated_{stem.name}.png"
        atomic_write_bytes(path, png_bytes(image))
        paths.append(path)
    return paths
