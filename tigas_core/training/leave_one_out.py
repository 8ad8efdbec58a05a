"""Leave-one-out evaluation of the cached-feature recipe, and the final run it vouches for.

Every generated image is scored by a model that never saw its generator family, and every photo
by one that never saw its photo source: folds hold out a group of generators and one or two
photo sources together. The out-of-fold logits give the honest numbers (AUROC per generator and
condition, false alarms per photo source, ECE) and also fit the calibration of the final model,
which is trained on everything with the same recipe.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from tigas_core.api import verdict
from tigas_core.config import TIGASConfig
from tigas_core.data.records import REAL_LABEL, ImageRecord
from tigas_core.metrics.evaluation import expected_calibration_error
from tigas_core.model import TIGASModel
from tigas_core.model.backbone import load_imagenet_weights
from tigas_core.model.perceptual_branch import tap_statistics_size
from tigas_core.model.tigas import readout_input
from tigas_core.training.calibration import fit_platt
from tigas_core.training.feature_cache import EVAL_CONDITIONS, FeatureCache, condition_of, logits_from_cache, train_from_cache
from tigas_core.training.losses import LossWeights

log = logging.getLogger("tigas.train")

# Generator families held out together (a family shares its tricks, so holding out one member
# alone would flatter the score), each with photo sources held out beside it, one of the zoo's
# 32 px models and one or two CIFAR-10 classes ("source/folder" names a part of a source): the
# only 32 px photos are CIFAR-10's, and a model that never saw a 32 px photo calls them all generated.
DEFAULT_FOLDS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("stable-diffusion-v1", "stable-diffusion-2", "ldm-txt2img", "zoo-dcgan"), ("coco", "cifar10/airplane", "cifar10/automobile")),
    (("sdxl", "hunyuan-dit", "lumina-t2x", "deepfloyd-if", "infinity", "zoo-wgan_gp"), ("openimages", "cifar10/bird", "cifar10/cat")),
    (("lcm-dreamshaper-v7", "edm2", "zoo-cgan"), ("dreambooth", "rembg", "cifar10/deer")),
    (("dalle-mega", "rudalle-malevich", "rudalle-kandinsky-xxl", "vqgan-taming", "zoo-vae"), ("urban100", "carvekit", "cifar10/dog")),
    (("biggan", "stylegan-xl", "stylegan3", "dcgan-celeba", "zoo-ddpm"), ("imagenet", "cifar10/frog")),
    (("edm", "ddpm-small"), ("sunhays80", "idealo-nima", "cifar10/horse")),
    (("sit-xl", "lightningdit"), ("sflckr", "cifar10/ship", "cifar10/truck")),
]
# Inverse L2 strength of the read-out's logistic regression (on standardised statistics): chosen
# out of fold (benchmarks/results/readout_study.md); weaker regularisation learns the training
# generators' content.
READOUT_C = 0.0005
# How much the channel correlations weigh against the per-channel means and standard deviations
# after standardising: their L2 penalty is divided by its square. Chosen out of fold like C: there
# are 7,272 correlations against 992 means and deviations.
CORRELATION_WEIGHT = 0.5
# The same for the spectral measurements the read-out reads (518 columns beside the trunk's 8,264):
# chosen out of fold with the generator directions below excluded.
SPECTRAL_WEIGHT = 3.0
# How many directions the read-out may not use: those along which the training generators' mean
# features differ most from one another (`generator_directions`). Chosen out of fold like C.
GENERATOR_DIRECTIONS = 4
COMPONENT_C = 0.01  # the same for the per-branch heads (128 features each)
SMALL_SIDE = 48  # images up to this shorter side are compared with photos of their own size
# Photo sources smaller than this are too few to hold the threshold to on their own; `choose_threshold`
# holds them to it pooled (the polished, stock-style photos generators imitate are such sources).
MIN_SOURCE_IMAGES = 20


@dataclasses.dataclass
class Recipe:
    """How a model is trained on a feature cache, in three stages: the read-out of the trunk's
    texture statistics fitted in closed form and frozen (`fit_readout`), then the fused path
    (adapters, spectral and statistical branches, fusion, heads) trained with AdamW to correct it,
    then the per-branch heads fitted (`fit_component_heads`).

    Why the read-out first: the read-out alone is the strongest single part out of fold, and a closed-form
    fit finds its regularised optimum exactly, whatever the batch noise. A short, gentle second
    stage adds what the other branches see without unlearning it (``steps=0``: the read-out alone)."""

    readout_c: float = READOUT_C
    correlation_weight: float = CORRELATION_WEIGHT
    spectral_weight: float = SPECTRAL_WEIGHT
    generator_directions: int = GENERATOR_DIRECTIONS
    steps: int = 100
    batch_size: int = 64
    learning_rate: float = 2e-4
    weight_decay: float = 0.1
    label_smoothing: float = 0.1
    generator_balance: float = 0.5
    seed: int = 0

    def train(self, model: TIGASModel, cache: FeatureCache, rows: torch.Tensor, seed: int, progress: bool = False) -> list[float]:
        """`fit_readout`, `train_from_cache` with this recipe, then `fit_component_heads`; returns
        the second stage's losses."""
        fit_readout(model, cache, rows, self.readout_c, self.correlation_weight, self.spectral_weight, self.generator_directions)
        losses = train_from_cache(model, cache, rows, steps=self.steps, batch_size=self.batch_size,
                                  learning_rate=self.learning_rate, weight_decay=self.weight_decay,
                                  loss_weights=LossWeights(label_smoothing=self.label_smoothing),
                                  generator_balance=self.generator_balance, seed=seed, progress=progress)
        fit_component_heads(model, cache, rows)
        return losses


def generator_directions(standardised: np.ndarray, generators: np.ndarray, count: int) -> np.ndarray:
    """[k, F] orthonormal: the ``count`` directions (at most one fewer than there are generators)
    along which the generators' mean features spread most around their average, each generator
    counting once. ``standardised``: the generated images' features, ``generators``: whose each is.

    Why: a read-out that may not use them reads what the generators share against photos, not what
    tells one generator from another, and that is what carries over to a generator never seen
    (benchmarks/results/readout_study.md)."""
    names = np.unique(generators)
    means = np.stack([standardised[generators == name].mean(axis=0) for name in names])
    _, _, directions = np.linalg.svd(means - means.mean(axis=0), full_matrices=False)
    return directions[: max(0, min(count, len(names) - 1))]


def balanced_logistic_regression(features: np.ndarray, labels: np.ndarray, c: float, column_weights: np.ndarray | float = 1.0,
                                 generators: np.ndarray | None = None, excluded_directions: int = 0) -> tuple[np.ndarray, ...]:
    """(mean [F], scale [F], weight [F], bias) of a class-balanced L2 logistic regression on the
    standardised features, each column multiplied by its ``column_weights`` entry (a column weighted
    w is penalised 1/w^2 as much): logit = ((features - mean) / scale) @ weight + bias.

    With ``excluded_directions``, the weights are held orthogonal to that many `generator_directions`
    of the generated rows (``generators``: each row's generator; photos' entries are ignored): the
    features are fitted with those directions projected out."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(features)
    weighted = scaler.transform(features) * column_weights
    if excluded_directions:
        excluded = generator_directions(weighted[~labels], np.asarray(generators)[~labels], excluded_directions)
        weighted -= (weighted @ excluded.T) @ excluded
    regression = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(weighted, labels)
    return scaler.mean_, scaler.scale_, regression.coef_[0] * column_weights, regression.intercept_[0]


@torch.no_grad()
def fit_readout(model: TIGASModel, cache: FeatureCache, rows: torch.Tensor, c: float = READOUT_C,
                correlation_weight: float = CORRELATION_WEIGHT, spectral_weight: float = SPECTRAL_WEIGHT,
                excluded_directions: int = GENERATOR_DIRECTIONS) -> None:
    """Fit ``model.readout`` (standardisation + linear logit) to the cached ``rows`` as a
    `balanced_logistic_regression` (sklearn, exact optimum) with the channel correlations weighted
    ``correlation_weight`` and the spectral measurements ``spectral_weight`` against the means and deviations, and
    ``excluded_directions`` along which the training generators differ left unread, freeze it, and
    zero the fused path's last layer so that the model starts as its read-out."""
    config, channels = model.config, model.perceptual.trunk.feature_info.channels()
    spectral_measured = {name: cache.measured["spectral"][name][rows] for name in config.readout_spectral}
    statistics = readout_input(cache.tap_statistics(config.readout_correlations)[rows], spectral_measured,
                               config.readout_spectral).double().numpy()
    # `readout_input`'s columns: means and deviations, then the correlations, then the spectral measurements
    column = np.arange(statistics.shape[1])
    trunk_size = tap_statistics_size(channels, config.readout_correlations)
    is_correlation = (column >= tap_statistics_size(channels)) & (column < trunk_size)
    column_weights = np.where(is_correlation, correlation_weight, np.where(column >= trunk_size, spectral_weight, 1.0))
    generators = np.array([cache.records[int(i)].generator for i in cache.record_index[rows]])
    mean, scale, weight, bias = balanced_logistic_regression(statistics, cache.labels[rows].numpy() > 0.5, c, column_weights,
                                                             generators, excluded_directions)
    norm, linear = model.readout
    norm.running_mean.copy_(torch.from_numpy(mean))
    norm.running_var.copy_(torch.from_numpy(scale**2 - norm.eps).clamp_min(0))
    linear.weight.copy_(torch.from_numpy(weight)[None])
    linear.bias.fill_(float(bias))
    model.readout.requires_grad_(False)
    model.readout.eval()
    nn.init.zeros_(model.regression_head[-1].weight)
    nn.init.zeros_(model.regression_head[-1].bias)


@torch.no_grad()
def fit_component_heads(model: TIGASModel, cache: FeatureCache, rows: torch.Tensor, c: float = COMPONENT_C,
                        batch_size: int = 256) -> None:
    """The per-branch scores users see, fitted last: the spectral and statistical heads as
    class-balanced logistic regressions on their branch's features, so each says what that branch
    alone can tell; the perceptual head zeroed, leaving the perceptual score the trunk's read-out.
    (A few hundred gentle steps leave the heads near their random start: every branch read ~0.5.)"""
    model.eval()
    features: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(rows), batch_size):
        outputs = model(measured=cache.take(rows[start : start + batch_size]))
        for name, value in outputs["features"].items():
            features.setdefault(name, []).append(value.double())
    labels = cache.labels[rows].numpy() > 0.5
    for name, head in model.component_heads.items():
        if name == "perceptual":
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
            continue
        mean, scale, weight, bias = balanced_logistic_regression(torch.cat(features[name]).numpy(), labels, c)
        head.weight.copy_(torch.from_numpy(weight / scale)[None])  # the standardisation folded in
        head.bias.fill_(float(bias - (weight / scale) @ mean))


def fold_of(record: ImageRecord, folds=DEFAULT_FOLDS) -> int | None:
    """Index of the fold that holds ``record`` out (None: it is trained on in every fold)."""
    names = ({record.source, f"{record.source}/{Path(record.path).parent.name}"} if record.label == REAL_LABEL
             else {record.generator})
    for index, (generators, sources) in enumerate(folds):
        if names & set(sources if record.label == REAL_LABEL else generators):
            return index
    return None


def fresh_model(config: TIGASConfig, seed: int) -> TIGASModel:
    """A new TIGAS model with the ImageNet trunk; only the learnt layers differ between seeds."""
    torch.manual_seed(seed)
    model = TIGASModel(TIGASConfig.from_dict(config.to_dict()))
    load_imagenet_weights(model.perceptual.trunk, config.backbone)
    return model


def fold_rows(cache: FeatureCache, index: int, held_out: bool, folds=DEFAULT_FOLDS) -> torch.Tensor:
    """Rows of ``cache`` whose record fold ``index`` holds out (``held_out``) or trains on."""
    flags = [(fold_of(cache.records[int(i)], folds) == index) == held_out for i in cache.record_index]
    return torch.nonzero(torch.tensor(flags, dtype=torch.bool)).flatten()


def out_of_fold_logits(config: TIGASConfig, train: FeatureCache, test: FeatureCache, recipe: Recipe,
                       folds=DEFAULT_FOLDS, progress: bool = True, branches: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Raw logit of every test view from the fold model that held its record out (NaN where no
    fold holds it out). ``branches``, if given, is filled with each branch's logit the same way."""
    logits = np.full(len(test), np.nan, dtype=np.float64)
    for index, (generators, sources) in enumerate(folds):
        train_rows, test_rows = fold_rows(train, index, False, folds), fold_rows(test, index, True, folds)
        if len(test_rows) == 0:
            continue
        model = fresh_model(config, recipe.seed + index)
        losses = recipe.train(model, train, train_rows, recipe.seed + index, progress)
        found = logits_from_cache(model, test, test_rows)
        logits[test_rows.numpy()] = found.pop("score")
        for name, values in found.items() if branches is not None else ():
            branches.setdefault(name, np.full(len(test), np.nan))[test_rows.numpy()] = values
        log.info("fold %d (%s | %s): %d train views, %d test views, final loss %s", index, ",".join(generators),
                 ",".join(sources), len(train_rows), len(test_rows), f"{np.mean(losses[-50:]):.3f}" if losses else "-")
    return logits


def report(test: FeatureCache, logits: np.ndarray, temperature: float, bias: float, threshold: float = 0.5) -> dict:
    """For each condition (EVAL_CONDITIONS): per-generator AUROC (its fakes against the held-out photos of its size
    tier: 32 px samples against 32 px photos, the rest against the high-resolution photos), the
    share of each photo source (and of the smaller ones pooled: `threshold_groups`) read "likely
    generated", and ECE of the calibrated scores."""
    small = {r.path: is_small(r.path) for r in test.records}
    conditions, by_condition = condition_of(np.arange(len(test))), {}
    for c, condition in enumerate(EVAL_CONDITIONS):
        rows = np.flatnonzero((conditions == c) & ~np.isnan(logits))
        records = [test.records[int(test.record_index[r])] for r in rows]
        scores = expit((logits[rows] - bias) / temperature)
        labels = np.array([r.label for r in records])
        reals = {tier: scores[(labels == REAL_LABEL) & (np.array([small[r.path] for r in records]) == tier)] for tier in (False, True)}
        generators, sources = defaultdict(list), defaultdict(list)
        for score, record in zip(scores, records):
            if record.label == REAL_LABEL:
                sources[record.source].append(score)
            else:
                generators[record.generator].append((score, small[record.path]))
        rows_out = {}
        for g, items in sorted(generators.items()):
            values = np.array([v for v, _ in items])
            tier = bool(np.mean([t for _, t in items]) > 0.5)
            rows_out[g] = {"auroc": _auroc(reals[tier], values), "n": len(values), "tier": "32 px" if tier else "high-res",
                           "flagged": _share_flagged(values, threshold)}
        by_condition[condition] = {
            "generators": rows_out,
            "sources": {s: {"n": len(v), "false_alarms": _share_flagged(v, threshold)}
                        for s, v in {**dict(sorted(sources.items())), **threshold_groups(sources)}.items()},
            "auroc_all": _auroc(scores[labels == REAL_LABEL], scores[labels != REAL_LABEL]),
            "ece": expected_calibration_error(scores, labels),
            "mean_generator_auroc": float(np.nanmean([v["auroc"] for v in rows_out.values()])),
        }
    return {"conditions": by_condition, "calibration": {"temperature": temperature, "bias": bias}, "threshold": threshold}


def branch_auroc(test: FeatureCache, branches: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per branch and condition: AUROC of the branch's own out-of-fold score, all generated against all photos."""
    labels, conditions = test.labels.numpy(), condition_of(np.arange(len(test)))
    found: dict[str, dict[str, float]] = {}
    for name, logits in branches.items():
        for c, condition in enumerate(EVAL_CONDITIONS):
            rows = np.flatnonzero((conditions == c) & ~np.isnan(logits))
            found.setdefault(name, {})[condition] = _auroc(logits[rows][labels[rows] > 0.5], logits[rows][labels[rows] <= 0.5])
    return found


def is_small(path: str) -> bool:
    """Whether an image file's shorter side is at most SMALL_SIDE px (read from its header)."""
    from PIL import Image

    with Image.open(path) as image:
        return min(image.size) <= SMALL_SIDE


def _auroc(reals: np.ndarray, fakes: np.ndarray) -> float:
    if len(reals) == 0 or len(fakes) == 0:
        return math.nan
    labels = np.r_[np.ones(len(reals)), np.zeros(len(fakes))]
    return float(roc_auc_score(labels, np.r_[reals, fakes]))


def _share_flagged(scores, threshold: float) -> float:
    return float(np.mean([verdict(float(s), threshold) == "likely generated" for s in scores]))


SMALLER_SOURCES = "smaller sources, pooled"


def threshold_groups(by_source: dict[str, list[float]]) -> dict[str, list[float]]:
    """The photo groups a threshold is held to: each source of MIN_SOURCE_IMAGES or more photos,
    and the smaller sources pooled (when they are that many together)."""
    pooled = [score for values in by_source.values() if len(values) < MIN_SOURCE_IMAGES for score in values]
    groups = {source: values for source, values in by_source.items() if len(values) >= MIN_SOURCE_IMAGES}
    return groups | {SMALLER_SOURCES: pooled} if len(pooled) >= MIN_SOURCE_IMAGES else groups


def choose_threshold(test: FeatureCache, logits: np.ndarray, temperature: float, bias: float,
                     false_alarms: float = 0.05, margin: float = 0.1) -> float:
    """The highest decision threshold (in steps of 0.01, at most 0.5) at which no more than
    ``false_alarms`` of the held-out photos of any source with MIN_SOURCE_IMAGES or more, or of the
    smaller sources pooled, in any condition, read "likely generated" (a score below threshold -
    margin). Why: a verdict that calls real photos generated costs users more than one that calls a
    generated image uncertain, and the out-of-fold scores are the honest estimate of where photos it
    never saw will land."""
    scores = expit((logits - bias) / temperature)
    by_condition: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in np.flatnonzero(~np.isnan(logits)):
        record = test.records[int(test.record_index[row])]
        if record.label == REAL_LABEL:
            by_condition[int(condition_of(row))][record.source].append(scores[row])
    sources = [np.array(v) for by_source in by_condition.values() for v in threshold_groups(by_source).values()]
    for threshold in np.round(np.arange(0.5, 0.099, -0.01), 2):
        if all(np.mean(v < threshold - margin) <= false_alarms for v in sources):
            return float(threshold)
    return 0.1


def calibrate(test: FeatureCache, logits: np.ndarray) -> tuple[float, float]:
    """Platt fit (classes weighted equally) on the out-of-fold logits of every condition."""
    valid = ~np.isnan(logits)
    return fit_platt(logits[valid], test.labels.numpy()[valid])
