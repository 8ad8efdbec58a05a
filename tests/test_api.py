"""The TIGAS scoring API: every input kind, features, folders with bad files, explain, TIGASMetric."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tigas_core import TIGASMetric
from tigas_core.api import RESULT_COLUMNS, verdict
from tigas_core.io import TIGASInputError, load_image, preprocess
from tigas_core.model import BRANCHES


def direct_score(tigas, path) -> float:
    with torch.no_grad():
        return float(tigas.model(preprocess(load_image(path), tigas.img_size).unsqueeze(0))["score"])


def test_every_input_kind_gives_the_same_score(tigas, make_image):
    path = make_image("a.png", size=(120, 90))
    expected = direct_score(tigas, path)
    array = np.asarray(Image.open(path))
    for source in (path, str(path), Image.open(path), array, load_image(path), path.read_bytes()):
        value = tigas(source)
        assert isinstance(value, float) and abs(value - expected) < 1e-5
    batch = tigas(load_image(path).unsqueeze(0))
    assert batch.shape == (1, 1)


def test_float_tensors_in_another_range_are_refused_not_clamped(tigas, make_image):
    image = load_image(make_image("a.png"))
    for wrong, hint in ((image * 255, "divide a 0-255 image by 255"), (image * 2 - 1, r"map a \[-1, 1\] image with \(x \+ 1\) / 2")):
        for given in (wrong, wrong.unsqueeze(0)):  # one image (file path of the API) and a batch (differentiable path)
            with pytest.raises(TIGASInputError, match=f"expected \\[0, 1\\]: {hint}"):
                tigas(given)
    slightly_over = (image * 1.02).clamp(max=1.05)  # a generator's overshoot is clamped, as before
    assert abs(tigas(slightly_over) - tigas(slightly_over.clamp(0, 1))) < 1e-5


def test_batches_get_the_same_conversions_and_checks_as_one_image(tigas, make_image):
    image = load_image(make_image("a.png"))
    as_uint8 = (image * 255).round().to(torch.uint8)
    single = tigas(as_uint8)
    assert torch.allclose(tigas(as_uint8.unsqueeze(0).repeat(2, 1, 1, 1)), torch.full((2, 1), single), atol=1e-5)
    overshoot = (image * 1.02).clamp(max=1.05)
    assert abs(float(tigas(overshoot.unsqueeze(0))) - tigas(overshoot)) < 1e-5  # clamped in both
    hwc = np.asarray(as_uint8.permute(1, 2, 0))
    assert torch.allclose(tigas(np.stack([hwc, hwc])), torch.full((2, 1), single), atol=1e-5)
    for bad, reason in ((torch.full((2, 3, 64, 64), math.nan), "NaN"), (torch.rand(2, 5, 64, 64), "expected 1, 3 or 4 channels")):
        with pytest.raises(TIGASInputError, match=reason):
            tigas(bad)
    assert tigas(torch.rand(2, 3, 28, 28)).shape == (2, 1)  # a small generator's batch (the loss path) is up-sampled


def test_folders_decode_a_bounded_number_of_batches_ahead(tigas, make_image, tmp_path, monkeypatch):
    import tigas_core.api

    paths = [make_image(f"many/{i:02d}.png", size=(40, 40), seed=i) for i in range(24)]
    decoded = []
    real_read_image = tigas_core.api.read_image
    monkeypatch.setattr(tigas_core.api, "read_image",
                        lambda path, **options: decoded.append(path) or real_read_image(path, **options))
    rows = tigas.iter_file_results(paths, batch_size=2, workers=2)
    first = next(rows)
    assert first["error"] == "" and len(decoded) <= 3 * 2  # the batch scored and two queued, not 24 images
    assert len(list(rows)) == 23 and len(decoded) == 24


def test_lists_and_folders_give_one_row_per_image(tigas, make_image, tmp_path):
    paths = [make_image(f"d/{i}.png", seed=i) for i in range(3)]
    scores = tigas(paths)
    assert scores.shape == (3, 1)
    assert torch.allclose(tigas(tmp_path / "d"), scores)
    for i, path in enumerate(paths):
        assert abs(float(scores[i]) - direct_score(tigas, path)) < 1e-5


def test_return_features(tigas, make_image):
    out = tigas(make_image("a.png"), return_features=True)
    assert set(out) == {"score", "features", "components", "branch_weights"}
    assert set(out["features"]) == {*BRANCHES, "fused"}
    assert set(out["components"]) == set(BRANCHES)


def test_file_scoring_keeps_no_graph(tigas, make_image):
    table = tigas.score_files([make_image("a.png")])
    assert table.loc[0, "error"] == ""  # scored under inference_mode; a graph would fail here
    assert not torch.is_inference_mode_enabled()


def test_compute_directory_records_a_bad_file_and_goes_on(tigas, make_image, tmp_path):
    for i in range(5):
        make_image(f"mix/{i}.png", seed=i)
    (tmp_path / "mix" / "2b_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken jpeg")
    make_image("mix/sub/deep.jpg", seed=9)
    table = tigas.compute_directory(tmp_path / "mix", batch_size=2, progress=False)
    assert list(table.columns) == RESULT_COLUMNS
    assert len(table) == 7
    bad = table[table["error"] != ""]
    assert list(bad["path"].map(lambda p: p.rsplit("/", 1)[-1])) == ["2b_broken.jpg"]
    assert "corrupt or truncated" in bad.iloc[0]["error"] and math.isnan(bad.iloc[0]["score"])
    good = table[table["error"] == ""]
    assert good["score"].between(0, 1).all() and (good["verdict"] != "").all()
    for _, row in good.iterrows():
        assert abs(row["score"] - direct_score(tigas, row["path"])) < 1e-5
        assert abs(row[[f"w_{b}" for b in BRANCHES]].sum() - 1) < 1e-5
    flat = tigas.compute_directory(tmp_path / "mix", recursive=False, progress=False)
    assert len(flat) == 6


def test_features_for_files_match_the_model(tigas, make_image):
    paths = [make_image(f"{i}.png", seed=i) for i in range(3)]
    features, table = tigas.features_for_files(paths + [paths[0].with_name("missing.png")])
    assert features.shape == (3, tigas.config.feature_dim) and len(table) == 4
    with torch.no_grad():
        direct = tigas.model(preprocess(load_image(paths[1]), tigas.img_size).unsqueeze(0))["features"]["fused"][0]
    assert np.allclose(features[1], direct.numpy(), atol=1e-5)


def test_explain_returns_everything_the_views_draw(tigas, make_image):
    path = make_image("e.png", size=(150, 100))
    explanation = tigas.explain(path)
    assert abs(explanation.score - tigas(path)) < 1e-5
    assert explanation.verdict == verdict(explanation.score, tigas.threshold)
    size = tigas.img_size
    assert explanation.spectrum.shape == (size, size) and np.isfinite(explanation.spectrum).all()
    assert explanation.saliency.shape == (size, size)
    assert explanation.saliency.min() >= 0 and math.isclose(float(explanation.saliency.max()), 1.0, rel_tol=1e-5)
    assert explanation.image.shape == (size, size, 3) and explanation.image.dtype == np.uint8
    bins = tigas.config.radial_bins
    assert explanation.radial_profile.shape == explanation.reference_profile.shape == explanation.frequencies.shape == (bins,)
    assert explanation.image_size == (150, 100)
    data = explanation.to_dict(arrays=True)
    assert set(data["components"]) == set(BRANCHES) and len(data["radial_profile"]) == bins


@pytest.mark.parametrize("views, n_views", [("mirror", 2), ("jitter", 18)])
def test_averaged_views_score_an_image_and_its_mirror_alike(make_image, views, n_views):
    """With the bundled weights, whose single-view score does move when an image is mirrored."""
    from tigas_core.api import TIGAS
    from tigas_core.io import model_views

    tigas = TIGAS(device="cpu")
    averaged = TIGAS(model=tigas.model, device="cpu", views=views)
    pixels = np.random.default_rng(5).integers(0, 256, (64, 97, 3), dtype=np.uint8)  # odd width: crops are not symmetric
    pixels[:, 48:] = 128  # noise on the left, flat on the right: far from mirror-symmetric
    path = make_image("unused.png").parent / "asym.png"
    Image.fromarray(pixels).save(path)
    image = load_image(path)
    every_view = model_views(image[None], tigas.img_size, views)
    assert every_view.shape == (1, n_views, 3, tigas.img_size, tigas.img_size)
    assert torch.equal(model_views(image[None], tigas.img_size, "single")[:, 0], preprocess(image[None], tigas.img_size))
    plain = tigas.forward_views(every_view[0][:, None])  # each view scored on its own

    def logit(scorer, x: torch.Tensor) -> float:  # logits, not scores: a score near 0 or 1 hides differences
        with torch.no_grad():
            return float(scorer.forward_tensor(x[None])["logit"])

    assert averaged(image) == pytest.approx(float(torch.sigmoid(plain["logit"].mean())), abs=1e-5)
    assert logit(averaged, image.flip(-1)) == pytest.approx(logit(averaged, image), abs=1e-5)  # exactly mirror-invariant
    # the single view is not (else this proves nothing); its pooled statistics are, so only a little
    assert abs(logit(tigas, image) - logit(tigas, image.flip(-1))) > 1e-4
    out = averaged(image.unsqueeze(0), return_features=True)
    for branch in BRANCHES:
        expected_component = torch.sigmoid(plain["component_logits"][branch].mean())
        assert float(out["components"][branch]) == pytest.approx(float(expected_component), abs=1e-5)
    assert torch.allclose(out["features"]["fused"][0], plain["features"]["fused"].mean(0), atol=1e-5)
    batch = image.unsqueeze(0).clone().requires_grad_(True)
    averaged(batch).sum().backward()
    assert float(batch.grad.abs().sum()) > 0
    assert f"views={views!r}" in repr(averaged)
    assert averaged.explain(image).score == pytest.approx(averaged(image), abs=1e-5)
    assert averaged.score_files([path])["score"][0] == pytest.approx(averaged(image), abs=1e-5)
    with pytest.raises(ValueError, match="unknown views"):
        TIGAS(model=tigas.model, device="cpu", views="mirrored")


def test_verdict_bands():
    assert verdict(0.9) == "likely real" and verdict(0.1) == "likely generated" and verdict(0.55) == "uncertain"
    assert verdict(0.75, threshold=0.8) == "uncertain" and verdict(float("nan")) == ""


def test_tigas_metric_update_compute_reset(tigas):
    metric = TIGASMetric(tigas)
    images = torch.rand(6, 3, 64, 64)
    batch = metric(images[:4], return_components=True)
    assert set(batch) >= {"score", "perceptual_score", "spectral_score", "statistical_score"}
    metric.update(images[4:])
    result = metric.compute()
    expected = tigas(images).mean()
    assert torch.allclose(result["score"], expected, atol=1e-5)
    metric.reset()
    metric.update(images[:2])
    assert torch.allclose(metric.compute()["score"], tigas(images[:2]).mean(), atol=1e-5)


def test_tigas_metric_moves_its_network_and_tigas_follows(small_model):
    import copy

    from tigas_core.api import TIGAS

    metric = TIGASMetric(TIGAS(model=copy.deepcopy(small_model), device="cpu"))
    assert metric.scorer is metric.tigas.model and metric.tigas.device == torch.device("cpu")
    metric.to(torch.device("meta"))  # what .to("cuda") does, on a device every machine has
    assert metric.tigas.device == torch.device("meta") and metric.score_sum.device == torch.device("meta")


def test_tigas_metric_on_precomputed_scores():
    metric = TIGASMetric(use_model=False)
    metric.update(torch.tensor([0.2, 0.4]))
    metric.update(pd.Series([0.9, math.nan]).to_numpy())  # NaN: a file compute_directory could not score
    assert torch.isclose(metric.compute()["score"], torch.tensor(0.5))
    metric.reset()
    with pytest.warns(UserWarning, match="before the ``update`` method"):
        assert torch.isnan(metric.compute()["score"])  # nothing measured reads NaN, not 0


def test_tigas_metric_is_differentiable(tigas):
    images = torch.rand(2, 3, 64, 64, requires_grad=True)
    TIGASMetric(tigas)(images).mean().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_a_bfloat16_trunk_scores_close_to_float32_and_keeps_gradients(make_image):
    """precision="bf16": only the trunk computes in bfloat16, so scores move a little (they do
    move: the trunk really ran in it) and stay differentiable; other precisions are refused."""
    from tigas_core.api import TIGAS
    from tigas_core.score_cache import scorer_identity

    exact = TIGAS(device="cpu")
    fast = TIGAS(model=exact.model, device="cpu", precision="bf16")
    images = torch.stack([load_image(make_image(f"p{i}.png", seed=i, size=(260, 240))) for i in range(3)])
    with torch.no_grad():
        a, b = exact(images), fast(images)
    assert not torch.allclose(a, b, atol=1e-6)
    assert torch.allclose(a, b, atol=0.05)
    assert scorer_identity(fast) != scorer_identity(exact)  # cached and resumed scores are kept apart
    pixels = images[:1].clone().requires_grad_(True)
    fast(pixels).sum().backward()
    assert pixels.grad is not None and pixels.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown precision 'float16'; choose one of auto, fp32, bf16"):
        TIGAS(model=exact.model, precision="float16")


def test_bf16_without_native_support_warns_on_a_cpu_and_is_refused_on_a_gpu(monkeypatch, caplog):
    """Where bfloat16 is emulated it is slower than fp32: "auto" picks fp32 there, an explicit
    "bf16" still runs on a CPU but says so, and a GPU without it (or another device) is refused."""
    import tigas_core.precision as precision

    monkeypatch.setattr(precision, "has_fast_bf16", lambda device: False)
    assert precision.resolve_precision(torch.device("cpu"), "auto") == "fp32"
    with caplog.at_level("WARNING", logger="tigas"):
        assert precision.resolve_precision(torch.device("cpu"), "bf16") == "bf16"
    assert "no native bfloat16" in caplog.text
    with pytest.raises(ValueError, match="this GPU has no native bfloat16"):
        precision.resolve_precision(torch.device("cuda"), "bf16")
    with pytest.raises(ValueError, match="mps: precision bf16 runs on cpu or cuda"):
        precision.resolve_precision(torch.device("mps"), "bf16")
    assert precision.resolve_precision(torch.device("mps"), "auto") == "fp32"


def test_grid_views_read_the_centre_region_and_average_their_logits(make_image):
    """views="grid": the four corner views of the centre region of at most twice the view size,
    averaged in logits; an image smaller than the view is raised to it first, as for "single"."""
    from tigas_core.api import TIGAS
    from tigas_core.io import crop, model_views

    tigas = TIGAS(device="cpu")
    size = tigas.img_size
    image = torch.rand(1, 3, size + 40, 3 * size)  # wider than the region: its centre 2*size columns are read
    views = model_views(image, size, "grid")
    left = (3 * size - 2 * size) // 2
    corners = [crop(image, size, top, left + dx) for top in (0, 40) for dx in (0, size)]
    assert views.shape == (1, 4, 3, size, size)
    assert all(torch.equal(views[:, i], corner) for i, corner in enumerate(corners))
    assert model_views(torch.rand(1, 3, 32, 32), size, "grid").shape == (1, 4, 3, size, size)
    grid = TIGAS(model=tigas.model, device="cpu", views="grid")
    with torch.no_grad():
        each = tigas.forward_views(views[0][:, None])["logit"]
        assert float(grid.forward_tensor(image)["logit"]) == pytest.approx(float(each.mean()), abs=1e-5)


def test_a_greyscale_file_is_calibrated_apart_and_its_row_says_so(make_image):
    """With the bundled weights, which carry a calibration fitted on greyscale copies."""
    from tigas_core.api import GREYSCALE_NOTE, TIGAS

    tigas = TIGAS(device="cpu")
    colour, grey = make_image("colour.png", size=(256, 240)), make_image("grey.png", size=(256, 240), mode="L")
    rows = list(tigas.iter_file_results([colour, grey]))
    assert rows[0]["note"] == "" and rows[1]["note"] == GREYSCALE_NOTE
    with torch.no_grad():
        raw = float(tigas.model(tigas.load_views(grey)[0])["raw_logit"])
    temperature, bias = tigas.config.greyscale_calibration
    assert temperature != tigas.config.calibration_temperature and bias != tigas.config.calibration_bias
    assert rows[1]["score"] == pytest.approx(1 / (1 + math.exp(-(raw - bias) / temperature)), abs=1e-5)
