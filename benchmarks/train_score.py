"""Train the bundled TIGAS weights and measure them honestly, in three resumable steps.

    python benchmarks/train_score.py measure --data ../shared/data --zoo runs/zoo_fakes --work runs/score
    python benchmarks/train_score.py loo --work runs/score       # leave-one-out table -> benchmarks/results/
    python benchmarks/train_score.py final --work runs/score --export assets/

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

from tigas_core.config import TIGASConfig, atomic_write_text
from tigas_core.data import get_level, load_records
from tigas_core.training import leave_one_out as loo
from tigas_core.training.feature_cache import (EVAL_CONDITIONS, FeatureCache, evaluation_views, measure_records,
                                                training_views)

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
    config = TIGASConfig()
    model = loo.fresh_model(config, 0)
    records = select_records(args.data + args.zoo, args.small_reals, args.small_fakes, args.seed)[: args.limit]
    print(f"{len(records)} records; threads {torch.get_num_threads()}")
    for name, make in (("eval", evaluation_views(config.img_size)),
                       ("train", training_views(config.img_size, get_level("native"), args.views, args.small_views))):
        path = args.work / f"{name}.safetensors"
        if path.exists():
            print(f"{path} exists, kept")
            continue
        tick = time.time()
        cache = measure_records(model, records, make, seed=args.seed, batch_size=32)
        args.work.mkdir(parents=True, exist_ok=True)
        cache.save(path)
        print(f"{name}: {len(cache)} views in {time.time() - tick:.0f} s")


def run_loo(args: argparse.Namespace) -> None:
    train, test = FeatureCache.load(args.work / "train.safetensors"), FeatureCache.load(args.work / "eval.safetensors")
    recipe = loo.Recipe(steps=args.steps, learning_rate=args.lr, weight_decay=args.weight_decay, seed=args.seed)
    tick = time.time()
    if args.probe:  # the frozen-trunk logistic-regression reference, for the same table
        logits = loo.probe_out_of_fold_logits(train, test)
        temperature, bias = loo.calibrate(test, logits)
        result = loo.report(test, logits, list(EVAL_CONDITIONS), temperature, bias)
        atomic_write_text(RESULTS / "leave_one_out_probe.md", render(result, " ".join(sys.argv)))
        print(render(result, " ".join(sys.argv)))
        return
    logits = loo.out_of_fold_logits(TIGASConfig(), train, test, recipe)
    np.save(args.work / "oof_logits.npy", logits)
    temperature, bias = loo.calibrate(test, logits)
    result = loo.report(test, logits, list(EVAL_CONDITIONS), temperature, bias)
    result["recipe"] = dataclasses.asdict(recipe)
    result["minutes"] = round((time.time() - tick) / 60, 1)
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "leave_one_out.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(RESULTS / "leave_one_out.md", render(result, " ".join(sys.argv)))
    print(render(result, " ".join(sys.argv)))


def render(result: dict, command: str) -> str:
    conditions = list(result["conditions"])
    lines = [f"# Leave-one-out: each image scored by a model that never saw its generator family or photo source",
             "", f"`python {command}`", "",
             "| generator | n | compared with | " + " | ".join(f"AUROC {c}" for c in conditions) + " |",
             "|---|---|---|" + "---|" * len(conditions)]
    first = result["conditions"][conditions[0]]
    for generator, row in first["generators"].items():
        cells = [f"{result['conditions'][c]['generators'][generator]['auroc']:.3f}" for c in conditions]
        lines.append(f"| {generator} | {row['n']} | {row['tier']} photos | " + " | ".join(cells) + " |")
    lines.append("| **mean over generators** | | | " + " | ".join(
        f"**{result['conditions'][c]['mean_generator_auroc']:.3f}**" for c in conditions) + " |")
    lines += ["", "| photo source | n | " + " | ".join(f"read 'likely generated' ({c})" for c in conditions) + " |",
              "|---|---|" + "---|" * len(conditions)]
    for source, row in first["sources"].items():
        cells = [f"{100 * result['conditions'][c]['sources'][source]['false_alarms']:.1f} %" for c in conditions]
        lines.append(f"| {source} | {row['n']} | " + " | ".join(cells) + " |")
    lines += ["", "All generated against all photos: AUROC " + ", ".join(
        f"{c} {result['conditions'][c]['auroc_all']:.3f}" for c in conditions) + ".",
        "ECE (calibrated, classes weighted equally): " + ", ".join(
        f"{c} {result['conditions'][c]['ece']:.3f}" for c in conditions),
        f"Calibration fitted on these out-of-fold logits: T={result['calibration']['temperature']:.3f}, "
        f"b={result['calibration']['bias']:.3f}. A photo counts as read 'likely generated' below "
        f"{result['threshold'] - 0.1:.1f} (the threshold {result['threshold']} less the verdict's margin)."]
    return "\n".join(lines) + "\n"


def final(args: argparse.Namespace) -> None:
    from tigas_core.hub import save_pretrained, write_training_split
    from tigas_core.training.calibration import apply_calibration
    from tigas_core.training.feature_cache import train_from_cache

    train = FeatureCache.load(args.work / "train.safetensors")
    summary = json.loads((RESULTS / "leave_one_out.json").read_text())
    recipe = loo.Recipe(**summary["recipe"])
    model = loo.fresh_model(TIGASConfig(), recipe.seed)
    train_from_cache(model, train, torch.arange(len(train)), steps=recipe.steps, batch_size=recipe.batch_size,
                     learning_rate=recipe.learning_rate, weight_decay=recipe.weight_decay,
                     generator_balance=recipe.generator_balance, seed=recipe.seed, progress=True)
    apply_calibration(model, summary["calibration"]["temperature"], summary["calibration"]["bias"])
    reals = train.labels > 0.5
    model.reference_profile.copy_(train.measured["spectral"]["profile"][reals].mean(0))
    save_pretrained(model.eval(), args.export, half=True)
    write_training_split(args.export, sorted({train.records[int(i)].path for i in train.record_index}))
    print(f"exported to {args.export}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    for name in ("measure", "loo", "final"):
        step = sub.add_parser(name)
        step.add_argument("--work", type=Path, default=Path("runs/score"))
        step.add_argument("--seed", type=int, default=0)
        step.add_argument("--threads", type=int, default=2)
    sub.choices["measure"].add_argument("--data", nargs="+", default=["../shared/data"])
    sub.choices["measure"].add_argument("--zoo", nargs="*", default=["runs/zoo_fakes"])
    sub.choices["measure"].add_argument("--views", type=int, default=4, help="training views per high-resolution image")
    sub.choices["measure"].add_argument("--small-views", type=int, default=1, help="training views per 32 px image")
    sub.choices["measure"].add_argument("--small-reals", type=int, default=1000, help="CIFAR-10 photos used")
    sub.choices["measure"].add_argument("--small-fakes", type=int, default=200, help="samples used of each zoo model")
    sub.choices["measure"].add_argument("--limit", type=int, default=None, help="first N records only (a smoke test)")
    sub.choices["loo"].add_argument("--steps", type=int, default=1500)
    sub.choices["loo"].add_argument("--lr", type=float, default=1e-3)
    sub.choices["loo"].add_argument("--weight-decay", type=float, default=0.05)
    sub.choices["loo"].add_argument("--probe", action="store_true", help="the frozen-trunk logistic-regression reference instead")
    sub.choices["final"].add_argument("--export", type=Path, default=Path("assets"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"measure": measure, "loo": run_loo, "final": final}[args.step](args)


if __name__ == "__main__":
    main()
