"""A style-mixing grid of a stylegan checkpoint: the first row's images give the fine styles (from
``--crossover`` on), the first column's the coarse ones; every other cell mixes its row and column.

    python benchmarks/stylegan_mixing.py runs/stylegan --out docs/stylegan_mixing.jpg --crossover 3
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--out", type=Path, default=Path("docs/stylegan_mixing.jpg"))
    parser.add_argument("--crossover", type=int, default=3, help="layers below it take the coarse styles (of 7 at 32 px)")
    parser.add_argument("--n", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=3, help="pixel repeat for viewing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from torchvision.utils import make_grid

    from tigas_core.generators import load_for_sampling
    from tigas_core.io import to_uint8_image

    model = load_for_sampling(args.checkpoint, expected_model="stylegan")
    noise = torch.Generator().manual_seed(args.seed)
    coarse, fine = model.latent(args.n, noise), model.latent(args.n, noise)
    fine_row = model.sample_mixed(fine, fine, 0, seed=args.seed)
    coarse_column = model.sample_mixed(coarse, coarse, 0, seed=args.seed)
    cells = [torch.ones_like(fine_row[0]), *fine_row]
    for i in range(args.n):
        mixed = model.sample_mixed(coarse[i:i + 1].expand(args.n, -1), fine, args.crossover, seed=args.seed)
        cells += [coarse_column[i], *mixed]
    grid = make_grid(torch.stack(cells), nrow=args.n + 1, padding=1, pad_value=1.0)
    grid = grid.repeat_interleave(args.scale, dim=1).repeat_interleave(args.scale, dim=2)
    Image.fromarray(to_uint8_image(grid)).save(args.out, quality=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
