"""Generators compared with real images: the dashboard's analysis, with no Streamlit in it.

An image set is indexed into (path, generator) rows (`index_folder`, `index_csv`, `index_scores`),
scored (`tigas_core.score_cache`), then summarised per generator against the real reference
(`summary_table`, `frechet_to_real`). AUROC, AP, accuracy and ECE come from the project's evaluation
code, so the dashboard and `tigas evaluate` agree.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from tigas_core.data.records import REAL, REAL_LABEL, classify_parts, read_csv_index, scan_folder
from tigas_core.io import iter_image_files
from tigas_core.metrics.evaluation import binary_metrics
from tigas_core.metrics.frechet import StreamingStats, frechet_distance
from tigas_core.model import BRANCHES

TOP_LEVEL = "(top level)"  # the generator of images directly in the root folder
# A ranking metric of 1 or 2 images (AUROC 1.000 from a single image) only looks like a result.
MIN_IMAGES_FOR_METRICS = 5
INDEX_COLUMNS = ["path", "generator"]


def index_folder(root: str | os.PathLike) -> pd.DataFrame:
    """(path, generator) for every image below ``root``; the generator is the first sub-folder's name.

    A training-data layout (``real/`` + ``fake/<generator>/``) is read with the trainer's own
    scanner instead, so the project's data folders open as they are.
    """
    root = Path(root).resolve()
    if (root / "fake").is_dir() and (root / REAL).is_dir():
        return pd.DataFrame([(r.path, r.generator) for r in scan_folder(root)], columns=INDEX_COLUMNS)
    rows = []
    for path in iter_image_files(root, recursive=True):
        parts = path.relative_to(root).parts
        rows.append((str(path), parts[0] if len(parts) > 1 else TOP_LEVEL))
    return pd.DataFrame(rows, columns=INDEX_COLUMNS)


def index_csv(csv_path: str | os.PathLike) -> pd.DataFrame:
    """(path, generator) from a CSV index; relative paths are relative to the CSV's folder.

    Columns path,generator; a training index (path,label[,generator]) is read by the trainer's reader.
    """
    csv_path = Path(csv_path)
    table = pd.read_csv(csv_path)
    table.columns = [str(c).strip().lower() for c in table.columns]
    if "label" in table.columns:
        return pd.DataFrame([(r.path, r.generator) for r in read_csv_index(csv_path)], columns=INDEX_COLUMNS)
    missing = set(INDEX_COLUMNS) - set(table.columns)
    if missing:
        raise ValueError(f"CSV index needs columns 'path' and 'generator'; missing {sorted(missing)}")
    paths = [Path(p) if Path(p).is_absolute() else csv_path.parent / p for p in table["path"].astype(str)]
    return pd.DataFrame({"path": [str(p.resolve()) for p in paths], "generator": table["generator"].astype(str)})


def index_scores(parquet_path: str | os.PathLike) -> pd.DataFrame:
    """The rows of a scores file (`tigas score --engine ray --out`: a cluster's results, shown
    without scoring again) with a generator each: its ``generator`` column, else from its path."""
    table = pd.read_parquet(parquet_path)
    missing = {"path", "score", *BRANCHES, "error"} - set(table.columns)
    if missing:
        raise ValueError(f"not a TIGAS scores file: no column(s) {', '.join(sorted(missing))}")
    if "generator" not in table.columns:
        table.insert(0, "generator", generator_names(table["path"]))
    if "digest" not in table.columns:
        table["digest"] = ""
    return table.reset_index(drop=True)


def generator_names(paths: pd.Series) -> list[str]:
    """Each path's generator as `index_folder` names it, below the paths' common folder: by the
    training layouts' rules (the trainer's own), else the first sub-folder."""
    absolute = [os.path.abspath(p) for p in paths]
    root = os.path.commonpath([os.path.dirname(p) for p in absolute]) if absolute else ""
    names = []
    for path in absolute:
        parts = Path(os.path.relpath(path, root)).parts
        label, generator = classify_parts(parts)
        names.append(generator if label is not None else parts[0] if len(parts) > 1 else TOP_LEVEL)
    return names


def summary_table(frame: pd.DataFrame, real_name: str, threshold: float, distances: dict[str, float]) -> pd.DataFrame:
    """Per generator: n, mean, median, std, share flagged as generated, AUROC/AP/ECE against real, FD to real.

    AUROC, AP (generated images as the positive class), balanced accuracy and ECE come from the
    project's evaluation code, so the dashboard and `tigas evaluate` agree; AUROC 0.5 means the
    generator's images are indistinguishable from the real ones by TIGAS.
    """
    ok = frame[frame["error"] == ""]
    real_scores = ok.loc[ok["generator"] == real_name, "score"].to_numpy()
    rows = []
    for generator, group in frame.groupby("generator", sort=True):
        scores = group.loc[group["error"] == "", "score"].to_numpy()
        row = {
            "generator": generator,
            "n": len(scores),
            "failed": len(group) - len(scores),
            "mean": scores.mean() if len(scores) else np.nan,
            "median": np.median(scores) if len(scores) else np.nan,
            "std": scores.std(ddof=1) if len(scores) > 1 else np.nan,
            "flagged": (scores < threshold).mean() if len(scores) else np.nan,
            "AUROC": np.nan, "AP": np.nan, "accuracy": np.nan, "ECE": np.nan,
            "FD to real": distances.get(generator, np.nan),
        }
        if generator != real_name and min(len(scores), len(real_scores)) >= MIN_IMAGES_FOR_METRICS:
            labels = np.r_[np.full(len(real_scores), REAL_LABEL), np.full(len(scores), 1 - REAL_LABEL)]
            metrics = binary_metrics(np.r_[real_scores, scores], labels, threshold)
            row.update(AUROC=metrics["auroc"], AP=metrics["ap"], accuracy=metrics["accuracy"], ECE=metrics["ece"])
        rows.append(row)
    table = pd.DataFrame(rows)
    real_first = (table["generator"] != real_name).astype(int)
    return (table.assign(_order=real_first).sort_values(["_order", "mean"], ascending=[True, False])
            .drop(columns="_order").reset_index(drop=True))


def frechet_to_real(frame: pd.DataFrame, features: np.ndarray, real_name: str) -> dict[str, float]:
    """Fréchet distance between each generator's fused TIGAS features and the real ones' (>= 2 images each)."""
    ok = (frame["error"] == "").to_numpy()
    stats = {}
    for generator in frame["generator"].unique():
        rows = features[ok & (frame["generator"] == generator).to_numpy()]
        if len(rows) >= 2:
            stats[generator] = StreamingStats(rows.shape[1])
            stats[generator].update(rows)
    real = stats.get(real_name)
    if real is None:
        return {}
    return {g: frechet_distance(s.mean, s.cov, real.mean, real.cov) for g, s in stats.items() if g != real_name}
