"""What an unconditional GAN can be conditioned on without labels: the colour layout of images.

``LayoutCodes`` turn an image into a 32-d code of its coarse colour layout. The DCGAN's default
conditions on that code directly (a two-stage model: codes drawn from a mixture fitted to the
training codes, images from a generator given the code; see ``DCGAN``). ``ImageClusters``, the
previous default, cuts the codes into k-means clusters that stand in for class labels.

Why condition at all: a class-conditional GAN learns recognisable CIFAR-10 objects in 20 CPU minutes where the same
networks without labels do not (see the README's zoo table): each label gives the generator one
narrower distribution to match and the projection critic one sharper question to ask. Clusters
give an unconditional model the same structure without any labels (Liu et al. 2020, "Diverse
Image Generation via Self-Conditioned GANs"); sampling draws a cluster by its share of the
training images, so from the outside the model stays unconditional.

The codes are of the coarse colour layout (8x8 mean colours, standardised, 32 principal
components): cheap, label-free and stable, and the layout (sky above, grass below, a dark mass in
the middle) is what a 20-minute generator learns first.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LAYOUT_SIDE = 8  # images are described by their LAYOUT_SIDE x LAYOUT_SIDE mean colours
COMPONENTS = 32


def layout_features(images: torch.Tensor) -> torch.Tensor:
    """uint8 or float images [N,3,H,W] -> their 8x8 mean colours [N,192] in [0, 1]."""
    images = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    return F.adaptive_avg_pool2d(images, LAYOUT_SIDE).flatten(1)


class LayoutCodes(nn.Module):
    """The colour layout of an image as a short vector: its 8x8 mean colours, standardised and
    projected on their first 32 principal components (fitted to the training images). Its
    buffers travel in the checkpoint."""

    def __init__(self):
        super().__init__()
        dim = 3 * LAYOUT_SIDE**2
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.register_buffer("projection", torch.zeros(COMPONENTS, dim))

    def codes(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [0, 1] float images [N,3,H,W] -> codes [N, 32] (differentiable for float images)."""
        features = layout_features(images.to(self.mean.device))
        return (((features - self.mean) / self.scale) @ self.projection.T).float()  # float32 also under autocast

    @torch.no_grad()
    def fit_codes(self, images: torch.Tensor, seed: int = 0) -> np.ndarray:
        """Fit to ``images`` and return their codes (float64)."""
        from sklearn.decomposition import PCA

        features = layout_features(images).double().numpy()
        mean, scale = features.mean(0), features.std(0) + 1e-6
        standardised = (features - mean) / scale
        pca = PCA(min(COMPONENTS, *standardised.shape), random_state=seed).fit(standardised)
        self.mean.copy_(torch.from_numpy(mean))
        self.scale.copy_(torch.from_numpy(scale))
        projection = torch.zeros(self.projection.shape)  # on the CPU: the buffer may already be on a GPU
        projection[: pca.n_components_] = torch.from_numpy(pca.components_).float()
        self.projection.copy_(projection)
        return standardised @ projection.double().numpy().T  # what `codes` computes, without a second pooling pass


class ImageClusters(LayoutCodes):
    """k-means over the layout codes; its buffers (the codes' fit, centroids and each cluster's
    share of the images) travel in the checkpoint, so a resumed run assigns the same clusters
    and sampling needs nothing else."""

    def __init__(self, clusters: int):
        super().__init__()
        self.register_buffer("centroids", torch.zeros(clusters, COMPONENTS))
        self.register_buffer("weights", torch.zeros(clusters))

    @property
    def fitted(self) -> bool:
        return bool(self.weights.sum() > 0)

    @torch.no_grad()
    def fit(self, images: torch.Tensor, seed: int = 0) -> None:
        from sklearn.cluster import KMeans

        clusters = len(self.weights)
        if len(images) < clusters:
            raise ValueError(f"{len(images)} training images cannot form {clusters} clusters; lower `clusters`")
        coordinates = self.fit_codes(images, seed)
        kmeans = KMeans(clusters, n_init=3, random_state=seed).fit(coordinates)
        self.centroids.copy_(torch.from_numpy(kmeans.cluster_centers_))
        counts = np.bincount(kmeans.labels_, minlength=clusters)
        self.weights.copy_(torch.from_numpy(counts / counts.sum()))

    @torch.no_grad()
    def assign(self, images: torch.Tensor) -> torch.Tensor:
        """The nearest cluster of each image (uint8 or [0, 1] float [N,3,H,W])."""
        if not self.fitted:
            raise RuntimeError("ImageClusters.assign before fit")
        return torch.cat([torch.cdist(self.codes(chunk), self.centroids).argmin(1).cpu() for chunk in images.split(1000)])

    def draw(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` cluster ids drawn by the clusters' shares of the training images (uniform before fit)."""
        weights = self.weights.float().cpu() if self.fitted else torch.ones(len(self.weights))
        return torch.multinomial(weights, n, replacement=True, generator=generator)
