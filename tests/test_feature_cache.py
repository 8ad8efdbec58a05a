"""Training from cached measurements: the cache reproduces the model, training learns, leave-one-out holds out."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from tigas_synthetic import make_dataset

from tigas_core.config import TIGASConfig
from tigas_core.data import get_level, scan_folder
from tigas_core.data.augment import recolour
from tigas_core.io import is_greyscale, load_image, preprocess
from tigas_core.model.perceptual_branch import tap_statistics_size
from tigas_core.training import leave_one_out as loo
from tigas_core.training.feature_cache import (
    EVAL_CONDITIONS,
    FeatureCache,
    condition_of,
    evaluation_views,
    greyscale_evaluation_views,
    measure_records,
    predict_from_cache,
    train_from_cache,
    training_views,
    views_in_order,
)

TINY = TIGASConfig(img_size=32, adapter_channels=8, feature_dim=32, num_heads=2, num_prototypes=4)
FOLDS = [(("gan-a",), ("class0",)), (("gan-b",), ("class1",))]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return scan_folder(make_dataset(tmp_path_factory.mktemp("cache-data"), n_real=24, fakes={"gan-a": 12, "gan-b": 12}))


@pytest.fixture(scope="module")
def caches(records):
    model = loo.fresh_model(TINY, 0)
    train = measure_records(model, records, training_views(32, get_level("native"), 2, 2), progress=False)
    test = measure_records(model, records, evaluation_views(32), progress=False)
    return model, train, test


def test_cached_measurements_reproduce_the_model_on_pixels(records, caches, tmp_path):
    model, train, test = caches
    assert len(train) == 2 * len(records) and len(test) == 2 * len(records)  # two views / two conditions each
    assert torch.equal(train.labels, torch.tensor([float(records[i].label) for i in train.record_index]))
    test.save(tmp_path / "eval.safetensors")
    again = FeatureCache.load(tmp_path / "eval.safetensors")
    assert again.records == test.records and torch.equal(again.measured["statistical"], test.measured["statistical"])
    rows = np.arange(10)  # the views of the first five records, each condition as condition_of places it
    for index, copy in enumerate(EVAL_CONDITIONS.values()):
        chosen = torch.from_numpy(rows[condition_of(rows) == index])
        pixels = torch.stack([preprocess(copy(load_image(records[int(test.record_index[r])].path)), 32) for r in chosen])
        with torch.no_grad():
            direct = model(pixels)["raw_logit"][:, 0].numpy()
        assert np.allclose(direct, predict_from_cache(model, again, chosen), atol=2e-3)  # trunk maps are stored in float16


def test_views_are_decoded_in_order_and_only_a_few_records_ahead(records):
    """measure_records must not hold every record's decoded views at once (eight views of each of
    2,724 records filled 24 GiB): decoding stays at most ``ahead`` records ahead of the model."""
    from concurrent.futures import ThreadPoolExecutor

    decoded = []

    def make_views(image, rng):
        decoded.append(image.shape)
        return [image]

    with ThreadPoolExecutor(max_workers=2) as pool:
        stream = views_in_order(pool, records, make_views, seed=0, ahead=3)
        for consumed, views in enumerate(stream, start=1):
            assert len(decoded) <= consumed + 3
            assert torch.equal(views[0], load_image(records[consumed - 1].path))  # in the records' order
    assert consumed == len(decoded) == len(records)


def test_training_from_the_cache_learns_and_leaves_the_trunk_alone(caches):
    model, train, _ = caches
    model = loo.fresh_model(TINY, 1)
    trunk_before = model.perceptual.trunk.conv_stem.weight.clone()
    rows = torch.arange(len(train))
    before = roc_auc_score(train.labels.numpy(), predict_from_cache(model, train, rows))
    losses = train_from_cache(model, train, rows, steps=80, batch_size=32, learning_rate=3e-3)
    after = roc_auc_score(train.labels.numpy(), predict_from_cache(model, train, rows))
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    assert after > max(0.9, before)
    assert torch.equal(model.perceptual.trunk.conv_stem.weight, trunk_before)


def test_leave_one_out_scores_each_image_with_a_model_that_never_saw_its_group(records, caches):
    _, train, test = caches
    assert {loo.fold_of(r, FOLDS) for r in records} == {0, 1}
    assert all(loo.fold_of(r, FOLDS) == (0 if r.generator == "gan-a" or r.source == "class0" else 1) for r in records)
    logits = loo.out_of_fold_logits(TINY, train, test, loo.Recipe(steps=20, batch_size=16), folds=FOLDS, progress=False)
    assert np.isfinite(logits).all()
    temperature, bias = loo.calibrate(test, logits)
    result = loo.report(test, logits, temperature, bias)
    table = result["conditions"]["clean"]
    assert set(table["generators"]) == {"gan-a", "gan-b"}
    assert set(table["sources"]) == {"class0", "class1", loo.SMALLER_SOURCES}  # each under 20 photos, together 20 or more
    sources = table["sources"]
    assert sources[loo.SMALLER_SOURCES]["n"] == sources["class0"]["n"] + sources["class1"]["n"] >= loo.MIN_SOURCE_IMAGES
    assert all(row["tier"] == "32 px" for row in table["generators"].values())  # 40 px images: the small tier
    assert 0 <= table["ece"] <= 1 and 0 <= table["mean_generator_auroc"] <= 1
    readout_only = loo.out_of_fold_logits(TINY, train, test, loo.Recipe(steps=0), folds=FOLDS, progress=False)
    assert np.isfinite(readout_only).all() and not np.allclose(readout_only, logits)


def test_the_fitted_readout_is_sklearns_logistic_regression_and_stays_fixed_while_the_rest_trains(caches):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    _, train, test = caches
    rows, model = torch.arange(len(train)), loo.fresh_model(TINY, 2)
    loo.fit_readout(model, train, rows, c=0.05, correlation_weight=0.3, spectral_weight=2.0, excluded_directions=0)
    channels = model.perceptual.trunk.feature_info.channels()
    correlations = slice(2 * sum(channels), tap_statistics_size(channels, TINY.readout_correlations))  # means and deviations first

    def read(cache: FeatureCache) -> np.ndarray:  # what the read-out reads: the trunk's statistics, then the spectral vectors
        spectral = [cache.measured["spectral"][name].float().flatten(1) for name in TINY.readout_spectral]
        return torch.cat([cache.tap_statistics(TINY.readout_correlations), *spectral], dim=1).double().numpy()

    column_weights = np.ones(read(train).shape[1])
    column_weights[correlations] = 0.3
    column_weights[correlations.stop :] = 2.0  # the spectral vectors
    weighted = FunctionTransformer(lambda x: x * column_weights)
    reference = make_pipeline(StandardScaler(), weighted, LogisticRegression(C=0.05, class_weight="balanced", max_iter=5000))
    reference.fit(read(train), train.labels.numpy() > 0.5)
    expected = reference.decision_function(read(test))
    fitted = [p.clone() for p in model.readout.parameters()] + [b.clone() for b in model.readout.buffers()]
    assert np.allclose(predict_from_cache(model, test, torch.arange(len(test))), expected, atol=1e-3)  # the fused path starts at 0
    train_from_cache(model, train, rows, steps=10, batch_size=16, learning_rate=3e-3)
    assert all(torch.equal(a, b) for a, b in zip(fitted, [*model.readout.parameters(), *model.readout.buffers()]))
    with torch.no_grad():
        outputs = model(measured=test.take(torch.arange(len(test))))
    assert np.allclose(outputs["readout_logit"][:, 0].numpy(), expected, atol=1e-3)
    assert not torch.allclose(outputs["raw_logit"], outputs["readout_logit"])  # the second stage corrected it


def test_generator_directions_are_orthonormal_and_fewer_than_the_generators():
    rng = np.random.default_rng(0)
    features, generators = rng.normal(size=(60, 8)), np.repeat(["a", "b", "c"], 20)
    directions = loo.generator_directions(features, generators, 5)
    assert directions.shape == (2, 8)  # three generators' means spread in two dimensions at most
    assert np.allclose(directions @ directions.T, np.eye(2))
    means = np.stack([features[generators == g].mean(0) for g in "abc"])
    spread = means - means.mean(0)
    assert np.allclose(spread - spread @ directions.T @ directions, 0)  # they span the whole spread


def test_a_readout_orthogonal_to_what_tells_generators_apart_carries_over_to_an_unseen_one():
    """Both training generators share a weak trace (column 0); one of them also has a strong trait of
    its own (column 1). The plain read-out leans on the trait and reads an unseen generator with the
    opposite trait as real; held orthogonal to the direction that tells them apart, it reads the trace."""
    rng = np.random.default_rng(1)
    photos = rng.normal(size=(400, 4))
    gen_a, gen_b, unseen = (rng.normal(size=(200, 4)) + shift for shift in ([1.5, 4, 0, 0], [1.5, 0, 0, 0], [1.5, -4, 0, 0]))
    features = np.vstack([photos, gen_a, gen_b])
    labels = np.arange(len(features)) < len(photos)  # True = real
    generators = np.array(["real"] * 400 + ["a"] * 200 + ["b"] * 200)

    def unseen_auroc(excluded: int) -> float:
        mean, scale, weight, bias = loo.balanced_logistic_regression(features, labels, 1.0, 1.0, generators, excluded)
        score = lambda x: ((x - mean) / scale) @ weight + bias  # noqa: E731
        return roc_auc_score(np.r_[np.ones(400), np.zeros(200)], np.r_[score(photos), score(unseen)])

    assert unseen_auroc(0) < 0.5 < 0.8 < unseen_auroc(1)
    mean, scale, weight, bias = loo.balanced_logistic_regression(features, labels, 1.0, 1.0, generators, 1)
    assert abs(weight[1]) < 0.05 * abs(weight[0])  # the trait is left unread


def test_component_heads_are_fitted_last_so_each_branch_says_what_it_alone_can_tell(caches):
    _, train, test = caches
    rows, model = torch.arange(len(train)), loo.fresh_model(TINY, 3)
    loo.Recipe(steps=5, batch_size=16).train(model, train, rows, seed=0)
    with torch.no_grad():
        train_out, out = model(measured=train.take(rows)), model(measured=test.take(torch.arange(len(test))))
    assert torch.allclose(out["component_logits"]["perceptual"], out["readout_logit"])  # the trunk's read-out
    labels = train.labels.numpy()
    for name in ("spectral", "statistical"):  # each head is its branch's best linear read (on the training rows)
        assert roc_auc_score(labels, train_out["component_logits"][name][:, 0].numpy()) > 0.75, name
        assert float(out["components"][name].std()) > 0.01, name


def test_small_photo_sources_are_held_to_the_threshold_pooled():
    by_source = {"large": [0.9] * 30, "polished-a": [0.01] * 6, "polished-b": [0.9] * 10, "polished-c": [0.9] * 9, "tiny": [0.9] * 2}
    groups = loo.threshold_groups(by_source)
    assert set(groups) == {"large", loo.SMALLER_SOURCES}
    assert sorted(groups[loo.SMALLER_SOURCES]) == sorted([0.01] * 6 + [0.9] * 21)  # 6 of 27 would read "likely generated"
    assert loo.threshold_groups({"large": [0.9] * 30, "few": [0.01] * 5}) == {"large": [0.9] * 30}  # too few even pooled


def test_greyscale_evaluation_views_are_each_condition_of_the_grey_copy():
    image = torch.rand(3, 300, 260)
    views = greyscale_evaluation_views(224)(image, random.Random(0))
    assert len(views) == len(EVAL_CONDITIONS) and bool(is_greyscale(torch.stack(views)).all())
    assert torch.equal(views[0], preprocess(recolour(image, 0.0), 224))  # clean: the grey copy as TIGAS() reads it
    assert not torch.equal(views[1], views[0])  # web: resized and JPEG'd after turning grey
