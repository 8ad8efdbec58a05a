"""How stable is a TIGAS score when the same photo is seen slightly differently?

    python benchmarks/view_stability.py --data ../shared/data [--weights DIR] [--every 3]

A realism score should not care whether a photo is mirrored: a horizontally flipped photograph is
just as real (and a greyscale one is still a photograph). This scores the high-resolution images
of the data folder (real/imagenet against every fake/<generator> except the 64 px dcgan-celeba
tiles) as they are, mirrored, rotated by 90 degrees, in greyscale and shifted by one pixel of the
model's view, each scored from one view; then as given, mirrored and shifted with
``TIGAS(views="mirror")`` and ``TIGAS(views="jitter")`` (``--views`` on the command line: the mean
logit over the image and its mirror, or over 18 shifted views of both). For each row it prints
the mean score of both classes and the AUROC, and how much the row moves the scores of the same
files against the same scorer's "as is" row (mean absolute change, Pearson correlation).
Writes benchmarks/results/view_stability.md.
"""
from __future__ import annotations

import argparse
import glob
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from tigas_core import TIGAS
from tigas_core.io import load_image


def input_views(img_size: int) -> dict:
    """What is done to each image before scoring; "shifted" moves the model's view by one pixel
    (the original loses that many columns on the left)."""
    return {
        "as is": lambda image: image,
        "mirrored": lambda image: image.flip(-1),
        "rotated 90°": lambda image: torch.rot90(image, 1, (1, 2)),
        "greyscale": lambda image: image.mean(dim=0, keepdim=True).expand(3, -1, -1),
        "shifted 1 view px": lambda image: image[..., max(1, round(min(image.shape[-2:]) / img_size)):],
    }


LOW_RESOLUTION = {"dcgan-celeba"}  # 64 px tiles: not the high-resolution case this measures


AVERAGED_INPUTS = ("as is", "mirrored", "shifted 1 view px")
AVERAGED_VIEWS = ("mirror", "jitter")


def score_views(tigas: TIGAS, paths: list[str]) -> dict[str, np.ndarray]:
    """Scores per input view with one model view, then with views="mirror" and "jitter" on the
    image as is and mirrored."""
    views = input_views(tigas.img_size)
    averaged = {mode: TIGAS(model=tigas.model, device=tigas.device, views=mode) for mode in AVERAGED_VIEWS}
    rows = [*views, *(f"views={mode!r}, {name}" for mode in AVERAGED_VIEWS for name in AVERAGED_INPUTS)]
    scores = {name: [] for name in rows}
    for path in paths:
        image = load_image(path)
        for name, view in views.items():
            scores[name].append(float(tigas(view(image))))
        for mode, scorer in averaged.items():
            for name in AVERAGED_INPUTS:
                scores[f"views={mode!r}, {name}"].append(float(scorer(views[name](image))))
    return {name: np.asarray(values) for name, values in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data", type=Path)
    parser.add_argument("--weights", help="TIGAS weights (default: bundled)")
    parser.add_argument("--every", type=int, default=1, help="use every N-th real image (the fakes are few: all are used)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "view_stability.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tigas = TIGAS(args.weights)
    reals = sorted(glob.glob(str(args.data / "real" / "imagenet" / "*")))[:: args.every]
    fakes = sorted(p for folder in sorted((args.data / "fake").iterdir()) if folder.name not in LOW_RESOLUTION
                   for p in glob.glob(str(folder / "*")))
    real, fake = score_views(tigas, reals), score_views(tigas, fakes)
    labels = np.r_[np.ones(len(reals)), np.zeros(len(fakes))]

    lines = [
        f"# TIGAS score stability under views ({tigas.weights_source.split(' ')[0]} weights)",
        "",
        f"{len(reals)} ImageNet photos (real) against {len(fakes)} high-resolution generated images "
        f"(`../shared/data/fake/*` without {', '.join(sorted(LOW_RESOLUTION))}). "
        f"Command: `python benchmarks/view_stability.py --data ../shared/data --every {args.every}`.",
        "",
        "The last two columns compare each row with the same scorer's \"as is\" row.",
        "",
        "| view | mean score, real | mean score, generated | AUROC | mean abs. change vs as is | correlation with as is |",
        "|---|---|---|---|---|---|",
    ]
    for name in real:
        scorer, _, view = name.rpartition(", ")
        reference = f"{scorer}, as is" if scorer else "as is"
        both = np.r_[real[name], fake[name]]
        upright = np.r_[real[reference], fake[reference]]
        change = "" if name == reference else f"{np.abs(both - upright).mean():.3f}"
        correlation = "" if name == reference else f"{np.corrcoef(both, upright)[0, 1]:.2f}"
        lines.append(f"| {name} | {real[name].mean():.3f} | {fake[name].mean():.3f} | "
                     f"{roc_auc_score(labels, both):.3f} | {change} | {correlation} |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
