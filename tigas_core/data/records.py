"""Image records with class and generator labels, gathered from folders or a CSV index.

Every image keeps the name of the generator that made it (``"real"`` for photographs in the
``real/`` layout), so evaluation can report each generator separately and whole generators can
be held out. Each record also carries a *group*: images that share a source (tiles cut from one
sample grid, listed in MANIFEST.csv as one ``source_path``) share a group and are never split
across train/val/test.
"""
from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

from tigas_core.io import TIGASInputError, iter_image_files

REAL = "real"
REAL_LABEL = 1  # index 1 of the model's auxiliary logits is "real"
FAKE_LABEL = 0
CNNDETECTION_DIRS = {"0_real": REAL_LABEL, "1_fake": FAKE_LABEL}


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One image on disk: label 1 = real photo, 0 = generated.

    ``source`` says where it came from: the generator for a generated image, the folder below
    ``real/`` for a photo (coco, imagenet, ...), so whole photo sources can be held out too.
    """

    path: str
    label: int
    generator: str
    group: str
    source: str = ""


def _manifest_groups(root: Path) -> dict[str, str]:
    """relative file path -> source key from a MANIFEST.csv beside the data, if there is one."""
    manifest = root / "MANIFEST.csv"
    if not manifest.is_file():
        return {}
    with open(manifest, newline="") as handle:
        return {
            row["file"]: f"{row.get('source_repo', '')}:{row.get('source_path') or row['file']}"
            for row in csv.DictReader(handle)
            if row.get("file")
        }


def scan_folder(root: str | os.PathLike) -> list[ImageRecord]:
    """Records for a folder in either supported layout.

    * ``real/**`` and ``fake/<generator>/**`` (any depth below them), as in ../shared/data and the
      generator zoo's output;
    * CNNDetection: ``<generator>/[...]/0_real|1_fake/**``; the first path component names the
      generator for both classes.
    """
    root = Path(root)
    if not root.is_dir():
        raise TIGASInputError(os.fspath(root), "data folder not found")
    groups = _manifest_groups(root)
    records = []
    for path in iter_image_files(root, recursive=True):
        parts = path.relative_to(root).parts
        key = "/".join(parts)
        label, generator = classify_parts(parts)
        if label is None:
            continue
        source = parts[1] if generator == REAL and parts[0] == REAL and len(parts) > 2 else generator
        records.append(ImageRecord(str(path), label, generator, groups.get(key, str(path)), source))
    if not records:
        raise TIGASInputError(os.fspath(root), "no images in a real/ + fake/<generator>/ or <generator>/0_real|1_fake layout")
    return records


def classify_parts(parts: tuple[str, ...]) -> tuple[int | None, str]:
    for depth, part in enumerate(parts[:-1]):
        if part in CNNDETECTION_DIRS:
            return CNNDETECTION_DIRS[part], parts[0] if depth > 0 else "unknown"
    if parts[0] == REAL and len(parts) >= 2:
        return REAL_LABEL, REAL
    if parts[0] == "fake" and len(parts) >= 3:
        return FAKE_LABEL, parts[1]
    return None, ""


def read_csv_index(csv_path: str | os.PathLike) -> list[ImageRecord]:
    """Records from a CSV with columns path,label,generator (optional group).

    label is ``real``/``fake`` or 1/0; relative paths are relative to the CSV's folder. Large
    sets are listed once instead of walking millions of files on every run.
    """
    csv_path = Path(csv_path)
    records = []
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise TIGASInputError(str(csv_path), f"CSV index lacks column(s) {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            label = _parse_label(row["label"], f"{csv_path}:{line}")
            path = Path(row["path"])
            path = path if path.is_absolute() else csv_path.parent / path
            generator = row.get("generator") or (REAL if label == REAL_LABEL else "unknown")
            records.append(ImageRecord(str(path), label, generator, row.get("group") or str(path), row.get("source") or generator))
    return records


def _parse_label(value: str, where: str) -> int:
    text = value.strip().lower()
    if text in ("real", "1", "true"):
        return REAL_LABEL
    if text in ("fake", "0", "false", "generated"):
        return FAKE_LABEL
    raise TIGASInputError(where, f"label must be real/fake or 1/0, got {value!r}")


def load_records(sources: Iterable[str | os.PathLike]) -> list[ImageRecord]:
    """Records from several folders and/or CSV indexes, e.g. ../shared/data plus zoo outputs.
    A file reached twice (a folder given twice, once relative and once absolute, or also listed
    in a CSV) is kept once, as first seen, so it cannot sit in two splits."""
    records: list[ImageRecord] = []
    seen: set[str] = set()
    for source in sources:
        source = Path(source)
        for record in read_csv_index(source) if source.suffix.lower() == ".csv" else scan_folder(source):
            real = os.path.realpath(record.path)
            if real not in seen:
                seen.add(real)
                records.append(record)
    return records
