"""The README's style-transfer picture: scikit-image's cat painted in three scikit-image styles,
each result's TIGAS score and losses printed as a Markdown table.

    python benchmarks/style_transfer_figure.py --out docs/style_transfer.jpg --threads 1
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

STYLES = ("immunohistochemistry", "colorwheel", "hubble_deep_field")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/style_transfer.jpg"), help=".jpg (small, for the docs) or .png")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import skimage.data

    from tigas_core import TIGAS
    from tigas_core.metrics.perceptual import LiteFeatures
    from tigas_core.style_transfer import TAPS, transfer_and_score

    scorer, features = TIGAS(), LiteFeatures(taps=TAPS)
    content = np.asarray(skimage.data.chelsea())
    content_score = float(scorer(torch.from_numpy(content).permute(2, 0, 1).float() / 255.0))
    print(f"| content `skimage.data.chelsea` | TIGAS {content_score:.3f} |")
    print("| style | TIGAS score of the result | content loss (end) | style loss (start -> end) |\n|---|---|---|---|")
    tiles = []
    for name in STYLES:
        style = np.asarray(getattr(skimage.data, name)())
        result = transfer_and_score(content, style, args.size, args.steps, scorer=scorer, features=features)
        losses = f"{result.content_loss[-1]:.3f} | {result.style_loss[0]:.3f} -> {result.style_loss[-1]:.3f}"
        print(f"| `{name}` | {result.score:.3f} | {losses} |")
        h, w = result.image.shape[-2:]
        thumb = F.interpolate(torch.from_numpy(style).permute(2, 0, 1)[None].float() / 255.0, size=(h, h), mode="area")[0]
        tiles.append((thumb, result.image))
    h, w = tiles[0][1].shape[-2:]
    original = F.interpolate(torch.from_numpy(content).permute(2, 0, 1)[None].float() / 255.0, size=(h, w), mode="area")[0]
    # one row per style: the content, the style (square, padded white to the content's width), the result
    rows = []
    for thumb, result in tiles:
        padded = torch.ones(3, h, w)
        padded[:, :, (w - h) // 2:(w - h) // 2 + h] = thumb
        rows += [original, padded, result]
    from torchvision.utils import make_grid

    from tigas_core.io import to_uint8_image

    grid = to_uint8_image(make_grid(torch.stack(rows).clamp(0, 1), nrow=3, padding=1, pad_value=1.0))
    Image.fromarray(grid).save(args.out, quality=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
