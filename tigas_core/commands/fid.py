"""Frechet distance (and KID) between two image folders, on TIGAS or Inception-v3 features.

    tigas fid data/real/cifar10 data/fake/dcgan                  # FD-TIGAS, offline
    tigas fid data/real/cifar10 data/fake/dcgan --features inception   # needs cached weights
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from tigas_core.commands import add_scorer_arguments, load_scorer, positive_int, set_threads

log = logging.getLogger("tigas.fid")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir_a", type=Path, help="first image folder (e.g. real images)")
    parser.add_argument("dir_b", type=Path, help="second image folder (e.g. generated images)")
    parser.add_argument("--features", choices=["tigas", "inception"], default="tigas")
    parser.add_argument("--max-images", type=positive_int, default=None, help="use at most this many images per folder (evenly spaced)")
    parser.add_argument("--kid-subset-size", type=positive_int, default=1000)
    parser.add_argument("--kid-subsets", type=positive_int, default=100)
    add_scorer_arguments(parser, options=("weights", "device", "views", "batch_size", "threads"), batch_size=32)
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")


def _files(folder: Path, limit: int | None) -> list[Path]:
    from tigas_core.io import iter_image_files

    files = list(iter_image_files(folder))
    if limit is not None and len(files) > limit:
        files = files[:: len(files) // limit][:limit]
    return files


def compare_folders(dir_a: Path, dir_b: Path, features: str = "tigas", tigas=None, max_images: int | None = None,
                    batch_size: int = 32, kid_subset_size: int = 1000, kid_subsets: int = 100, device: str = "cpu",
                    progress: bool = False) -> dict[str, Any]:
    """FD, KID (mean, std), image counts, skipped files and the extractor used (to reuse its network)."""
    from tigas_core.metrics.frechet import folder_features, frechet_between, make_extractor
    from tigas_core.metrics.kid import kernel_inception_distance

    extractor = make_extractor(features, tigas, device)
    sets = []
    for folder in (dir_a, dir_b):
        files = _files(folder, max_images)
        if len(files) < 2:
            raise ValueError(f"{folder}: need at least 2 image files, found {len(files)}")
        sets.append(folder_features(files, extractor, batch_size, progress=progress))
    for folder, feats in zip((dir_a, dir_b), sets):
        if feats.stats.count < 2:
            raise ValueError(f"{folder}: fewer than 2 readable images ({len(feats.errors)} unreadable)")
    kid_mean, kid_std = kernel_inception_distance(sets[0].kept, sets[1].kept, kid_subset_size, kid_subsets)
    return {
        "features": extractor.name, "fd": frechet_between(*sets), "kid_mean": kid_mean, "kid_std": kid_std,
        "n_a": sets[0].stats.count, "n_b": sets[1].stats.count, "errors": sets[0].errors + sets[1].errors,
        "extractor": extractor,
    }


def run(args: argparse.Namespace) -> int:
    from tigas_core.api import resolve_device
    from tigas_core.config import atomic_write_text

    set_threads(args)
    tigas = load_scorer(args) if args.features == "tigas" else None
    args.device = str(resolve_device(args.device))  # auto -> what Inception-v3 runs on
    result = compare_folders(args.dir_a, args.dir_b, args.features, tigas, args.max_images, args.batch_size,
                             args.kid_subset_size, args.kid_subsets, args.device, progress=True)
    for line in result["errors"]:
        log.warning("skipped %s", line)
    fewest, dim = min(result["n_a"], result["n_b"]), result["extractor"].dim
    if fewest <= dim:
        log.warning("%d images against %d feature dimensions: with no more images than dimensions the covariance "
                    "is rank-deficient and FD mostly measures the sample size; compare distances at equal, larger n",
                    fewest, dim)
    name = "FD-TIGAS" if args.features == "tigas" else "FD-Inception"
    print(f"{name}: {result['fd']:.4f}  ({result['n_a']} vs {result['n_b']} images)")
    print(f"KID ({result['features']} features): {result['kid_mean']:.5f} ± {result['kid_std']:.5f}")
    if args.features == "inception":
        from tigas_core.metrics.inception_score import inception_score_for_files

        for folder in (args.dir_a, args.dir_b):
            mean, std = inception_score_for_files(_files(folder, args.max_images), batch_size=args.batch_size,
                                                  device=args.device, model=result["extractor"].model)
            result[f"is_{folder.name}"] = [mean, std]
            print(f"IS {folder}: {mean:.3f} ± {std:.3f}")
    if args.json:
        result.pop("extractor")
        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return 0
