"""Do photos passed through an autoencoder make useful extra fakes? Measured out of fold, not taken.

Most of today's generators decode their images from a latent with a convolutional decoder. A
photo encoded and decoded by such an autoencoder is a fake with exactly the photo's content, so it
might teach the read-out the decoder's traces rather than content. Here a small autoencoder of that
shape (8x down to 8 channels, nearest-neighbour upsampling, GroupNorm residual blocks) is trained
on the photos of ../shared/data (those of 128 px or more), every photo is reconstructed, and the
reconstructions are added to the training fakes of every leave-one-out fold, except those of the
photo sources that fold holds out. The read-out alone (``--steps 0``) is compared with the same
read-out without them (benchmarks/results/loo_readout_only.md).

    python benchmarks/autoencoder_fakes_study.py train --minutes 20 --lr 1e-3
    python benchmarks/autoencoder_fakes_study.py train --minutes 14 --lr 5e-4 --resume
    python benchmarks/autoencoder_fakes_study.py reconstruct      # runs/recon/fake/recon-ae/<source>__<name>.png
    python benchmarks/autoencoder_fakes_study.py measure          # runs/recon/train.safetensors
    python benchmarks/autoencoder_fakes_study.py loo --share 1.0  # needs runs/score_up3 (train_score.py measure)
    python benchmarks/autoencoder_fakes_study.py loo --share 0.2  # a fifth of the reconstructions
    python benchmarks/autoencoder_fakes_study.py report           # benchmarks/results/autoencoder_fakes_study.md again

The autoencoder is trained for a time budget (the runs above: 1,460 and 1,040 steps of 16 crops of
96 px on the 2-core CPU), with an L1 loss on the pixels and on their horizontal and vertical differences.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from readout_study import named_generator_auroc  # noqa: E402

from tigas_core.config import TIGASConfig, atomic_write_text  # noqa: E402
from tigas_core.data import REAL_LABEL, get_level, load_records  # noqa: E402
from tigas_core.io import load_image, resize_shorter_side  # noqa: E402
from tigas_core.training import leave_one_out as loo  # noqa: E402
from tigas_core.training.feature_cache import FeatureCache, logits_from_cache, measure_records, training_views  # noqa: E402

WORK = Path("runs")
RESULTS = Path(__file__).parent / "results" / "autoencoder_fakes_study.json"
BASELINE = Path(__file__).parent / "results" / "loo_readout_only.json"  # the same read-out without reconstructions
MIN_SIDE, TRAIN_SIDE, CROP, BATCH = 128, 256, 96, 16
RECONSTRUCTION_SIDES = (256, 320, 384, 512)  # the shorter side a photo is reconstructed at, as generators' outputs


class Residual(nn.Module):
    """GroupNorm-SiLU-conv twice, added to the input (through a 1x1 conv when the width changes)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(nn.GroupNorm(8, cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
                                  nn.GroupNorm(8, cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.body(x)


class PhotoAutoEncoder(nn.Module):
    """8x down to ``latent`` channels and back: a latent-diffusion VAE's shape, much smaller."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128), latent: int = 8):
        super().__init__()
        encoder: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1)]
        cin = widths[0]
        for width in widths:
            encoder += [Residual(cin, width), nn.Conv2d(width, width, 3, stride=2, padding=1)]
            cin = width
        encoder += [Residual(cin, cin), nn.GroupNorm(8, cin), nn.SiLU(), nn.Conv2d(cin, latent, 1)]
        decoder: list[nn.Module] = [nn.Conv2d(latent, cin, 3, padding=1), Residual(cin, cin)]
        for width in reversed(widths):
            decoder += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cin, 3, padding=1), Residual(cin, width)]
            cin = width
        decoder += [nn.GroupNorm(8, cin), nn.SiLU(), nn.Conv2d(cin, 3, 3, padding=1)]
        self.encoder, self.decoder = nn.Sequential(*encoder), nn.Sequential(*decoder)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.decoder(self.encoder(images * 2 - 1)) * 0.5 + 0.5).clamp(0, 1)


def photo_records(data: Path) -> list:
    return [r for r in load_records([str(data)]) if r.label == REAL_LABEL and r.source != "cifar10"]


def reconstruction_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 on the pixels and on their differences along each axis (the edges, so less blur)."""
    return sum(F.l1_loss(output.diff(dim=d), target.diff(dim=d)) for d in (-1, -2)) + F.l1_loss(output, target)


def random_crops(images: list[torch.Tensor], rng: random.Random) -> torch.Tensor:
    crops = []
    for _ in range(BATCH):
        image = images[rng.randrange(len(images))]
        top, left = rng.randrange(image.shape[-2] - CROP + 1), rng.randrange(image.shape[-1] - CROP + 1)
        crop = image[:, top:top + CROP, left:left + CROP]
        crops.append(crop.flip(-1) if rng.random() < 0.5 else crop)
    return torch.stack(crops)


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    rng = random.Random(0)
    images = [resize_shorter_side(image[None], TRAIN_SIDE)[0] if min(image.shape[-2:]) > TRAIN_SIDE else image
              for image in (load_image(r.path) for r in photo_records(args.data)) if min(image.shape[-2:]) >= MIN_SIDE]
    model, path = PhotoAutoEncoder(), args.work / "ae" / "ae.pt"
    if args.resume:
        model.load_state_dict(torch.load(path, weights_only=True))
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    tick, step, budget = time.time(), 0, args.minutes * 60
    while time.time() - tick < budget:
        for group in optimiser.param_groups:  # cosine decay over the time budget
            group["lr"] = args.lr * 0.5 * (1 + np.cos(np.pi * (time.time() - tick) / budget))
        crops = random_crops(images, rng)
        loss = reconstruction_loss(model(crops), crops)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if step % 100 == 0:
            print(f"step {step} {time.time() - tick:.0f} s loss {loss.item():.4f}", flush=True)
            torch.save(model.state_dict(), path)
    torch.save(model.state_dict(), path)
    print(f"{step} steps; {path}")


@torch.no_grad()
def reconstruct(args: argparse.Namespace) -> None:
    model = PhotoAutoEncoder()
    model.load_state_dict(torch.load(args.work / "ae" / "ae.pt", weights_only=True))
    model.eval()
    out = args.work / "recon" / "fake" / "recon-ae"
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    for record in photo_records(args.data):
        target = out / f"{record.source}__{Path(record.path).stem}.png"
        side = rng.choice(RECONSTRUCTION_SIDES)  # drawn for every photo, so a resumed run picks the same sides
        if target.exists():
            continue
        image = load_image(record.path)[None]
        if min(image.shape[-2:]) > side:
            image = resize_shorter_side(image, side)
        height, width = (s // 8 * 8 for s in image.shape[-2:])
        output = model(image[..., :height, :width])[0]
        Image.fromarray((output.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(target)


def measure(args: argparse.Namespace) -> None:
    """Training views of the reconstructions, made as `train_score.py measure` makes them (3 + 3 upload views)."""
    config = TIGASConfig()
    make = training_views(config.img_size, get_level("native"), 3, 1, 3)
    cache = measure_records(loo.fresh_model(config, 0), load_records([str(args.work / "recon")]), make, seed=0, batch_size=32)
    cache.save(args.work / "recon" / "train.safetensors")


def fold_training_rows(train: FeatureCache, index: int, first_extra: int, chosen: set[int]) -> torch.Tensor:
    """The fold's training rows, and of the reconstructions only the ``chosen`` ones whose photo
    source the fold does not hold out (their content would otherwise be trained on as generated)."""
    sources = {s.split("/")[0] for s in loo.DEFAULT_FOLDS[index][1]}
    kept = []
    for row in loo.fold_rows(train, index, False).tolist():
        record = int(train.record_index[row])
        origin = Path(train.records[record].path).name.split("__")[0]
        if record < first_extra or (record - first_extra in chosen and origin not in sources):
            kept.append(row)
    return torch.tensor(kept)


def run_loo(args: argparse.Namespace) -> None:
    base = FeatureCache.load(args.score / "train.safetensors")
    test = FeatureCache.load(args.score / "eval.safetensors")
    extra = FeatureCache.load(args.work / "recon" / "train.safetensors")
    chosen = set(random.Random(0).sample(range(len(extra.records)), int(round(len(extra.records) * args.share))))
    train, recipe = FeatureCache.concat([base, extra]), loo.Recipe(steps=0)
    logits = np.full(len(test), np.nan)
    for index in range(len(loo.DEFAULT_FOLDS)):
        test_rows = loo.fold_rows(test, index, True)
        model = loo.fresh_model(TIGASConfig(), recipe.seed + index)
        recipe.train(model, train, fold_training_rows(train, index, len(base.records), chosen), recipe.seed + index)
        logits[test_rows.numpy()] = logits_from_cache(model, test, test_rows)["score"]
    temperature, bias = loo.calibrate(test, logits)
    result = loo.report(test, logits, temperature, bias, loo.choose_threshold(test, logits, temperature, bias))
    stored = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    stored[f"share {args.share}"] = summarise(result)
    atomic_write_text(RESULTS, json.dumps(stored, indent=1) + "\n")
    report(args)


def summarise(result: dict) -> dict:
    """What the study compares of a `leave_one_out.report`: per condition the means and each generator's AUROC."""
    return {"threshold": result["threshold"],
            **{condition: {"mean": found["mean_generator_auroc"], "all": found["auroc_all"], "named": named_generator_auroc(found),
                           "generators": {g: round(v["auroc"], 3) for g, v in found["generators"].items()}}
               for condition, found in result["conditions"].items()}}


def render(stored: dict) -> str:
    """Each run beside the read-out without reconstructions: means, then every generator at web."""
    runs = {"without": summarise(json.loads(BASELINE.read_text())),
            **{f"with reconstructions, {name}": run for name, run in sorted(stored.items())}}
    lines = ["# Photos passed through an autoencoder as extra training fakes (read-out alone, out of fold)", "",
             "`python benchmarks/autoencoder_fakes_study.py loo --share S` (the steps before it: the script's docstring)", "",
             "| run | mean clean | mean web | named clean | named web | all vs all web | threshold |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {run['clean']['mean']:.3f} | {run['web']['mean']:.3f} | {run['clean']['named']:.3f} | "
              f"{run['web']['named']:.3f} | {run['web']['all']:.3f} | {run['threshold']:.2f} |" for name, run in runs.items()]
    lines += ["", "AUROC at web, each generator against the held-out photos of its size:", "",
              "| generator | " + " | ".join(runs) + " |", "|---" * (len(runs) + 1) + "|"]
    lines += [f"| {g} | " + " | ".join(f"{run['web']['generators'][g]:.3f}" for run in runs.values()) + " |"
              for g in runs["without"]["web"]["generators"]]
    return "\n".join(lines) + "\n"


def report(args: argparse.Namespace) -> None:
    atomic_write_text(RESULTS.with_suffix(".md"), render(json.loads(RESULTS.read_text())))
    print(RESULTS.with_suffix(".md").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("train", "reconstruct", "measure", "loo", "report"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=WORK, help="where the autoencoder and reconstructions go")
    parser.add_argument("--score", type=Path, default=WORK / "score_up3", help="the cache of train_score.py measure")
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--share", type=float, default=1.0, help="share of the reconstructions trained on")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"train": train, "reconstruct": reconstruct, "measure": measure, "loo": run_loo, "report": report}[args.step](args)


if __name__ == "__main__":
    main()
