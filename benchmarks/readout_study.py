"""Which read-out carries over to generators and photo sources never seen? Each choice measured out
of fold on the cached views of `benchmarks/train_score.py measure` (the read-out alone: the
second stage barely moves these numbers, benchmarks/results/leave_one_out_study.md).

    python benchmarks/train_score.py measure ... --work runs/score --upload-views 0   # the cache of most rows
    ln -s ../score/eval.safetensors runs/score_up/  # the same records and evaluation views
    python benchmarks/train_score.py measure ... --work runs/score_up --upload-views 1  # + an upload view: TIGAS 2.2's
    ln -s ../score/eval.safetensors runs/score6/
    python benchmarks/train_score.py measure ... --work runs/score6 --views 6 --small-views 2 --upload-views 0
    python benchmarks/train_score.py measure ... --work runs/score_lite2 --backbone efficientnet_lite2 --upload-views 0
    ln -s ../score/eval.safetensors runs/score_up3/
    python benchmarks/train_score.py measure ... --work runs/score_up3 --upload-views 3  # TIGAS 2.3's
    python benchmarks/readout_study.py                       # the table in benchmarks/results/readout_study.md
    python benchmarks/readout_study.py --only "C=0.005"      # one row, measured again in place

A row: which statistics of the trunk maps (mean, std, skew, log-kurtosis, max per channel and tap),
the logistic regression's C, how training views are weighted (``balance``: a generator's or photo
source's share of its class grows as its size ** balance; 1 = classes balanced only), and which cache
(``--work``: another trunk or more views, made by `train_score.py measure --backbone/--views`; "A+B"
puts the statistics of two caches of the same views side by side), whether the statistics pass
through a signed square root first (the power normalisation of Fisher-vector probes), and which
taps' channel correlations are read too (`perceptual_branch.channel_correlations`, "gram"; "gramN xW":
weighted W against the statistics after standardising), spatial autocorrelations of each channel ("lagYX":
Y, X positions away), and which of the other branches' measurements are read beside them
("spectral.profile", ...: TIGAS 2.4 reads the spectral profile, DCT energy and artefact cues, 2.5 the
colour spectra too), and how many directions along which the training generators differ the read-out
may not use (``generator_directions``: TIGAS 2.6 excludes 4).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, str(Path(__file__).parent))
from train_score import RESULTS  # noqa: E402

from tigas_core.config import atomic_write_text  # noqa: E402
from tigas_core.data.dataset import balanced_weights  # noqa: E402
from tigas_core.model.perceptual_branch import channel_correlations, standardised_positions  # noqa: E402
from tigas_core.training import leave_one_out as loo  # noqa: E402
from tigas_core.training.feature_cache import EVAL_CONDITIONS, FeatureCache, balance_key, condition_of  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    statistics: tuple[str, ...] = ("mean", "std")
    c: float = 0.002  # the 2.1 read-out's
    balance: float = 1.0
    work: str = "runs/score"
    signed_sqrt: bool = False
    gram_taps: tuple[int, ...] = ()
    cross_taps: tuple[int, ...] = ()  # tap i's channels correlated with tap i+1's (tap i pooled to its size)
    # the training images' evaluation views of these conditions (EVAL_CONDITIONS) train too
    with_evaluation_views: tuple[str, ...] = ()
    # the correlations' weight against the per-channel statistics after standardising: their L2
    # penalty is divided by its square (7,272 correlations would otherwise outvote ~1,000 statistics)
    correlation_weight: float = 1.0
    # the read-outs of these variants (by name) averaged: still one linear read-out of the union of
    # their statistics, so it ships as the others do
    ensemble_of: tuple[str, ...] = ()
    # the spectral and statistical branches' measurements read too, as plain columns
    # ("spectral.profile", "spectral.dct", "spectral.artefacts", "statistical")
    measurements: tuple[str, ...] = ()
    measurement_weight: float = 1.0  # their weight against the trunk's statistics, as correlation_weight
    # the weight of each training view of a 32 px image (CIFAR-10 and the zoo; `leave_one_out.is_small`)
    # against a high-resolution one's, within its class
    small_weight: float = 1.0
    # the read-out held orthogonal to this many directions along which the training generators' mean
    # statistics differ most (`leave_one_out.generator_directions`; TIGAS 2.6 excludes 4)
    generator_directions: int = 0
    # which trunk taps' per-channel statistics are read (positions in the config's backbone_taps;
    # None: all). Fewer taps, a shorter trunk: dropping the stride-32 tap saves 30 % of its FLOPs
    taps: tuple[int, ...] | None = None


LUMA_SPECTRA = ("spectral.profile", "spectral.dct", "spectral.artefacts")  # the spectral vectors TIGAS 2.4 reads
# and those TIGAS 2.5 reads beside them (`spectral`'s colour section)
COLOUR_SPECTRA = ("spectral.rgb_profiles", "spectral.chroma_profiles", "spectral.coherence", "spectral.axis_shares")


VARIANTS = [
    Variant("2.1: mean+std, C=0.002, classes balanced"),
    Variant("C=0.0005", c=0.0005), Variant("C=0.001", c=0.001), Variant("C=0.005", c=0.005),
    Variant("+ max", statistics=("mean", "std", "max")),
    Variant("+ skew, log-kurtosis", statistics=("mean", "std", "skew", "kurtosis")),
    Variant("generators/sources balanced (sqrt)", balance=0.5),
    Variant("generators/sources balanced (equal)", balance=0.0),
    Variant("6 training views per image", work="runs/score6"),
    Variant("Lite2 trunk", work="runs/score_lite2"),
    Variant("Lite1 + Lite2 trunks, statistics side by side", work="runs/score+runs/score_lite2"),
    Variant("signed square root of the statistics", signed_sqrt=True),
    Variant("+ neighbour differences", statistics=("mean", "std", "diff")),
    Variant("+ channel correlations of taps 1-2", gram_taps=(0, 1)),
    Variant("+ channel correlations of tap 1", gram_taps=(0,)),
    Variant("+ channel correlations of tap 2", gram_taps=(1,)),
    Variant("+ channel correlations of taps 1-3", gram_taps=(0, 1, 2)),
    Variant("+ channel correlations of taps 1-2, C=0.001", gram_taps=(0, 1), c=0.001),
    Variant("+ channel correlations of taps 1-2, C=0.005", gram_taps=(0, 1), c=0.005),
    Variant("2.2: + channel correlations of taps 1-3, C=0.001", gram_taps=(0, 1, 2), c=0.001),
    Variant("+ channel correlations of taps 1-3, C=0.0005", gram_taps=(0, 1, 2), c=0.0005),
    Variant("+ channel correlations of taps 1-4", gram_taps=(0, 1, 2, 3)),
    Variant("+ channel correlations of taps 1-3, 6 training views", gram_taps=(0, 1, 2), work="runs/score6"),
    Variant("+ channel correlations of taps 1-2, 6 training views", gram_taps=(0, 1), work="runs/score6"),
    Variant("2.2 + cross-scale correlations of taps 1-2, 2-3", gram_taps=(0, 1, 2), c=0.001, cross_taps=(0, 1)),
    Variant("2.2 + cross-scale correlations of taps 1-2", gram_taps=(0, 1, 2), c=0.001, cross_taps=(0,)),
    Variant("2.2, trained on the evaluation views too", gram_taps=(0, 1, 2), c=0.001, with_evaluation_views=("clean", "web")),
    Variant("2.2, trained on the web views too", gram_taps=(0, 1, 2), c=0.001, with_evaluation_views=("web",)),
    Variant("2.2, trained on the clean views too", gram_taps=(0, 1, 2), c=0.001, with_evaluation_views=("clean",)),
    Variant("+ an upload view per image (side 224-384, JPEG q60-95)", gram_taps=(0, 1, 2), c=0.001, work="runs/score_up"),
    Variant("upload view, C=0.0005", gram_taps=(0, 1, 2), c=0.0005, work="runs/score_up"),
    Variant("upload view, C=0.002", gram_taps=(0, 1, 2), c=0.002, work="runs/score_up"),
    *[Variant(f"upload view, correlations weighted {w:g}" + ("" if c == 0.001 else f", C={c:g}"), gram_taps=(0, 1, 2), c=c,
              work="runs/score_up", correlation_weight=w)
      for w, c in ((0.5, 0.001), (2.0, 0.001), (0.25, 0.001), (0.35, 0.001), (0.7, 0.001), (0.5, 0.002), (0.5, 0.0005),
                   (0.35, 0.002))],
    Variant("shipped (2.3): 3 upload views, correlations weighted 0.5", gram_taps=(0, 1, 2), c=0.001, work="runs/score_up3",
            correlation_weight=0.5),
    *[Variant(f"2.3 + {what}", statistics=("mean", "std") + lags, gram_taps=(0, 1, 2), c=0.001, work="runs/score_up3",
              correlation_weight=0.5)
      for what, lags in (("autocorrelation at one position", ("lag01", "lag10")),
                         ("autocorrelation at one and two positions", ("lag01", "lag10", "lag11", "lag02", "lag20")))],
    Variant("2.3 + spectral profile, DCT energy, artefact cues", gram_taps=(0, 1, 2), c=0.001, work="runs/score_up3",
            correlation_weight=0.5, measurements=LUMA_SPECTRA),
    *[Variant(f"2.3 + {what}", gram_taps=(0, 1, 2), c=0.001, work="runs/score_up3", correlation_weight=0.5, measurements=names)
      for what, names in (("statistical measurements", ("statistical",)),
                          ("spectral profile", ("spectral.profile",)), ("block-DCT energy", ("spectral.dct",)),
                          ("artefact cues", ("spectral.artefacts",)),
                          ("spectral and statistical measurements",
                           LUMA_SPECTRA + ("statistical",)),
                          ("pooled log spectrum", ("spectral.grid",)))],
    *[Variant(f"2.3 + spectral profile, DCT energy, artefact cues weighted {w:g}", gram_taps=(0, 1, 2), c=0.001,
              work="runs/score_up3", correlation_weight=0.5, measurements=LUMA_SPECTRA,
              measurement_weight=w) for w in (2.0, 4.0)],
    *[Variant(f"luma spectra, 32 px images weighted {f:g}", gram_taps=(0, 1, 2), c=0.001, work="runs/score_up3",
              correlation_weight=0.5, measurements=LUMA_SPECTRA, small_weight=f)
      for f in (0.5, 0.25)],
    *[Variant(f"luma spectra + log spectrum pooled to {n}x{n}", gram_taps=(0, 1, 2), c=0.001, work="runs/score_up3",
              correlation_weight=0.5, measurements=LUMA_SPECTRA + (f"spectral.grid@{n}",))
      for n in (8, 16)],
    *[Variant(f"luma spectra, correlations weighted {w:g}, C={c:g}", gram_taps=(0, 1, 2), c=c, work="runs/score_up3",
              correlation_weight=w, measurements=LUMA_SPECTRA)
      for w, c in ((0.35, 0.001), (0.7, 0.001), (0.5, 0.0007), (0.5, 0.0015))],
    Variant("2.4 + colour spectra", gram_taps=(0, 1, 2), c=0.001, work="runs/score_up3", correlation_weight=0.5,
            measurements=LUMA_SPECTRA + COLOUR_SPECTRA),
    Variant("2.5, C=0.0005", gram_taps=(0, 1, 2), c=0.0005, work="runs/score_up3", correlation_weight=0.5,
            measurements=LUMA_SPECTRA + COLOUR_SPECTRA),
    *[Variant(f"2.5, C={c:g}, orthogonal to {k} generator directions", gram_taps=(0, 1, 2), c=c, work="runs/score_up3",
              correlation_weight=0.5, measurements=LUMA_SPECTRA + COLOUR_SPECTRA, generator_directions=k)
      for k, c in ((2, 0.0005), (4, 0.0005), (8, 0.0005), (4, 0.001), (4, 0.00025))],
    *[Variant(f"2.5, C=0.0005, orthogonal to {k} generator directions, spectral measurements weighted {w:g}", gram_taps=(0, 1, 2),
              c=0.0005, work="runs/score_up3", correlation_weight=0.5, measurements=LUMA_SPECTRA + COLOUR_SPECTRA,
              measurement_weight=w, generator_directions=k) for k, w in ((4, 2.0), (4, 3.0), (4, 5.0), (8, 3.0))],
    Variant("2.6 without the stride-32 tap's statistics (a trunk 30 % cheaper)", gram_taps=(0, 1, 2), c=0.0005, work="runs/score_up3",
            correlation_weight=0.5, measurements=LUMA_SPECTRA + COLOUR_SPECTRA, measurement_weight=3.0, generator_directions=4,
            taps=(0, 1, 2)),
    *[Variant(f"2.4 + {name.split('.')[1]}", gram_taps=(0, 1, 2), c=0.001, work="runs/score_up3", correlation_weight=0.5,
              measurements=LUMA_SPECTRA + (name,)) for name in COLOUR_SPECTRA],
    Variant("3 upload views per image", gram_taps=(0, 1, 2), c=0.001, work="runs/score_up3"),
    Variant("upload view, mean+std", c=0.002, work="runs/score_up"),
    Variant("upload view, mean+std + channel correlations of tap 1", gram_taps=(0,), c=0.002, work="runs/score_up"),
    Variant("upload view, mean+std + channel correlations of tap 2", gram_taps=(1,), c=0.002, work="runs/score_up"),
    Variant("upload view, mean+std + channel correlations of tap 3", gram_taps=(2,), c=0.002, work="runs/score_up"),
    Variant("average of: upload view mean+std, 2.2 with an upload view", work="runs/score_up",
            ensemble_of=("upload view, mean+std", "+ an upload view per image (side 224-384, JPEG q60-95)")),
    Variant("average of: upload view mean+std + correlations of tap 1, 2, 3 (one read-out each)", work="runs/score_up",
            ensemble_of=tuple(f"upload view, mean+std + channel correlations of tap {i}" for i in (1, 2, 3))),
]


def channel_statistic(x: torch.Tensor, name: str) -> torch.Tensor:
    """[B,C,H,W] -> [B,C]: one statistic of every channel over positions."""
    if name == "mean":
        return x.mean(dim=(2, 3))
    if name == "max":
        return x.amax(dim=(2, 3))
    if name == "diff":  # how much a channel changes from one position to the next (upsampling and grid traces)
        return 0.5 * ((x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(2, 3)) + (x[..., 1:] - x[..., :-1]).abs().mean(dim=(2, 3)))
    if name.startswith("lag"):  # the correlation of a channel with itself dy, dx positions away (periodic traces)
        dy, dx = int(name[3]), int(name[4])
        z = standardised_positions(x).unflatten(2, x.shape[-2:])
        return (z[..., : z.shape[-2] - dy, : z.shape[-1] - dx] * z[..., dy:, dx:]).mean(dim=(2, 3))
    std = torch.sqrt(x.var(dim=(2, 3), unbiased=False) + 1e-6)  # as perceptual_branch.mean_std_pool
    if name == "std":
        return std
    z = (x - x.mean(dim=(2, 3), keepdim=True)) / std[..., None, None]
    return {"skew": lambda: z.pow(3).mean(dim=(2, 3)), "kurtosis": lambda: z.pow(4).mean(dim=(2, 3)).log()}[name]()


def cross_scale_correlations(fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """[B,C1,H,W], [B,C2,h,w] -> [B, C1*C2]: every fine channel (averaged down to the coarse grid)
    correlated with every coarse one (the cross-scale statistics of Portilla-Simoncelli textures)."""
    fine = torch.nn.functional.adaptive_avg_pool2d(fine, coarse.shape[-2:])
    a, b = standardised_positions(fine), standardised_positions(coarse)
    return (a @ b.transpose(1, 2) / a.shape[-1]).flatten(1)


PLAIN, CORRELATION, MEASUREMENT = range(3)


def measurement(cache: FeatureCache, name: str, rows: slice) -> torch.Tensor:
    """[n, k]: one of the other branches' measurements of the cached views ``rows``, flattened."""
    name, _, pooled_to = name.partition("@")  # "spectral.grid@16": the grid average-pooled to 16x16
    branch, _, key = name.partition(".")
    tensor = (cache.measured[branch][key] if key else cache.measured[branch])[rows].float()
    return (torch.nn.functional.adaptive_avg_pool2d(tensor, int(pooled_to)) if pooled_to else tensor).flatten(1)


def pooled(cache: FeatureCache, statistics: tuple[str, ...], gram_taps: tuple[int, ...] = (),
           cross_taps: tuple[int, ...] = (), measurements: tuple[str, ...] = (),
           taps: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """[N, features]: the chosen per-channel statistics of every tap (of ``taps`` when given: positions
    in the cache's taps), the channel correlations of ``gram_taps`` and the cross-scale correlations
    of ``cross_taps``, in chunks (the maps are large); and [features]: what each column is (PLAIN,
    CORRELATION or MEASUREMENT)."""
    rows = []
    for start in range(0, len(cache), 256):
        maps = [tap[start : start + 256].float() for tap in cache.measured["trunk"]]
        plain = [channel_statistic(x, name) for i, x in enumerate(maps) if taps is None or i in taps for name in statistics]
        measured = [measurement(cache, name, slice(start, start + 256)) for name in measurements]
        correlated = ([channel_correlations(maps[i]) for i in gram_taps]
                      + [cross_scale_correlations(maps[i], maps[i + 1]) for i in cross_taps])
        rows.append(torch.cat(plain + correlated + measured, dim=1))
    kinds = np.repeat([PLAIN, CORRELATION, MEASUREMENT], [sum(x.shape[1] for x in block) for block in (plain, correlated, measured)])
    return torch.cat(rows).double().numpy(), kinds


is_small = functools.cache(loo.is_small)  # a header read per file, not per view and fold


def reweigh_small(weights: np.ndarray, labels: np.ndarray, records: list, factor: float) -> np.ndarray:
    """``weights`` with 32 px images' multiplied by ``factor``, each class's total kept."""
    small = np.array([is_small(record.path) for record in records])
    out = weights * np.where(small, factor, 1.0)
    for label in (False, True):
        out[labels == label] *= weights[labels == label].sum() / out[labels == label].sum()
    return out


def out_of_fold(variant: Variant, train: FeatureCache, test: FeatureCache, train_x: np.ndarray, test_x: np.ndarray,
                column_weights: np.ndarray) -> np.ndarray:
    """Each evaluation row's logit from the read-out of the fold that holds it out. ``test_x``:
    [rows, features], or [rows, views, features] for several views of each row (logits averaged)."""
    logits = np.full(len(test), np.nan)
    views = test_x.reshape(len(test_x), -1, test_x.shape[-1])
    for index in range(len(loo.DEFAULT_FOLDS)):
        rows, held_out = loo.fold_rows(train, index, held_out=False).numpy(), loo.fold_rows(test, index, held_out=True).numpy()
        parts = [(train, train_x, rows)]
        if variant.with_evaluation_views:
            extra = loo.fold_rows(test, index, held_out=False).numpy()
            wanted = [list(EVAL_CONDITIONS).index(c) for c in variant.with_evaluation_views]
            parts.append((test, test_x, extra[np.isin(condition_of(extra), wanted)]))
        x = np.vstack([features[r] for _, features, r in parts])
        labels = np.concatenate([cache.labels.numpy()[r] for cache, _, r in parts]) > 0.5
        keys = [(int(cache.labels[i]), balance_key(cache.records[int(cache.record_index[i])])) for cache, _, r in parts for i in r]
        weights = balanced_weights(keys, variant.balance).numpy() * len(keys)  # both classes weigh alike
        if variant.small_weight != 1.0:
            weights = reweigh_small(weights, labels, [cache.records[int(cache.record_index[i])] for cache, _, r in parts for i in r],
                                    variant.small_weight)
        scaler = StandardScaler().fit(x)
        weighted = scaler.transform(x) * column_weights
        held_out_weighted = scaler.transform(views[held_out].reshape(-1, views.shape[-1])) * column_weights
        if variant.generator_directions:
            generators = np.array([cache.records[int(cache.record_index[i])].generator for cache, _, r in parts for i in r])
            excluded = loo.generator_directions(weighted[~labels], generators[~labels], variant.generator_directions)
            weighted, held_out_weighted = (z - (z @ excluded.T) @ excluded for z in (weighted, held_out_weighted))
        regression = LogisticRegression(C=variant.c, max_iter=5000)
        regression.fit(weighted, labels, sample_weight=weights)
        logits[held_out] = regression.decision_function(held_out_weighted).reshape(len(held_out), -1).mean(axis=1)
    return logits


def side_by_side(variant: Variant, split: str) -> tuple[FeatureCache, np.ndarray, np.ndarray]:
    """The ``split`` cache of every folder in ``variant.work`` ("A+B": two trunks measured on the
    same views, the same seed) and their statistics side by side; the first cache's records; the
    weight of every column (``variant.correlation_weight`` for correlations,
    ``variant.measurement_weight`` for the other branches' measurements, else 1)."""
    caches = [FeatureCache.load(Path(work) / f"{split}.safetensors") for work in variant.work.split("+")]
    for other in caches[1:]:
        if not (torch.equal(other.record_index, caches[0].record_index) and torch.equal(other.labels, caches[0].labels)):
            raise ValueError(f"{variant.work}: the caches hold different views; measure them with the same data and seed")
    blocks = [pooled(cache, variant.statistics, variant.gram_taps, variant.cross_taps, variant.measurements, variant.taps)
              for cache in caches]
    features = np.hstack([x for x, _ in blocks])
    column_weights = np.array([1.0, variant.correlation_weight, variant.measurement_weight])[np.concatenate([kinds for _, kinds in blocks])]
    return caches[0], np.sign(features) * np.sqrt(np.abs(features)) if variant.signed_sqrt else features, column_weights


def variant_logits(variant: Variant) -> tuple[FeatureCache, np.ndarray]:
    """The evaluation cache and the variant's out-of-fold logits of its views."""
    if variant.ensemble_of:
        members = [variant_logits(next(v for v in VARIANTS if v.name == name)) for name in variant.ensemble_of]
        return members[0][0], np.mean([logits for _, logits in members], axis=0)
    (train, train_x, column_weights), (test, test_x, _) = side_by_side(variant, "train"), side_by_side(variant, "eval")
    return test, out_of_fold(variant, train, test, train_x, test_x, column_weights)


def measure(variant: Variant) -> dict:
    test, logits = variant_logits(variant)
    temperature, bias = loo.calibrate(test, logits)
    result = loo.report(test, logits, temperature, bias, loo.choose_threshold(test, logits, temperature, bias))
    clean, web = result["conditions"]["clean"], result["conditions"]["web"]
    print(f"{variant.name}: web, mean over the named generators {named_generator_auroc(web):.3f}; each generator against every photo "
          f"(32 px ones too) {versus_every_photo(test, logits, 'web'):.3f}", flush=True)
    return {"clean": clean["mean_generator_auroc"], "web": web["mean_generator_auroc"], "all_web": web["auroc_all"],
            "threshold": result["threshold"]}


def named_generator_auroc(condition: dict) -> float:
    """Mean AUROC over the named generators of one condition of `leave_one_out.report` (the zoo's left out)."""
    return float(np.mean([row["auroc"] for name, row in condition["generators"].items() if not name.startswith("zoo-")]))


def versus_every_photo(test: FeatureCache, logits: np.ndarray, condition: str) -> float:
    """Mean over generators of the AUROC of its images against every photo of ``condition``, of
    either size: a guard for read-outs that gain by treating 32 px and larger images apart."""
    rows = condition_of(np.arange(len(test))) == list(EVAL_CONDITIONS).index(condition)
    real, fake = rows & (test.labels.numpy() > 0.5), rows & (test.labels.numpy() <= 0.5)
    generator = np.array([test.records[int(i)].generator for i in test.record_index])
    return float(np.mean([loo._auroc(logits[real], logits[fake & (generator == g)]) for g in np.unique(generator[fake])]))


HEADER = ["# Read-out study: mean generator AUROC out of fold (leave_one_out.DEFAULT_FOLDS), the read-out alone", "",
          "`python benchmarks/readout_study.py`", "",
          "The threshold column is `leave_one_out.choose_threshold`'s as it was when the row was measured "
          "(before TIGAS 2.2 it pooled the clean and web conditions).", "",
          "| variant | statistics | C | balance | cache | AUROC clean | AUROC web | all vs all web | threshold |",
          "|---|---|---|---|---|---|---|---|---|"]


def table_row(variant: Variant) -> str:
    row = measure(variant)
    weight = "" if variant.correlation_weight == 1.0 else f"x{variant.correlation_weight:g}"
    statistics = "+".join(variant.statistics + tuple(f"gram{i + 1}{weight}" for i in variant.gram_taps)
                          + tuple(f"cross{i + 1}-{i + 2}{weight}" for i in variant.cross_taps)
                          + tuple(name + ("" if variant.measurement_weight == 1.0 else f"x{variant.measurement_weight:g}")
                                  for name in variant.measurements))
    if variant.taps is not None:
        statistics = f"taps {'+'.join(str(i + 1) for i in variant.taps)} only: {statistics}"
    if variant.ensemble_of:
        statistics = "the named rows' read-outs averaged"
    return (f"| {variant.name} | {statistics} | {variant.c} | {variant.balance} | {variant.work} | "
            f"{row['clean']:.3f} | {row['web']:.3f} | {row['all_web']:.3f} | {row['threshold']} |")


def with_row(table: list[str], name: str, row: str) -> list[str]:
    """``table`` with the row of variant ``name`` replaced by ``row`` (appended when it has none)."""
    kept = [line for line in table if not line.startswith(f"| {name} |")]
    return kept + [row] if len(kept) == len(table) else [row if line.startswith(f"| {name} |") else line for line in table]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="measure the variant of this name only and update its row of the table")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    chosen = [v for v in VARIANTS if args.only in (None, v.name)]
    if not chosen:
        parser.error(f"no variant named {args.only!r}; the variants: {', '.join(v.name for v in VARIANTS)}")
    path = RESULTS / "readout_study.md"
    lines = path.read_text().splitlines() if args.only and path.exists() else list(HEADER)
    for variant in chosen:
        row = table_row(variant)
        print(row, flush=True)
        lines = with_row(lines, variant.name, row)
    atomic_write_text(path, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
