"""Which trunk and which taps carry a generator's traces to generators never seen? Measured, not guessed.

    python benchmarks/backbone_study.py --data ../shared/data --zoo runs/zoo_fakes --work runs/study \
        --backbones efficientnet_lite0 efficientnet_lite1 efficientnet_lite2

For each backbone, every view `benchmarks/train_score.py measure` would cache (the same records,
training and evaluation views) is reduced to the mean and standard deviation of every trunk
channel at all five taps, plus the spectral and statistical measurements. A class-balanced
logistic regression (the "frozen probe") is then scored out of fold on `leave_one_out.DEFAULT_FOLDS`
for several feature sets; the table of mean generator AUROC (clean, web) goes to
benchmarks/results/backbone_study.md. The probe is a cheap, stable stand-in for the learnt
layers: what it cannot separate out of fold, the adapters trained on the same views rarely do.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).parent))
from train_score import RESULTS, select_records  # noqa: E402

from tigas_core.config import TIGASConfig, atomic_write_text  # noqa: E402
from tigas_core.data import get_level  # noqa: E402
from tigas_core.model.perceptual_branch import mean_std_pool  # noqa: E402
from tigas_core.training import leave_one_out as loo  # noqa: E402
from tigas_core.training.feature_cache import EVAL_CONDITIONS, FeatureCache, evaluation_views, measure_records, training_views  # noqa: E402

ALL_TAPS = (0, 1, 2, 3, 4)
FEATURE_SETS = {  # name -> (taps read, with the spectral + statistical measurements)
    "taps 1-4": ((1, 2, 3, 4), False),
    "taps 0-4": (ALL_TAPS, False),
    "taps 0-2": ((0, 1, 2), False),
    "taps 0-4 + spectral + statistical": (ALL_TAPS, True),
}


class PooledMeasure(nn.Module):
    """`TIGASModel.measure` with each trunk map pooled to its channels' mean and std, so a cache of
    every view of every image fits in memory whatever the taps."""

    def __init__(self, backbone: str):
        super().__init__()
        self.model = loo.fresh_model(TIGASConfig(backbone=backbone, backbone_taps=ALL_TAPS), 0)

    def measure(self, x: torch.Tensor) -> dict:
        measured = self.model.measure(x)
        return {**measured, "trunk": [mean_std_pool(tap.float()) for tap in measured["trunk"]]}


def features(cache: FeatureCache, taps: tuple[int, ...], measurements: bool) -> np.ndarray:
    parts = [cache.measured["trunk"][t].float() for t in taps]
    if measurements:
        parts += [v.float().flatten(1) for _, v in sorted(cache.measured["spectral"].items())]
        parts.append(cache.measured["statistical"].float().flatten(1))
    return torch.cat(parts, dim=1).numpy()


def probe_logits(train: FeatureCache, test: FeatureCache, taps: tuple[int, ...], measurements: bool, c: float) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train_x, test_x = features(train, taps, measurements), features(test, taps, measurements)
    logits = np.full(len(test), np.nan)
    for index in range(len(loo.DEFAULT_FOLDS)):
        train_rows = loo.fold_rows(train, index, held_out=False).numpy()
        test_rows = loo.fold_rows(test, index, held_out=True).numpy()
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=3000))
        probe.fit(train_x[train_rows], train.labels.numpy()[train_rows])
        logits[test_rows] = probe.decision_function(test_x[test_rows])
    return logits


def measure(backbone: str, args: argparse.Namespace) -> tuple[FeatureCache, FeatureCache]:
    folder = args.work / backbone
    folder.mkdir(parents=True, exist_ok=True)
    records = select_records(args.data + args.zoo, args.small_reals, args.small_fakes, args.seed)
    model, config = PooledMeasure(backbone), TIGASConfig()
    caches = []
    for name, make in (("eval", evaluation_views(config.img_size)),
                       ("train", training_views(config.img_size, get_level("native"), args.views, 1))):
        path = folder / f"{name}.safetensors"
        if not path.exists():
            tick = time.time()
            measure_records(model, records, make, seed=args.seed, batch_size=32).save(path)
            print(f"{backbone} {name}: {time.time() - tick:.0f} s", flush=True)
        caches.append(FeatureCache.load(path))
    return caches[1], caches[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["../shared/data"])
    parser.add_argument("--zoo", nargs="*", default=["runs/zoo_fakes"])
    parser.add_argument("--work", type=Path, default=Path("runs/study"))
    parser.add_argument("--backbones", nargs="+", default=["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
    parser.add_argument("--views", type=int, default=3)
    parser.add_argument("--small-reals", type=int, default=600)
    parser.add_argument("--small-fakes", type=int, default=120)
    parser.add_argument("--c", type=float, default=0.002, help="inverse L2 strength of the probe")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    conditions = list(EVAL_CONDITIONS)
    lines = ["# Frozen-probe study: mean generator AUROC out of fold (leave_one_out.DEFAULT_FOLDS)", "",
             f"`python benchmarks/backbone_study.py {' '.join(sys.argv[1:])}`", "",
             "| backbone | features | " + " | ".join(f"AUROC {c}" for c in conditions) + " | all vs all (web) |",
             "|---|---|" + "---|" * (len(conditions) + 1)]
    for backbone in args.backbones:
        train, test = measure(backbone, args)
        for name, (taps, measurements) in FEATURE_SETS.items():
            logits = probe_logits(train, test, taps, measurements, args.c)
            result = loo.report(test, logits, 1.0, 0.0)["conditions"]
            cells = [f"{result[c]['mean_generator_auroc']:.3f}" for c in conditions]
            lines.append(f"| {backbone} | {name} | " + " | ".join(cells) + f" | {result['web']['auroc_all']:.3f} |")
            print(lines[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "backbone_study.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
