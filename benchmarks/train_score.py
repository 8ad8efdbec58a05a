"""Train the bundled TIGAS weights and measure them honestly, in three resumable steps.

    python benchmarks/train_score.py measure --data ../shared/data --zoo runs/zoo_fakes --work runs/score
    python benchmarks/train_score.py loo --work runs/score       # leave-one-out table -> benchmarks/results/
    python benchmarks/train_score.py final --work runs/score --export assets/
    python benchmarks/train_score.py study                     # every `loo --name` run in one table

``measure`` caches every view's trunk maps and measurements (`tigas_core.training.feature_cache`):
training views (augmented) and evaluation views (clean, and as an upload: 256 px + JPEG q75).
``loo`` retrains the learnt layers once per fold, each fold holding out a generator family and a
photo source (`tigas_core.training.leave_one_out.DEFAULT_FOLDS`), and reports every image as
scored by a model that never saw its generator or its photo source. ``final`` trains on
everything with the same recipe, calibrates on the out-of-fold logits and exports the weights
(with split.json: which files it was trained on).

The zoo fakes come from `tigas generate` with the bundled zoo checkpoints (README, "Training").
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit

from tigas_core.config import TIGASConfig, atomic_write_text
from tigas_core.data import get_level, load_records
from tigas_core.model import TIGASModel
from tigas_core.results import verdict
from tigas_core.training import leave_one_out as loo
from tigas_core.training.feature_cache import (
    EVAL_CONDITIONS,
    FeatureCache,
    condition_of,
    evaluation_views,
    greyscale_evaluation_views,
    measure_records,
    predict_from_cache,
    training_views,
)

RESULTS = Path(__file__).parent / "results"


def select_records(data: list[str], small_reals: int, small_fakes: int, seed: int):
    """Every high-resolution record; of the 32 px sets, ``small_reals`` CIFAR-10 photos and
    ``small_fakes`` samples of each zoo model, so they neither drown the rest nor let "32 px"
    tell the classes apart."""
    records = load_records(data)
    rng = random.Random(seed)
    by_source: dict[str, list] = {}
    for record in records:
        by_source.setdefault(record.source, []).append(record)
    chosen = []
    for source, items in sorted(by_source.items()):
        cap = small_reals if source == "cifar10" else small_fakes if source.startswith("zoo-") else len(items)
        chosen += rng.sample(items, min(cap, len(items)))
    return chosen


def measure(args: argparse.Namespace) -> None:
    config = TIGASConfig(backbone=args.backbone)
    model = loo.fresh_model(config, 0)
    records = select_records(args.data + args.zoo, args.small_reals, args.small_fakes, args.seed)[: args.limit]
    print(f"{len(records)} records; threads {torch.get_num_threads()}")
    for name, make in (("eval", evaluation_views(config.img_size)), ("grey_eval", greyscale_evaluation_views(config.img_size)),
                       ("train", training_views(config.img_size, get_level("native"), args.views, args.small_views, args.upload_views))):
        path = args.work / f"{name}.safetensors"
        if path.exists():
            print(f"{path} exists, kept")
            continue
        tick = time.time()
        cache = measure_records(model, records, make, seed=args.seed, batch_size=32)
        args.work.mkdir(parents=True, exist_ok=True)
        cache.save(path)
        print(f"{name}: {len(cache)} views in {time.time() - tick:.0f} s")


GREY_LOGITS = "greyscale_score"  # the greyscale copies' out-of-fold logits in a loo run's saved logits


def run_loo(args: argparse.Namespace) -> None:
    train, test = FeatureCache.load(args.work / "train.safetensors"), FeatureCache.load(args.work / "eval.safetensors")
    grey = FeatureCache.load(args.work / "grey_eval.safetensors")
    recipe = loo.Recipe(readout_c=args.readout_c, correlation_weight=args.correlation_weight,
                        spectral_weight=args.spectral_weight, generator_directions=args.generator_directions, steps=args.steps,
                        learning_rate=args.lr, weight_decay=args.weight_decay, label_smoothing=args.label_smoothing, seed=args.seed)
    saved = args.work / f"{args.name}_logits.npz"
    tick = time.time()
    if args.report_only:
        stored = np.load(saved)
        logits, grey_logits = stored["score"], stored[GREY_LOGITS]
        branches = {name: stored[name] for name in stored.files if name not in ("score", GREY_LOGITS)}
    else:
        branches: dict[str, np.ndarray] = {}
        both = loo.out_of_fold_logits(TIGASConfig(), train, FeatureCache.concat([test, grey]), recipe, branches=branches)
        logits, grey_logits = both[: len(test)], both[len(test) :]
        branches = {name: values[: len(test)] for name, values in branches.items()}
        np.savez(saved, score=logits, **{GREY_LOGITS: grey_logits}, **branches)
    temperature, bias = loo.calibrate(test, logits)
    grey_temperature, grey_bias = loo.calibrate(grey, grey_logits)
    threshold = min(loo.choose_threshold(test, logits, temperature, bias),
                    loo.choose_threshold(grey, grey_logits, grey_temperature, grey_bias))
    result = loo.report(test, logits, temperature, bias, threshold)
    result["greyscale"] = loo.report(grey, grey_logits, grey_temperature, grey_bias, threshold)
    result["greyscale"]["with_colour_calibration"] = verdict_shares(grey, grey_logits, temperature, bias, threshold)
    result["greyscale"]["verdicts"] = verdict_shares(grey, grey_logits, grey_temperature, grey_bias, threshold)
    result["branches"] = loo.branch_auroc(test, branches)
    result["recipe"] = dataclasses.asdict(recipe)
    previous = RESULTS / f"{args.name}.json"
    result["minutes"] = (json.loads(previous.read_text())["minutes"] if args.report_only and previous.exists()
                         else round((time.time() - tick) / 60, 1))
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / f"{args.name}.json", json.dumps(result, indent=1) + "\n")
    command = " ".join(a for a in sys.argv if a != "--report-only")  # the run that made the logits
    atomic_write_text(RESULTS / f"{args.name}.md", render(result, command))
    print(render(result, command))


def verdict_shares(test: FeatureCache, logits: np.ndarray, temperature: float, bias: float, threshold: float) -> dict:
    """Per condition: the shares of generated images read 'likely generated' and 'likely real', and of
    photos read 'likely generated', at this calibration and threshold (`results.verdict`'s bands)."""
    verdicts = np.array([verdict(float(score), threshold) for score in expit((logits - bias) / temperature)])
    photo, conditions = test.labels.numpy() > 0.5, condition_of(np.arange(len(test)))
    shares = {}
    for c, condition in enumerate(EVAL_CONDITIONS):
        generated, photos = verdicts[(conditions == c) & ~photo], verdicts[(conditions == c) & photo]
        shares[condition] = {"generated_likely_generated": float(np.mean(generated == "likely generated")),
                             "generated_likely_real": float(np.mean(generated == "likely real")),
                             "photos_likely_generated": float(np.mean(photos == "likely generated"))}
    return shares


def study(args: argparse.Namespace) -> None:
    """One table of every leave-one-out run under benchmarks/results (``loo --name ...``): recipe and result."""
    lines = ["# Leave-one-out study: the recipe's choices, each measured on the same folds", "",
             "`python benchmarks/train_score.py study` (each row: `benchmarks/results/NAME.md`, its command inside)", "",
             "| run | read-out C | correlation weight | spectral weight | generator directions excluded | second-stage steps | lr "
             "| AUROC clean | AUROC web | all vs all web | ECE web | threshold | minutes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        result = json.loads(path.read_text())
        recipe = (result.get("recipe") if isinstance(result, dict) else None) or {}
        if "conditions" not in result or "readout_c" not in recipe:
            continue
        clean, web = result["conditions"]["clean"], result["conditions"]["web"]
        weight = recipe.get("correlation_weight", 1.0)  # runs before the weight existed weighed correlations alike
        excluded = recipe.get("generator_directions", 0)  # runs before 2.6 excluded none
        spectral = recipe.get("spectral_weight", 1.0)  # runs before 2.6 weighed them alike
        lines.append(f"| {path.stem} | {recipe['readout_c']} | {weight} | {spectral} | {excluded} | {recipe['steps']} | "
                     f"{recipe['learning_rate']} | "
                     f"{clean['mean_generator_auroc']:.3f} | {web['mean_generator_auroc']:.3f} | {web['auroc_all']:.3f} | "
                     f"{web['ece']:.3f} | {result['threshold']} | {result['minutes']} |")
    atomic_write_text(RESULTS / "leave_one_out_study.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def render(result: dict, command: str) -> str:
    conditions = list(result["conditions"])
    lines = ["# Leave-one-out: each image scored by a model that never saw its generator family or photo source",
             "", f"`python {command}`", "",
             "| generator | n | compared with | " + " | ".join(f"AUROC {c}" for c in conditions)
             + f" | read 'likely generated' ({conditions[-1]}) |", "|---|---|---|" + "---|" * (len(conditions) + 1)]
    first = result["conditions"][conditions[0]]
    for generator, row in first["generators"].items():
        cells = [f"{result['conditions'][c]['generators'][generator]['auroc']:.3f}" for c in conditions]
        cells.append(f"{100 * result['conditions'][conditions[-1]]['generators'][generator]['flagged']:.0f} %")
        lines.append(f"| {generator} | {row['n']} | {row['tier']} photos | " + " | ".join(cells) + " |")
    lines.append("| **mean over generators** | | | " + " | ".join(
        f"**{result['conditions'][c]['mean_generator_auroc']:.3f}**" for c in conditions) + " | |")
    lines.append("| mean over the named generators (no zoo) | | | " + " | ".join(
        f"{np.mean([row['auroc'] for g, row in result['conditions'][c]['generators'].items() if not g.startswith('zoo-')]):.3f}"
        for c in conditions) + " | |")
    lines += ["", "| photo source | n | " + " | ".join(f"read 'likely generated' ({c})" for c in conditions) + " |",
              "|---|---|" + "---|" * len(conditions)]
    for source, row in first["sources"].items():
        cells = [f"{100 * result['conditions'][c]['sources'][source]['false_alarms']:.1f} %" for c in conditions]
        lines.append(f"| {source} | {row['n']} | " + " | ".join(cells) + " |")
    lines += ["", "All generated against all photos: AUROC " + ", ".join(
        f"{c} {result['conditions'][c]['auroc_all']:.3f}" for c in conditions) + ".",
        "Each branch's own score, all generated against all photos: " + "; ".join(
        f"{name} " + ", ".join(f"{c} {value:.3f}" for c, value in by_condition.items())
        for name, by_condition in result.get("branches", {}).items()) + ".",
        "ECE (calibrated, classes weighted equally): " + ", ".join(
        f"{c} {result['conditions'][c]['ece']:.3f}" for c in conditions),
        f"Calibration fitted on these out-of-fold logits: T={result['calibration']['temperature']:.3f}, "
        f"b={result['calibration']['bias']:.3f}. A photo counts as read 'likely generated' below "
        f"{result['threshold'] - 0.1:.2f} (the threshold {result['threshold']} less the verdict's margin; the threshold is the "
        "highest at which at most 5 % of any photo source of 20 or more images, and of the smaller ones pooled, reads so in each "
        "condition: "
        "`leave_one_out.choose_threshold`)."]
    if "greyscale" in result:
        lines += ["", *render_greyscale(result["greyscale"])]
    return "\n".join(lines) + "\n"


def render_greyscale(grey: dict) -> list[str]:
    """The greyscale copies' section of the leave-one-out report."""
    conditions = list(grey["conditions"])
    calibration = grey["calibration"]
    lines = ["## Greyscale copies",
             "",
             "Every evaluation image turned grey, then as above (`feature_cache.greyscale_evaluation_views`), scored by the same "
             f"fold models and calibrated on their own out-of-fold logits (T={calibration['temperature']:.3f}, "
             f"b={calibration['bias']:.3f}: `TIGASConfig.greyscale_calibration`). The threshold holds their photo sources to 5 % too.",
             "", "| | " + " | ".join(conditions) + " |", "|---|" + "---|" * len(conditions)]
    rows = {"mean AUROC over generators": lambda c: f"{grey['conditions'][c]['mean_generator_auroc']:.3f}",
            "all generated vs all photos, AUROC": lambda c: f"{grey['conditions'][c]['auroc_all']:.3f}",
            "ECE": lambda c: f"{grey['conditions'][c]['ece']:.3f}"}
    for label, key in (("greyscale calibration", "verdicts"), ("the colour calibration", "with_colour_calibration")):
        rows[f"generated read 'likely generated' / 'likely real', {label}"] = lambda c, key=key: (
            f"{100 * grey[key][c]['generated_likely_generated']:.0f} % / {100 * grey[key][c]['generated_likely_real']:.0f} %")
    rows["worst photo source read 'likely generated' (20+ photos, or the smaller ones pooled)"] = lambda c: "{} {:.1f} %".format(
        *max(((s, 100 * r["false_alarms"]) for s, r in grey["conditions"][c]["sources"].items() if r["n"] >= loo.MIN_SOURCE_IMAGES),
             key=lambda item: item[1]))
    lines += [f"| {label} | " + " | ".join(cell(c) for c in conditions) + " |" for label, cell in rows.items()]
    return lines


def model_card(summary: dict, train: FeatureCache) -> str:
    """The weights' README (Hugging Face model card), its numbers read from the leave-one-out run."""
    records = {train.records[int(i)].path: train.records[int(i)] for i in train.record_index}
    n_real = sum(r.label == 1 for r in records.values())
    clean, web = summary["conditions"]["clean"], summary["conditions"]["web"]
    grey = summary["greyscale"]
    worst = max(web["sources"].items(), key=lambda item: item[1]["false_alarms"])
    recipe = summary["recipe"]
    return f"""---
license: mit
library_name: tigas-metric
tags:
- image-quality
- generated-image-detection
- realism
---

# TIGAS {TIGASConfig().version} (ImageNet EfficientNet-Lite1 trunk, pixel-scale 224 px views)

A no-reference realism score in [0, 1] for a single image (1 = looks like a real photograph,
0 = looks generated), calibrated so that a score is a probability. These are the weights bundled
with the `tigas-metric` package: `TIGAS()` with no arguments loads them.

## Model

The TIGAS network: a frozen ImageNet EfficientNet-Lite1 trunk tapped at four scales, read two
ways: a linear read-out of every tap's channel means and standard deviations and of the
channel correlations (Gram matrices) of the three finer taps (beside them it reads the spectral
branch's radial profile, block-DCT energy and artefact cues, and each colour plane's profile, its
coherence with green and the luma power on the axes and diagonals), and each tap
through a gated residual + CBAM adapter into the fusion; a spectral branch (FFT log spectrum, radial profile,
block DCT, artefact cues); a statistical branch (moments, entropy, local statistics, learnt
natural-image prototypes); cross-modal attention fusion; score, auxiliary and per-branch heads
(`config.json`). The score's logit is the read-out's plus the fused path's correction. Stored
in float16 (scores match float32 within 1e-3). Every image is read as a 224 px square at its own
pixel scale (images smaller than that are resized up to it).

## Training data and recipe

{len(records)} images of the project's data: {n_real} photos (ImageNet samples, nine sources of
high-resolution camera photos, CIFAR-10) and {len(records) - n_real} generated images (22 named
generators and the project's own CIFAR-10 zoo models). Three augmented views per high-resolution
image, one per 32 px image (JPEG q30-100 on both classes, resizing 0.5-1.5x or an upload-style
downscale, blur, noise), and three upload views of every image (the whole image resized, up or down,
to a shorter side of 224-384 px and saved as JPEG q60-95, then read as inference reads it),
measured once by the frozen trunk (`benchmarks/train_score.py`). In
order: {training_stages(recipe)}.
`split.json` lists the digests of every file trained on.

## Evaluation: leave-one-out

Every image scored by a model trained with the same recipe that never saw its generator family,
its photo source, its zoo model or its CIFAR-10 class (seven folds); `clean` is the file as
given, `web` resized to a 256 px shorter side and saved as JPEG q75.

| | clean | web |
|---|---|---|
| mean AUROC over {len(clean['generators'])} generators | {clean['mean_generator_auroc']:.3f} | {web['mean_generator_auroc']:.3f} |
| all generated vs all photos, AUROC | {clean['auroc_all']:.3f} | {web['auroc_all']:.3f} |
| ECE (classes weighted equally) | {clean['ece']:.3f} | {web['ece']:.3f} |

Calibration (Platt on those out-of-fold scores): temperature {summary['calibration']['temperature']:.3f},
bias {summary['calibration']['bias']:.3f}. Decision threshold {summary['threshold']}: the highest at
which no photo source of 20 or more images, nor the smaller ones pooled, has over 5 % of its photos, clean or
web, read "likely generated" (a score below the threshold less 0.1);
the most at web: {worst[0]} ({worst[1]['n']} photos), {100 * worst[1]['false_alarms']:.1f} %.
Per generator and per photo source: `benchmarks/results/leave_one_out.md` in the project.

Greyscale images (no colour: `tigas_core.io.is_greyscale`) are calibrated apart, on the out-of-fold
scores of greyscale copies of the same images (temperature {grey['calibration']['temperature']:.3f},
bias {grey['calibration']['bias']:.3f}): the read-out reads colour, and without it a generated image
scores near a photo. They rank less surely (mean AUROC {grey['conditions']['clean']['mean_generator_auroc']:.3f}
clean, {grey['conditions']['web']['mean_generator_auroc']:.3f} web).

## Limits

A detector trained on a few hundred generated images: it separates many unseen generators from
photos, far from all (see the per-generator table), and at its conservative threshold it leaves
many generated images "uncertain" rather than call a photo generated. Use the score to rank and
compare, and the verdict as a hint.
"""


def training_stages(recipe: dict) -> str:
    """The recipe in words, for the model card."""
    return (f"the read-out fitted in closed form as a class-balanced logistic regression on the standardised "
            f"statistics (C = {recipe['readout_c']}, the channel correlations weighted {recipe.get('correlation_weight', 1.0)} "
            f"and the spectral measurements {recipe.get('spectral_weight', 1.0)} against the means and deviations, "
            f"its weights held orthogonal to the {recipe.get('generator_directions', 0)} directions along which the "
            f"training generators' mean statistics differ most) and frozen; then the fused path trained for "
            f"{recipe['steps']} steps of {recipe['batch_size']} (AdamW, lr {recipe['learning_rate']}, weight decay "
            f"{recipe['weight_decay']}, label smoothing {recipe['label_smoothing']}) to correct it; the per-branch heads "
            f"fitted last (`leave_one_out.fit_component_heads`)")


def final(args: argparse.Namespace) -> None:
    from tigas_core.hub import save_pretrained, write_training_split
    from tigas_core.training.calibration import apply_calibration

    train = FeatureCache.load(args.work / "train.safetensors")
    summary = json.loads((RESULTS / "leave_one_out.json").read_text())
    recipe = loo.Recipe(**summary["recipe"])
    model = loo.fresh_model(TIGASConfig(), recipe.seed)
    recipe.train(model, train, torch.arange(len(train)), recipe.seed, progress=True)
    grey = summary["greyscale"]["calibration"]
    apply_calibration(model, summary["calibration"]["temperature"], summary["calibration"]["bias"],
                      greyscale=(grey["temperature"], grey["bias"]))
    model.config.threshold = summary["threshold"]
    reals = train.labels > 0.5
    model.reference_profile.copy_(train.measured["spectral"]["profile"][reals].mean(0))
    save_pretrained(model.eval(), args.export, model_card=model_card(summary, train), half=True)
    write_training_split(args.export, sorted({train.records[int(i)].path for i in train.record_index}))
    rows = torch.arange(0, len(train), max(1, len(train) // 500))
    stored, kept = predict_from_cache(TIGASModel.from_pretrained(args.export), train, rows), predict_from_cache(model, train, rows)
    drift = float(np.abs(expit(stored) - expit(kept)).max())  # the raw score, before calibration (which only narrows it)
    if drift > 1e-3:
        raise RuntimeError(f"the float16 export moves scores by {drift:.2e} (> 1e-3)")
    print(f"exported to {args.export} (float16 storage moves scores by at most {drift:.1e})")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    for name in ("measure", "loo", "final", "study"):
        step = sub.add_parser(name)
        step.add_argument("--work", type=Path, default=Path("runs/score"))
        step.add_argument("--seed", type=int, default=0)
        step.add_argument("--threads", type=int, default=2)
    sub.choices["measure"].add_argument("--data", nargs="+", default=["../shared/data"])
    sub.choices["measure"].add_argument("--zoo", nargs="*", default=["runs/zoo_fakes"])
    sub.choices["measure"].add_argument("--views", type=int, default=3, help="training views per high-resolution image")
    sub.choices["measure"].add_argument("--small-views", type=int, default=1, help="training views per 32 px image")
    sub.choices["measure"].add_argument("--upload-views", type=int, default=3,
                                        help="training views per image as an upload ends up (augment.upload_view)")
    sub.choices["measure"].add_argument("--small-reals", type=int, default=1000, help="CIFAR-10 photos used")
    sub.choices["measure"].add_argument("--small-fakes", type=int, default=200, help="samples used of each zoo model")
    sub.choices["measure"].add_argument("--backbone", default=TIGASConfig().backbone,
                                        help="trunk to measure with (a study; loo and final train the default trunk)")
    sub.choices["measure"].add_argument("--limit", type=int, default=None, help="first N records only (a smoke test)")
    defaults = loo.Recipe()
    sub.choices["loo"].add_argument("--readout-c", type=float, default=defaults.readout_c,
                                    help="inverse L2 strength of the read-out's logistic regression")
    sub.choices["loo"].add_argument("--correlation-weight", type=float, default=defaults.correlation_weight,
                                    help="the channel correlations' weight against the means and deviations in the read-out")
    sub.choices["loo"].add_argument("--spectral-weight", type=float, default=defaults.spectral_weight,
                                    help="the spectral measurements' weight against the means and deviations in the read-out")
    sub.choices["loo"].add_argument("--generator-directions", type=int, default=defaults.generator_directions,
                                    help="directions along which the training generators differ that the read-out may not use")
    sub.choices["loo"].add_argument("--steps", type=int, default=defaults.steps, help="second-stage steps (0: the read-out alone)")
    sub.choices["loo"].add_argument("--lr", type=float, default=defaults.learning_rate)
    sub.choices["loo"].add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    sub.choices["loo"].add_argument("--label-smoothing", type=float, default=defaults.label_smoothing)
    sub.choices["loo"].add_argument("--name", default="leave_one_out",
                                    help="results under benchmarks/results/NAME.{json,md} (final reads leave_one_out)")
    sub.choices["loo"].add_argument("--report-only", action="store_true", help="report the out-of-fold logits of the last run again")
    sub.choices["final"].add_argument("--export", type=Path, default=Path("assets"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"measure": measure, "loo": run_loo, "final": final, "study": study}[args.step](args)


if __name__ == "__main__":
    main()
