"""Torch datasets over image records, and class/generator-balanced sampling.

Images are decoded with `tigas_core.io.load_image`. Training views are augmented and randomly
cropped; evaluation views use `tigas_core.io.preprocess` (centre crop) exactly as `TIGAS()` does.
"""
from __future__ import annotations

import logging
import random
from collections import Counter

import torch
from torch.utils.data import Dataset, Sampler

from tigas_core.data.augment import AugmentSpec, get_level, native_view
from tigas_core.data.records import ImageRecord
from tigas_core.io import TIGASInputError, load_image, preprocess, resize_shorter_side

log = logging.getLogger("tigas.data")
# Training images are cached with the shorter side at most this many views wide: views keep the
# pixel scale, so the cache must not shrink a photo much, yet a 2048 px fake should not fill memory.
CACHE_SIDE_VIEWS = 4


class ImageDataset(Dataset):
    """Items are ``(image [3,S,S], label float, index)``.

    ``train=True`` makes an augmented pixel-scale view at the given level (`native_view`);
    ``train=False`` centre-crops with `preprocess`. Decoded images are cached (as uint8, shrunk to
    at most CACHE_SIDE_VIEWS views on the shorter side for training) because a handful of 2048 px fakes would otherwise dominate the
    epoch time. An unreadable file is logged once and replaced by the next readable record, so one
    bad file never stops a run.
    """

    def __init__(
        self,
        records: list[ImageRecord],
        img_size: int,
        *,
        train: bool = False,
        augment_level: str = "none",
        seed: int = 0,
        cache: bool = True,
    ):
        if not records:
            raise ValueError("dataset needs at least one record")
        self.records = records
        self.img_size = img_size
        self.train = train
        self.spec: AugmentSpec = get_level(augment_level)
        self.seed = seed
        self.epoch = 0
        self.cache_side = CACHE_SIDE_VIEWS * img_size if train else None
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Make augmentation depend on the epoch, so each epoch sees new views (deterministically)."""
        self.epoch = epoch

    def _decode(self, index: int) -> torch.Tensor:
        if self._cache is not None and index in self._cache:
            return self._cache[index].float() / 255.0
        image = load_image(self.records[index].path)
        if self.cache_side and min(image.shape[-2:]) > self.cache_side:
            image = resize_shorter_side(image[None], self.cache_side)[0].clamp(0, 1)
        if self._cache is not None:
            self._cache[index] = (image * 255.0 + 0.5).to(torch.uint8)
            image = self._cache[index].float() / 255.0
        return image

    def __getitem__(self, index: int):
        for attempt in range(len(self.records)):
            current = (index + attempt) % len(self.records)
            if current in self._bad:
                continue
            try:
                image = self._decode(current)
                break
            except TIGASInputError as exc:
                self._bad.add(current)
                log.warning("skipping unreadable training image: %s", exc)
        else:
            raise RuntimeError("no readable image in the dataset")
        if self.train:
            rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
            view = native_view(image, self.img_size, self.spec, rng)
        else:
            view = preprocess(image, self.img_size)
        return view, torch.tensor(float(self.records[current].label)), current


def balanced_weights(keys: list[tuple[int, str]], power: float = 0.5) -> torch.Tensor:
    """Sampling weight of each item given its (label, group): both classes equally likely, and a
    group's share of its class growing as (its size) ** power. A group is a generator for fakes
    and a photo source for reals."""
    counts = Counter(keys)
    class_mass: Counter = Counter()
    for (label, _), n in counts.items():
        class_mass[label] += n**power
    # P(item) = 1/n_classes * n_g^p / sum_g' n_g'^p * 1/n_g
    return torch.tensor([counts[key] ** power / (len(class_mass) * class_mass[key[0]] * counts[key]) for key in keys],
                        dtype=torch.double)


class BalancedSampler(Sampler[int]):
    """Draw reals and fakes equally often; within a class, a generator's (or photo source's) share
    grows as its size to the power ``generator_balance`` (default 0.5: the square root).

    With ~50x more real photos than generated images, uniform sampling would teach the model to
    say "real". Giving every generator the same share (power 0) would instead replay a one-image
    generator thousands of times, and power 1 lets thousands of zoo outputs drown a few showcase
    images; the square root is the compromise. Under DDP every rank draws the same
    seeded sequence for the epoch and keeps its own slice ``rank::world_size``, which is what
    DistributedSampler does for unweighted data.
    """

    def __init__(self, records: list[ImageRecord], num_samples: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 generator_balance: float = 0.5):
        self.weights = balanced_weights([(r.label, r.source or r.generator) for r in records], generator_balance)
        self.num_samples = -(-num_samples // world_size)  # per rank, rounded up so ranks stay in step
        self.total = self.num_samples * world_size
        self.seed, self.rank, self.world_size, self.epoch = seed, rank, world_size, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        draws = torch.multinomial(self.weights, self.total, replacement=True, generator=generator)
        return iter(draws[self.rank :: self.world_size].tolist())
