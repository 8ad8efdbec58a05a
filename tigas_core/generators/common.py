"""Pieces the zoo models share: image folder loading, EMA, a fitted mixture prior, checkpoints, sample grids.

Checkpoints are a pair ``NAME.safetensors`` (every tensor: weights, optimizer moments, RNG state)
and ``NAME.json`` (model name, config, counters, optimizer hyper-parameters), both written
atomically, so a killed run resumes from the last complete checkpoint and nothing is unpickled.
"""
from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Iterable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save
from torch import nn

from tigas_core.config import atomic_write_bytes, atomic_write_text
from tigas_core.io import TIGASInputError, iter_image_files, load_image, preprocess, to_uint8_image


class ImageFolderTensors:
    """All images below a folder, resized to ``img_size`` and held in memory as uint8.

    CIFAR-sized data (10k x 3x32x32 = 30 MB) fits in memory, which keeps the CPU training loop
    free of decoding work. The class label is the first sub-folder name (CIFAR-10 class folders);
    images directly in the root get label 0. Unreadable files are skipped and counted.
    """

    def __init__(self, root: str | os.PathLike, img_size: int = 32, limit: int | None = None):
        root = Path(root)
        files = list(iter_image_files(root))
        if limit is not None:
            files = files[:: max(1, len(files) // limit)][:limit]
        if not files:
            raise TIGASInputError(os.fspath(root), "no image files found")
        class_names = sorted({f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1})
        index = {name: i for i, name in enumerate(class_names)}
        images, labels, self.skipped = [], [], []
        for path in files:
            try:
                image = preprocess(load_image(path), img_size)
            except TIGASInputError as exc:
                self.skipped.append(str(exc))
                continue
            images.append(torch.from_numpy(to_uint8_image(image)).permute(2, 0, 1))
            parts = path.relative_to(root).parts
            labels.append(index[parts[0]] if len(parts) > 1 else 0)
        if not images:
            raise TIGASInputError(os.fspath(root), f"none of the {len(files)} image files could be read")
        self.images = torch.stack(images)
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.class_names = class_names or ["all"]

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int, seed: int, epoch: int, skip: int = 0) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled full batches in [-1, 1]; the order depends only on (seed, epoch) so a resumed
        run can skip the batches it already trained on."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        n_batches = len(self) // batch_size
        if n_batches == 0:
            raise ValueError(f"only {len(self)} images, fewer than one batch of {batch_size}")
        for b in range(skip, n_batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            yield from_uint8(self.images[idx]), self.labels[idx]

    def batches_per_epoch(self, batch_size: int) -> int:
        return len(self) // batch_size


class EMA:
    """Exponential moving average of a network's weights (and a copy of its buffers).

    Sampling from the averaged generator gives visibly smoother GAN samples for free.
    """

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: nn.Module, step: int) -> None:
        # Warm-up: early on the average would be dominated by the random initialisation.
        decay = min(self.decay, (1.0 + step) / (10.0 + step))
        for ema_p, p in zip(self.module.parameters(), module.parameters()):
            ema_p.lerp_(p.detach(), 1.0 - decay)
        for ema_b, b in zip(self.module.buffers(), module.buffers()):
            ema_b.copy_(b)


class MixturePrior(nn.Module):
    """A full-covariance Gaussian mixture over codes, fitted to the codes of the training images:
    the VAE's encoder means at every checkpoint ("ex-post density estimation", Ghosh et al. 2020),
    the layout codes of a layout-conditioned GAN once. Sampling then draws codes where the
    training codes actually lie: a 20-minute VAE leaves holes in N(0, I) that its decoder turns
    into shapeless blur. Until it is fitted, sampling falls back to N(0, I)."""

    def __init__(self, latent: int, components: int):
        super().__init__()
        self.register_buffer("weights", torch.zeros(components))
        self.register_buffer("means", torch.zeros(components, latent))
        self.register_buffer("scale_tril", torch.eye(latent).repeat(components, 1, 1))

    @property
    def fitted(self) -> bool:
        return bool(self.weights.sum() > 0)

    @torch.no_grad()
    def fit(self, codes: torch.Tensor, seed: int = 0) -> None:
        from sklearn.mixture import GaussianMixture

        k = min(len(self.weights), len(codes))  # a tiny data set gets fewer components; the rest weigh 0
        mixture = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, max_iter=200,
                                  random_state=seed).fit(codes.double().cpu().numpy())
        self.weights.zero_()
        for name, value in (("weights", mixture.weights_), ("means", mixture.means_),
                            ("scale_tril", np.linalg.cholesky(mixture.covariances_))):
            buffer = getattr(self, name)
            buffer[:k] = torch.from_numpy(np.asarray(value)).to(buffer)

    def sample(self, noise: torch.Tensor, generator: torch.Generator | None, truncation: float) -> torch.Tensor:
        """Codes for standard-normal ``noise`` [n, latent]: a component drawn by its weight, its mean
        plus its Cholesky factor times ``truncation`` * noise (truncation pulls codes to the means)."""
        if not self.fitted:
            return noise * truncation
        return self.codes(noise, self.draw(len(noise), generator).to(noise.device), truncation)

    def draw(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        """``n`` component indices drawn by the components' weights (on the CPU); zeros while
        unfitted, when `codes` ignores them."""
        if not self.fitted:
            return torch.zeros(n, dtype=torch.long)
        return torch.multinomial(self.weights.float().cpu(), n, replacement=True, generator=generator)

    def codes(self, noise: torch.Tensor, which: torch.Tensor, truncation: float = 1.0) -> torch.Tensor:
        """The codes of standard-normal ``noise`` [n, latent] in components ``which`` [n] (or the
        noise itself while unfitted): an affine map per component, so a path in the noise is one in the codes."""
        if not self.fitted:
            return noise * truncation
        return self.means[which] + truncation * torch.einsum("nij,nj->ni", self.scale_tril[which], noise)


def from_uint8(images: torch.Tensor) -> torch.Tensor:
    """Stored uint8 images [N,3,H,W] -> float in [-1, 1], the range the zoo's networks work in."""
    return images.float() / 127.5 - 1.0


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] -> [0, 1], the range TIGAS and image files use."""
    return (images.clamp(-1, 1) + 1.0) / 2.0


def png_bytes(image: torch.Tensor) -> bytes:
    """[3,H,W] in [0,1] -> PNG file content."""
    buffer = BytesIO()
    Image.fromarray(to_uint8_image(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def save_grid(images: torch.Tensor, path: Path, nrow: int | None = None) -> None:
    """Write a PNG grid of [N,3,H,W] images in [0,1] atomically."""
    from torchvision.utils import make_grid

    nrow = nrow or max(1, int(math.sqrt(len(images))))
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=nrow, padding=1, pad_value=1.0)
    atomic_write_bytes(path, png_bytes(grid))


def flatten_optimizer(name: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON (hyper-parameters)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{name}.{idx}.{key}"] = value.detach().clone().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(name: str, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"optim.{name}."
    for key, value in tensors.items():
        if key.startswith(prefix):
            idx, field = key[len(prefix):].split(".", 1)
            state.setdefault(int(idx), {})[field] = value
    for key, value in meta.get("scalars", {}).items():
        idx, field = key.split(".", 1)
        state.setdefault(int(idx), {})[field] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_checkpoint(path_stem: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Write ``stem.safetensors`` then ``stem.json`` (the JSON last, so it only ever points at a
    complete weights file)."""
    weights = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path_stem.with_suffix(".safetensors"), save(weights))  # zoo checkpoints are a few MB
    atomic_write_text(path_stem.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """Accept a run folder, ``X.safetensors`` or ``X.json`` and return the stem ``X``."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint"
    stem = path.with_suffix("") if path.suffix in (".safetensors", ".json") else path
    for suffix in (".safetensors", ".json"):
        if not stem.with_suffix(suffix).is_file():
            raise FileNotFoundError(f"{stem.with_suffix(suffix)}: checkpoint file not found")
    return stem


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    stem = resolve_checkpoint(path)
    meta = json.loads(stem.with_suffix(".json").read_text())
    return load_file(str(stem.with_suffix(".safetensors"))), meta


def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = len(prefix) + 1
    return {k[start:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
