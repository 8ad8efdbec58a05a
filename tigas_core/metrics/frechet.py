"""Fréchet distance between two image sets, with pluggable feature extractors.

* ``TIGASFeatures``: TIGAS fused features ("FD-TIGAS"); works offline with any TIGAS weights.
* ``InceptionFeatures``: Inception-v3 pool3 (2048-d) from torchvision's ImageNet weights, used
  only when they are already in the local torch hub cache; nothing is ever downloaded. These are
  not the TF-ported weights of the original FID code, so values are comparable between runs of
  this project, not with published FID tables.

Statistics stream: features are folded into running float64 sums, so 50k images cost one
D x D matrix, not N x D.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F

from tigas_core.io import TIGASInputError, load_image


class StreamingStats:
    """Running mean and covariance of feature vectors (float64 sums; unbiased covariance)."""

    def __init__(self, dim: int):
        self.dim = dim
        self.count = 0
        self._sum = np.zeros(dim, np.float64)
        self._outer = np.zeros((dim, dim), np.float64)

    def update(self, features: np.ndarray | torch.Tensor) -> None:
        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().numpy()
        features = np.asarray(features, np.float64).reshape(-1, self.dim)
        self.count += len(features)
        self._sum += features.sum(axis=0)
        self._outer += features.T @ features

    @property
    def mean(self) -> np.ndarray:
        return self._sum / max(self.count, 1)

    @property
    def cov(self) -> np.ndarray:
        if self.count < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, have {self.count}")
        mean = self.mean
        return (self._outer - self.count * np.outer(mean, mean)) / (self.count - 1)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) between two Gaussians.

    A near-singular product (fewer samples than dimensions) gets ``eps`` on the diagonals before
    the matrix square root; the imaginary part sqrtm leaves from rounding is dropped.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shape mismatch: means {mu1.shape} vs {mu2.shape}, covariances {sigma1.shape} vs {sigma2.shape}")
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma1)) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(max(0.0, diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)))


class FeatureExtractor(Protocol):
    name: str
    dim: int

    def features_for_files(self, paths: Sequence[Path], batch_size: int) -> tuple[np.ndarray, list[str]]:
        """Features [N_ok, dim] of the readable files and one error line per unreadable file."""


class TIGASFeatures:
    """TIGAS fused features (``features['fused']``), through ``TIGAS.features_for_files``."""

    name = "tigas"

    def __init__(self, tigas=None):
        from tigas_core.api import TIGAS

        self.tigas = tigas if tigas is not None else TIGAS()
        self.dim = int(self.tigas.config.feature_dim)

    def features_for_files(self, paths: Sequence[Path], batch_size: int = 32) -> tuple[np.ndarray, list[str]]:
        features, table = self.tigas.features_for_files(paths, batch_size=batch_size)
        errors = [f"{row.path}: {row.error}" for row in table.itertuples() if row.error]
        return features.astype(np.float64), errors


class InceptionUnavailableError(FileNotFoundError):
    """Inception-v3 weights are not in the local torch cache (and are never downloaded)."""


def inception_weights_path() -> Path:
    """Where torchvision keeps its Inception-v3 ImageNet weights in the torch hub cache."""
    from torchvision.models import Inception_V3_Weights

    filename = os.path.basename(Inception_V3_Weights.IMAGENET1K_V1.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def load_inception(device: str | torch.device = "cpu") -> torch.nn.Module:
    """Inception-v3 with ImageNet weights from the local cache; raises InceptionUnavailableError
    (with the path to place the file at) instead of downloading."""
    from torchvision.models import inception_v3

    path = inception_weights_path()
    if not path.is_file():
        raise InceptionUnavailableError(
            f"Inception-v3 weights not found at {path}; this project never downloads them. Put torchvision's "
            f"{path.name} there (or set TORCH_HOME) or use --features tigas, which works offline."
        )
    model = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False).to(device)


class InceptionFeatures:
    """Inception-v3 pool3 (2048-d) features, or class probabilities with ``output='probs'`` (IS)."""

    def __init__(self, output: str = "pool3", device: str | torch.device = "cpu", model: torch.nn.Module | None = None):
        """``model``: an already loaded Inception-v3 to share (FD and IS from one network)."""
        if output not in ("pool3", "probs"):
            raise ValueError(f"output must be 'pool3' or 'probs', got {output!r}")
        self.device = torch.device(device)
        self.model = model if model is not None else load_inception(self.device)
        self.output = output
        self.name = "inception" if output == "pool3" else "inception-probs"
        self.dim = 2048 if output == "pool3" else 1000

    @staticmethod
    def resize(images: torch.Tensor) -> torch.Tensor:
        """The whole image to 299 x 299, as the FID reference code does (no crop)."""
        if images.shape[-2:] == (299, 299):
            return images
        return F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] in [0,1] -> [B, dim]. The Google weights expect 299 px inputs in [-1, 1]."""
        x = self.resize(images.to(self.device)) * 2.0 - 1.0
        m = self.model
        pooled = None

        def grab(_module, _inputs, output):
            nonlocal pooled
            pooled = output.flatten(1)

        handle = m.avgpool.register_forward_hook(grab)
        try:
            logits = m(x)
        finally:
            handle.remove()
        return pooled.float().cpu() if self.output == "pool3" else torch.softmax(logits.float(), dim=1).cpu()

    def features_for_files(self, paths: Sequence[Path], batch_size: int = 32) -> tuple[np.ndarray, list[str]]:
        chunks, errors, batch = [], [], []
        for i, path in enumerate(paths):
            try:
                batch.append(self.resize(load_image(path).unsqueeze(0))[0])
            except TIGASInputError as exc:
                errors.append(str(exc))
            if batch and (len(batch) == batch_size or i == len(paths) - 1):
                chunks.append(self.embed(torch.stack(batch)).numpy())
                batch = []
        features = np.concatenate(chunks).astype(np.float64) if chunks else np.zeros((0, self.dim))
        return features, errors


def make_extractor(kind: str, tigas=None, device: str | torch.device = "cpu") -> FeatureExtractor:
    if kind == "tigas":
        return TIGASFeatures(tigas)
    if kind == "inception":
        return InceptionFeatures("pool3", device)
    raise ValueError(f"unknown features {kind!r}; use 'tigas' or 'inception'")


class FolderFeatures:
    """Streaming statistics of one image set plus a bounded uniform sample of its features (for
    KID), filled chunk by chunk so memory does not grow with the number of images."""

    def __init__(self, dim: int, keep: int = 5000, seed: int = 0):
        self.stats = StreamingStats(dim)
        self.keep = keep
        self.kept = np.zeros((0, dim))
        self.errors: list[str] = []
        self._rng = np.random.default_rng(seed)
        self._seen = 0

    def add(self, features: np.ndarray) -> None:
        """Update the statistics; reservoir-sample rows into ``kept`` (Vitter's algorithm R)."""
        self.stats.update(features)
        rows = list(self.kept)
        for row in features:
            self._seen += 1
            if len(rows) < self.keep:
                rows.append(row)
            else:
                j = int(self._rng.integers(0, self._seen))
                if j < self.keep:
                    rows[j] = row
        self.kept = np.asarray(rows).reshape(-1, self.stats.dim)


def folder_features(paths: Iterable[Path], extractor: FeatureExtractor, batch_size: int = 32,
                    chunk: int = 512, keep: int = 5000, progress: bool = False) -> FolderFeatures:
    paths = list(paths)
    result = FolderFeatures(extractor.dim, keep)
    starts = range(0, len(paths), chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=f"{extractor.name} features", unit="chunk")
    for start in starts:
        features, errors = extractor.features_for_files(paths[start : start + chunk], batch_size)
        result.errors.extend(errors)
        if len(features):
            result.add(features)
    return result


def frechet_between(a: FolderFeatures, b: FolderFeatures) -> float:
    return frechet_distance(a.stats.mean, a.stats.cov, b.stats.mean, b.stats.cov)
