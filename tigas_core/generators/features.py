"""A critic that looks through a frozen feature network (Projected GANs, Sauer et al. 2021).

An unconditional 20-minute CPU GAN learns the layouts of CIFAR-10 images but not their objects:
its critic, trained from scratch on 10k images, judges colour and texture long before it judges
shape. A feature network trained first to tell the class folders of the images apart and then
frozen gives a second critic object-level features to judge from the first step on. Small heads
with spectral norm read its feature maps at three scales; the generator gets gradients through
the frozen network. Sauer et al. use an ImageNet network; here the network is trained inside the
run's time budget on the run's own labelled images, since nothing can be downloaded, so a DCGAN
with this critic is unconditional when it samples but not label-free when it trains. (Trained
instead to tell which of four rotations an image was turned by, a label-free task, the network
did not help: benchmarks/zoo_experiments.md.)
"""
from __future__ import annotations

import logging
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from tigas_core.generators.common import from_uint8

log = logging.getLogger("tigas.zoo")

WIDTHS = (32, 64, 128)  # channels at 16, 8 and 4 px: the DCGAN critic's own widths, so it costs about as much


class FeatureNet(nn.Module):
    """Three strided convolutions (32 -> 16 -> 8 -> 4 px) with BatchNorm. Once trained (with a
    linear head on the pooled 4 px map that is then dropped) it is frozen and stays in eval mode."""

    def __init__(self):
        super().__init__()
        stages, c_in = [], 3
        for c_out in WIDTHS:
            stages.append(nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out),
                                        nn.LeakyReLU(0.2, True), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
                                        nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, True)))
            c_in = c_out
        self.stages = nn.ModuleList(stages)
        self.register_buffer("trained", torch.zeros((), dtype=torch.bool))

    def train(self, mode: bool = True) -> FeatureNet:
        return super().train(mode and not bool(self.trained))  # frozen: BatchNorm keeps its statistics

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        maps, x = [], images
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps


def _flip_and_shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    flip = torch.rand(len(images), generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(3), images)
    dx, dy = (int(v) for v in torch.randint(-3, 4, (2,), generator=generator))
    return torch.roll(F.pad(images, (3, 3, 3, 3), mode="reflect"), (dy, dx), dims=(2, 3))[:, :, 3:-3, 3:-3]


def train_feature_net(net: FeatureNet, images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int,
                      batch_size: int = 128) -> None:
    """Train ``net`` (with a temporary linear head) to predict the class ``labels`` of uint8
    ``images`` [N,3,H,W] under flips and small shifts, then freeze it."""
    if len(labels.unique()) < 2:
        raise ValueError("feature_critic needs class sub-folders in --data: its feature network learns to tell them apart")
    batch_size = min(batch_size, len(images))
    generator = torch.Generator().manual_seed(seed)
    device = next(net.parameters()).device
    head = nn.Linear(WIDTHS[-1], int(labels.max()) + 1).to(device)
    optimizer = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=2e-3)
    steps = epochs * (len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=max(1, steps))
    start, correct, seen = time.monotonic(), 0, 0
    net.train(True)
    for _epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        correct = seen = 0
        for b in range(len(images) // batch_size):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x = _flip_and_shift(from_uint8(images[idx]), generator)
            y = labels[idx]
            logits = head(net.feature_maps(x.to(device))[-1].mean(dim=(2, 3)))
            loss = F.cross_entropy(logits.float(), y.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            correct += int((logits.argmax(1).cpu() == y).sum())
            seen += len(y)
    net.trained.fill_(True)
    net.requires_grad_(False)
    net.eval()
    log.info("feature network trained on the class folders: %d epochs, %.0f s, training accuracy %.1f%%", epochs,
             time.monotonic() - start, 100.0 * correct / max(1, seen))


class ProjectedCritic(nn.Module):
    """One small spectral-norm head per feature scale, each strided down to the smallest map
    (4x4 at 32 px) and a linear logit: the critic's outputs are [N, 3], one column per scale
    (a loss sums them)."""

    def __init__(self, img_size: int = 32):
        super().__init__()
        side = max(1, img_size // 2 ** len(WIDTHS))  # the side of the last feature map
        heads = []
        for level, width in enumerate(WIDTHS):
            layers: list[nn.Module] = []
            c = width
            for _ in range(len(WIDTHS) - 1 - level):
                layers += [spectral_norm(nn.Conv2d(c, c * 2, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
                c *= 2
            layers += [spectral_norm(nn.Conv2d(c, c, 3, 1, 1)), nn.LeakyReLU(0.2, True), nn.Flatten(),
                       spectral_norm(nn.Linear(c * side * side, 1))]
            heads.append(nn.Sequential(*layers))
        self.heads = nn.ModuleList(heads)

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([head(m) for head, m in zip(self.heads, maps)], dim=1)
