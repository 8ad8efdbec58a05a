"""Per-generator evaluation of TIGAS weights, with robustness conditions and shortcut baselines.

For every generator in the test split the report gives AUROC, AP, accuracy at the calibrated
threshold, ECE and counts, for clean images and under JPEG q75, JPEG q50, 0.5x resize, Gaussian
blur, and with every image re-encoded to one common format (JPEG q90, so "JPEG = real" is gone).
Real test images are pooled and compared against each generator's fakes (a CNNDetection-style
generator with its own reals uses those instead).

Two baselines are trained on the same training split and scored in the same report:
* spectrum: logistic regression on the normalised radial power profile (Durall et al. 2020);
* format/size: logistic regression on the file's format, width, height and bytes per pixel only.
If the format/size baseline scores high, the data has a shortcut; TIGAS only ever sees decoded,
resized pixels, and the common-format row shows what it reaches without the format cue.
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from tigas_core import spectral
from tigas_core.data.augment import gaussian_blur, jpeg_reencode, rescale
from tigas_core.data.records import REAL, REAL_LABEL, ImageRecord
from tigas_core.io import TIGASInputError, load_image, preprocess, setting_notes

CONDITIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "clean": lambda image: image,
    "jpeg_q75": lambda image: jpeg_reencode(image, 75),
    "jpeg_q50": lambda image: jpeg_reencode(image, 50),
    "resize_0.5x": lambda image: rescale(image, 0.5),
    "blur_sigma1": lambda image: gaussian_blur(image, 1.0),
    "common_format_jpeg_q90": lambda image: jpeg_reencode(image, 90),
}
ECE_BINS = 15
BASELINE_REAL_IMAGES = 3000  # real training images the baselines are fitted on (all fakes are used)


def expected_calibration_error(scores: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS, balanced: bool = True) -> float:
    """ECE of P(real) = score over equal-width bins.

    ``balanced`` weights each class to half the total mass, so a test set with 50x more reals
    than fakes cannot hide a miscalibrated fake side (and matches the balanced calibration fit).
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    weights = np.ones_like(scores)
    if balanced and 0 < labels.sum() < len(labels):
        weights = np.where(labels > 0.5, 0.5 / labels.sum(), 0.5 / (1 - labels).sum())
    weights = weights / weights.sum()
    bins = np.minimum((scores * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            w = weights[mask].sum()
            ece += w * abs(np.average(labels[mask], weights=weights[mask]) - np.average(scores[mask], weights=weights[mask]))
    return float(ece)


def binary_metrics(scores: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """AUROC, AP (generated = positive class), class-balanced accuracy at ``threshold``, ECE, counts.

    scores: P(real) in [0,1]; labels: 1 = real. AUROC/AP are NaN when one class is missing.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(int)
    n_real, n_fake = int(labels.sum()), int((1 - labels).sum())
    both = n_real > 0 and n_fake > 0
    predicted_real = scores >= threshold
    acc_real = float(predicted_real[labels == 1].mean()) if n_real else math.nan
    acc_fake = float((~predicted_real)[labels == 0].mean()) if n_fake else math.nan
    return {
        "auroc": float(roc_auc_score(labels, scores)) if both else math.nan,
        "ap": float(average_precision_score(1 - labels, 1 - scores)) if both else math.nan,
        "accuracy": float(np.nanmean([acc_real, acc_fake])) if (n_real or n_fake) else math.nan,
        "ece": expected_calibration_error(scores, labels) if (n_real or n_fake) else math.nan,
        "n_real": n_real,
        "n_fake": n_fake,
    }


@dataclasses.dataclass
class ScoredImage:
    record: ImageRecord
    scores: dict[str, float]  # condition -> TIGAS score
    spectrum: dict[str, np.ndarray]  # condition -> radial profile (baseline features)
    file_features: dict[str, np.ndarray]  # "clean" / "common_format..." -> format/size features


def file_features(path: str, image: torch.Tensor | None = None) -> np.ndarray:
    """Format/size-only features: is JPEG, is PNG, log width, log height, bits per pixel.

    With ``image`` given, describe that image re-encoded as JPEG q90 (the common-format condition).
    """
    if image is not None:
        buffer = io.BytesIO()
        Image.fromarray((image.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
        n_bytes, fmt, (height, width) = buffer.tell(), "JPEG", image.shape[-2:]
    else:
        with Image.open(path) as handle:
            fmt, (width, height) = handle.format or "", handle.size
        n_bytes = os.path.getsize(path)
    bits_per_pixel = 8 * n_bytes / (width * height)
    return np.array([fmt == "JPEG", fmt == "PNG", math.log(width), math.log(height), math.log(bits_per_pixel)], dtype=np.float64)


def spectrum_features(view: torch.Tensor, n_bins: int) -> np.ndarray:
    """Normalised radial log power profile of a model view [3,S,S] (the Durall et al. feature)."""
    profile = spectral.radial_profile(spectral.power_spectrum(view[None]), n_bins)
    return spectral.normalise_profile(profile)[0].numpy()


class Evaluator:
    """Scores records under every condition with one TIGAS instance; fits and applies the baselines."""

    def __init__(self, tigas, conditions: Iterable[str] = tuple(CONDITIONS), batch_size: int = 32, progress: bool = True):
        self.tigas = tigas
        self.conditions = list(conditions)
        self.batch_size = batch_size
        self.progress = progress
        self.n_bins = tigas.config.radial_bins

    def _views(self, record: ImageRecord, conditions: list[str]) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
        """Per condition: the centre view (spectrum baseline) stacked over TIGAS's own views [1+V,3,S,S]."""
        image = load_image(record.path)
        views, files = {}, {"clean": file_features(record.path)}
        for name in conditions:
            perturbed = CONDITIONS[name](image)
            centre = preprocess(perturbed, self.tigas.img_size)
            views[name] = torch.cat([centre[None], self.tigas.make_views(perturbed[None])[0]])
            if name.startswith("common_format"):
                files[name] = file_features(record.path, perturbed)
        return views, files

    @torch.no_grad()
    def score(self, records: list[ImageRecord], with_model: bool = True, desc: str = "evaluate") -> tuple[list[ScoredImage], list[str]]:
        """Score every readable record; unreadable ones are returned as error strings, never raised."""
        conditions = self.conditions if with_model else [c for c in self.conditions if c == "clean" or c.startswith("common_format")]
        results: list[ScoredImage] = []
        errors: list[str] = []
        pending: list[tuple[ImageRecord, dict, dict]] = []

        def flush() -> None:
            if not pending:
                return
            spectra = {c: [spectrum_features(views[c][0], self.n_bins) for _, views, _ in pending] for c in conditions}
            scores: dict[str, list[float]] = {c: [math.nan] * len(pending) for c in conditions}
            if with_model:
                for c in conditions:
                    batch = torch.stack([views[c][1:] for _, views, _ in pending])
                    scores[c] = self.tigas.forward_views(batch)["score"][:, 0].float().cpu().tolist()
            for i, (record, _, files) in enumerate(pending):
                results.append(ScoredImage(record, {c: scores[c][i] for c in conditions}, {c: spectra[c][i] for c in conditions}, files))
            pending.clear()

        for record in tqdm(records, desc=desc, disable=not self.progress, mininterval=5.0):
            try:
                views, files = self._views(record, conditions)
            except (TIGASInputError, OSError) as exc:
                errors.append(str(exc) if isinstance(exc, TIGASInputError) else f"{record.path}: {exc}")
                continue
            pending.append((record, views, files))
            if len(pending) >= self.batch_size:
                flush()
        flush()
        return results, errors


def cap_per_generator(records: list[ImageRecord], limit: int, seed: int = 0) -> list[ImageRecord]:
    """At most ``limit`` records per (generator, label), chosen with a seeded shuffle; 0 keeps all."""
    if limit <= 0:
        return records
    strata: dict[tuple[str, int], list[ImageRecord]] = {}
    for record in records:
        strata.setdefault((record.generator, record.label), []).append(record)
    kept = []
    for key, members in sorted(strata.items()):
        if len(members) > limit:
            members = random.Random(f"{seed}:{key}").sample(members, limit)
        kept.extend(members)
    return sorted(kept, key=lambda r: r.path)


def _fit_baseline(features: np.ndarray, labels: np.ndarray):
    model = make_pipeline(StandardScaler(), LogisticRegression(class_weight="balanced", max_iter=2000))
    return model.fit(features, labels)


def _comparison_sets(test: list[ScoredImage]) -> dict[str, tuple[list[int], list[int]]]:
    """generator -> (indices of its reals, indices of its fakes) in ``test``."""
    pooled = [i for i, s in enumerate(test) if s.record.label == REAL_LABEL and s.record.generator == REAL]
    sets: dict[str, tuple[list[int], list[int]]] = {}
    for generator in sorted({s.record.generator for s in test if s.record.label != REAL_LABEL}):
        fakes = [i for i, s in enumerate(test) if s.record.generator == generator and s.record.label != REAL_LABEL]
        own = [i for i, s in enumerate(test) if s.record.generator == generator and s.record.label == REAL_LABEL]
        sets[generator] = (own or pooled, fakes)
    return sets


def method_scores(evaluator: Evaluator, test: list, train_records: list[ImageRecord], seed: int) -> tuple[dict, int]:
    """Scores of the test images per method (TIGAS and the two baselines, fitted here on a seeded
    sample of the training reals and every training fake) and condition, and the baselines' training size."""
    reals = [r for r in train_records if r.label == REAL_LABEL]
    fakes = [r for r in train_records if r.label != REAL_LABEL]
    chosen = random.Random(seed).sample(reals, min(BASELINE_REAL_IMAGES, len(reals))) + fakes
    train, _ = evaluator.score(chosen, with_model=False, desc="baseline features")
    train_labels = np.array([s.record.label for s in train])
    spectrum_model = _fit_baseline(np.stack([s.spectrum["clean"] for s in train]), train_labels)
    format_model = _fit_baseline(np.stack([s.file_features["clean"] for s in train]), train_labels)
    conditions = evaluator.conditions
    scores = {
        "tigas": {c: np.array([s.scores[c] for s in test]) for c in conditions},
        "spectrum_baseline": {c: spectrum_model.predict_proba(np.stack([s.spectrum[c] for s in test]))[:, 1] for c in conditions},
        "format_size_baseline": {
            c: format_model.predict_proba(np.stack([s.file_features[c] for s in test]))[:, 1]
            for c in conditions if c in test[0].file_features
        },
    }
    return scores, len(train)


def evaluate(
    tigas,
    splits: dict[str, list[ImageRecord]],
    *,
    holdout_generators: Iterable[str] = (),
    conditions: Iterable[str] = tuple(CONDITIONS),
    batch_size: int = 32,
    seed: int = 0,
    max_per_generator: int = 0,
    progress: bool = True,
) -> dict:
    """The full report as a JSON-able dict (see `render_markdown` for the table).

    ``max_per_generator`` > 0 scores a seeded random subset of at most that many test images per
    generator and class (the pooled reals included), to bound the time on a slow machine.
    """
    evaluator = Evaluator(tigas, conditions, batch_size, progress)
    test, test_errors = evaluator.score(cap_per_generator(splits["test"], max_per_generator, seed), desc="test")
    train_records = splits["train"]
    scores, n_baseline = method_scores(evaluator, test, train_records, seed)
    labels = np.array([s.record.label for s in test])
    threshold = float(tigas.threshold)
    holdout = set(holdout_generators)
    seen = {r.generator for r in train_records if r.label != REAL_LABEL}
    rows = []
    for generator, (real_idx, fake_idx) in _comparison_sets(test).items():
        idx = np.array(real_idx + fake_idx)
        row = {"generator": generator, "group": "held-out" if generator in holdout else ("seen" if generator in seen else "unseen"),
               "n_real": len(real_idx), "n_fake": len(fake_idx), "metrics": {}}
        for method, by_condition in scores.items():
            row["metrics"][method] = {c: binary_metrics(values[idx], labels[idx], threshold) for c, values in by_condition.items()}
        rows.append(row)
    in_data = {r.generator for records in splits.values() for r in records if r.label != REAL_LABEL}
    return {
        "weights": tigas.weights_source,
        "views": tigas.views,
        "precision": tigas.precision,
        "img_size": tigas.img_size,
        "threshold": threshold,
        "conditions": evaluator.conditions,
        "holdout_generators": sorted(holdout),
        "split_counts": {name: len(records) for name, records in splits.items()},
        "max_per_generator": max_per_generator,
        "scored_test_images": len(test),
        "baseline_train_images": n_baseline,
        "test_errors": test_errors,
        "pooled": {method: {c: binary_metrics(v, labels, threshold) for c, v in by_condition.items()}
                   for method, by_condition in scores.items()},
        "generators": rows,
        # Generators whose images all fell in train/val (tiles of one source grid stay together): no row.
        "without_test_images": sorted(in_data - {row["generator"] for row in rows}),
        "summary": mean_auroc_by_group(rows),
    }


def mean_auroc_by_group(rows: list[dict]) -> dict:
    """Mean AUROC per group (seen / held-out) and method, the JPEG q75 drop and mean ECE of TIGAS."""
    summary: dict = {}
    for group in ("seen", "held-out", "unseen"):
        members = [r for r in rows if r["group"] == group and r["n_fake"] and r["n_real"]]
        if not members:
            continue
        entry = {"generators": [r["generator"] for r in members]}
        for method in members[0]["metrics"]:
            for condition in members[0]["metrics"][method]:
                entry[f"{method}/{condition}/auroc"] = float(np.mean([r["metrics"][method][condition]["auroc"] for r in members]))
        tigas = [r["metrics"]["tigas"] for r in members]
        if "jpeg_q75" in tigas[0]:
            entry["tigas_auroc_drop_jpeg_q75"] = float(np.mean([m["clean"]["auroc"] - m["jpeg_q75"]["auroc"] for m in tigas]))
        entry["tigas_mean_ece"] = float(np.mean([m["clean"]["ece"] for m in tigas]))
        summary[group] = entry
    return summary


def _fmt(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def render_markdown(report: dict, command: str | None = None) -> str:
    """The results table (one row per generator, seen and held-out separately) plus the baselines."""
    conditions = report["conditions"]
    robust = [c for c in conditions if c != "clean"]
    common = next((c for c in conditions if c.startswith("common_format")), None)
    lines = ["# TIGAS evaluation", ""]
    if command:
        lines += ["Reproduce with:", "", "```bash", command, "```", ""]
    views_note = "".join(f", {note}" for note in setting_notes(report.get("views", "single"), report.get("precision", "fp32")))
    lines += [f"Weights: {report['weights']} (img_size {report['img_size']}, threshold {report['threshold']:.2f}{views_note}). "
              f"Held-out generators (never in training): {', '.join(report['holdout_generators']) or 'none'}. "
              f"Split sizes: {report['split_counts']}; scored test images: {report['scored_test_images']}"
              + (f" (at most {report['max_per_generator']} per generator and class)" if report["max_per_generator"] else "") + "."
              + (f" No test images, so no row (all their images, grouped by source, fell in train/val): "
                 f"{', '.join(report['without_test_images'])}." if report.get("without_test_images") else ""), "",
              "AUROC and AP compare the pooled real test images with each generator's test images (AP treats "
              "generated as the positive class); accuracy is class-balanced at the calibrated threshold; ECE is "
              "class-balanced with 15 bins. Robustness columns are TIGAS AUROC after the perturbation, applied to "
              "the original file before the model's resize: JPEG re-encoding, a 0.5x resize (never below 32 px, so "
              "32 px images are unchanged) and a Gaussian blur of sigma 1 px; common format = every image re-encoded "
              "as JPEG q90. Baselines are fitted on the training split.", ""]
    for group in ("seen", "held-out", "unseen"):
        rows = [r for r in report["generators"] if r["group"] == group]
        if not rows:
            continue
        lines += [f"## {group} generators", "",
                  "| generator | n fake | n real | AUROC | AP | acc | ECE | " + " | ".join(robust)
                  + " | spectrum LR AUROC | format/size AUROC |",
                  "|---|---|---|---|---|---|---|" + "---|" * len(robust) + "---|---|"]
        for r in rows:
            m = r["metrics"]
            clean = m["tigas"]["clean"]
            lines.append(
                f"| {r['generator']} | {r['n_fake']} | {r['n_real']} | {_fmt(clean['auroc'])} | {_fmt(clean['ap'])} | "
                f"{_fmt(clean['accuracy'])} | {_fmt(clean['ece'])} | "
                + " | ".join(_fmt(m["tigas"][c]["auroc"]) for c in robust)
                + f" | {_fmt(m['spectrum_baseline']['clean']['auroc'])} | {_fmt(m['format_size_baseline']['clean']['auroc'])} |"
            )
        lines.append("")
    lines += ["## Summary (mean over generators)", "",
              "| group | TIGAS AUROC | under JPEG q75 | drop q75 | common format | ECE | spectrum LR | format/size |",
              "|---|---|---|---|---|---|---|---|"]
    for group, s in report["summary"].items():
        lines.append(
            f"| {group} ({len(s['generators'])}) | {_fmt(s.get('tigas/clean/auroc'))} | {_fmt(s.get('tigas/jpeg_q75/auroc'))} | "
            f"{_fmt(s.get('tigas_auroc_drop_jpeg_q75'))} | {_fmt(s.get(f'tigas/{common}/auroc')) if common else '–'} | "
            f"{_fmt(s.get('tigas_mean_ece'))} | {_fmt(s.get('spectrum_baseline/clean/auroc'))} | "
            f"{_fmt(s.get('format_size_baseline/clean/auroc'))} |"
        )
    pooled = report["pooled"]
    lines += ["", "Pooled over all test images (all generators vs all reals): "
              + ", ".join(f"{method} AUROC {_fmt(v['clean']['auroc'])}" for method, v in pooled.items())
              + (f"; format/size baseline with every file re-encoded to JPEG q90: AUROC "
                 f"{_fmt(pooled['format_size_baseline'][common]['auroc'])}" if common and common in pooled["format_size_baseline"] else "")
              + ".", ""]
    if report["test_errors"]:
        lines += [f"{len(report['test_errors'])} test file(s) could not be read and were skipped.", ""]
    return "\n".join(lines)


def write_report(report: dict, json_path: str | os.PathLike, markdown: str) -> None:
    """Write report.json and the Markdown table beside it (same stem, .md), atomically."""
    import json

    from tigas_core.config import atomic_write_text

    json_path = Path(json_path)
    atomic_write_text(json_path, json.dumps(report, indent=2, default=float, allow_nan=True) + "\n")
    atomic_write_text(json_path.with_suffix(".md"), markdown)
