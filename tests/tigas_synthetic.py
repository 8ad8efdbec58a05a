"""A tiny labelled dataset the training/evaluation tests make themselves (never ../shared/data).

Reals are smooth 1/f-like images saved as JPEG; fakes carry a faint 2-px checkerboard (the
classic up-sampling artefact) and are saved as PNG, one folder per generator.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from conftest import natural_like
from PIL import Image


def fake_like(size: int, seed: int, period: int = 2, amplitude: float = 40.0) -> np.ndarray:
    base = natural_like(size, size, seed).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    pattern = np.where(((yy // (period // 2)) + (xx // (period // 2))) % 2 == 0, amplitude, -amplitude)
    return np.clip(base + pattern[..., None], 0, 255).astype(np.uint8)


def make_dataset(root: Path, n_real: int = 24, fakes: dict[str, int] | None = None, size: int = 40,
                 tiles_per_grid: int = 1) -> Path:
    """real/<class>/NNN.jpg + fake/<generator>/NNN.png, and a MANIFEST.csv that groups fake tiles.

    With ``tiles_per_grid`` > 1, consecutive fakes of a generator share one MANIFEST source_path,
    as tiles cut from one sample grid do.
    """
    fakes = fakes if fakes is not None else {"gan-a": 12, "gan-b": 8}
    rows = []
    for i in range(n_real):
        rel = f"real/class{i % 2}/{i:03d}.jpg"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(natural_like(size, size, seed=i)).save(root / rel, quality=92)
        rows.append({"file": rel, "label": "real", "generator": "real", "source_repo": "test", "source_path": rel})
    for g, (generator, count) in enumerate(sorted(fakes.items())):
        for i in range(count):
            rel = f"fake/{generator}/{i:03d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(fake_like(size, seed=1000 * (g + 1) + i, period=2 + 2 * (g % 2))).save(root / rel)
            rows.append({"file": rel, "label": "fake", "generator": generator, "source_repo": "test",
                         "source_path": f"{generator}/grid{i // tiles_per_grid}.png"})
    with open(root / "MANIFEST.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root
