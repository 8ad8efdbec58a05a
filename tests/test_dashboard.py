"""The Streamlit dashboard end to end: its numbers, its score cache, and a real browser.

The data set is made here: a real reference of 1/f ("pink") noise images, one generator of
over-smoothed images (little high-frequency energy) and one with a periodic checkerboard on top
(up-sampling artefact), plus one corrupt file. The model is a small, freshly initialised TIGAS
saved with save_pretrained, so everything runs in seconds on a CPU.
"""
from __future__ import annotations

import base64
import importlib.util
import os
import signal
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import average_precision_score, roc_auc_score

from tigas_core.local_server import LocalServer, free_port

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = REPO / "dashboards" / "dashboard.py"
GENERATORS = {"real": 12, "smooth": 9, "checker": 9}


def _pink_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """An RGB image whose power falls as 1/f^2, like natural photographs."""
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / size)
    channels = []
    for _ in range(3):
        phase = np.exp(2j * np.pi * rng.random((size, size)))
        channel = np.fft.ifft2(amplitude * phase).real
        channels.append((channel - channel.mean()) / (channel.std() + 1e-8))
    return np.clip(0.5 + 0.18 * np.stack(channels, axis=-1), 0, 1)


def _make_image(kind: str, rng: np.random.Generator, size: int = 64) -> np.ndarray:
    image = _pink_noise(rng, size)
    if kind == "smooth":  # low-pass: a box blur removes the high frequencies
        kernel = 5
        padded = np.pad(image, ((kernel // 2,) * 2, (kernel // 2,) * 2, (0, 0)), mode="reflect")
        image = sum(padded[i : i + size, j : j + size] for i in range(kernel) for j in range(kernel)) / kernel**2
    elif kind == "checker":  # the period-2 pattern stride-2 transposed convolutions leave behind
        yy, xx = np.mgrid[:size, :size]
        image = np.clip(image + 0.12 * (((yy + xx) % 2) * 2 - 1)[..., None], 0, 1)
    return (image * 255 + 0.5).astype(np.uint8)


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dashboard_data")
    rng = np.random.default_rng(0)
    for generator, count in GENERATORS.items():
        for i in range(count):
            sub = "epoch1/" if generator == "checker" and i % 2 else ""  # generators may nest folders
            _write(root / generator / f"{sub}{i:02d}.png", _make_image(generator, rng))
    (root / "checker" / "broken.png").write_bytes(b"this is not a png")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory, dataset) -> Path:
    """A small real TIGAS, calibrated on this data so its scores spread over [0, 1] (an untrained
    network's raw scores all sit near one value, which would make threshold checks vacuous)."""
    import torch

    from tigas_core.api import TIGAS
    from tigas_core.hub import save_pretrained
    from tigas_core.model import create_tigas_model

    torch.manual_seed(0)
    model = create_tigas_model(img_size=64, adapter_channels=8, feature_dim=32)
    scores = TIGAS(model=model, device="cpu").score_files(sorted(dataset.rglob("*.png")))["score"].dropna().to_numpy()
    logits = np.log(scores / (1 - scores))
    model.config.calibration_bias = float(np.median(logits))
    model.config.calibration_temperature = float(logits.std())
    folder = tmp_path_factory.mktemp("weights")
    save_pretrained(model, folder)
    return folder


@pytest.fixture(scope="module")
def tigas(weights):
    from tigas_core.api import TIGAS

    return TIGAS(str(weights), device="cpu")


@pytest.fixture()
def app_env(monkeypatch, dataset, weights, tmp_path):
    """Environment the dashboard reads its settings from, with a fresh score cache per test."""
    import streamlit as st

    monkeypatch.setenv("TIGAS_DASHBOARD_ROOT", str(dataset))
    monkeypatch.setenv("TIGAS_WEIGHTS", str(weights))
    monkeypatch.setenv("TIGAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TIGAS_NUM_THREADS", "2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    st.cache_data.clear()
    st.cache_resource.clear()
    return tmp_path / "cache"


def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(DASHBOARD), default_timeout=120)


def _expected_summary(tigas, root: Path) -> pd.DataFrame:
    """Per-generator mean/median/std/AUROC/AP computed straight from TIGAS.compute_directory."""
    frames = {g: tigas.compute_directory(root / g, progress=False) for g in GENERATORS}
    ok = {g: f[f["error"] == ""]["score"].to_numpy() for g, f in frames.items()}
    rows = []
    for generator, scores in ok.items():
        row = {"generator": generator, "n": len(scores), "mean": scores.mean(), "median": np.median(scores),
               "std": pd.Series(scores).std()}
        if generator != "real":
            labels = np.r_[np.ones(len(ok["real"])), np.zeros(len(scores))]
            values = np.r_[ok["real"], scores]
            row["AUROC"] = roc_auc_score(labels, values)
            row["AP"] = average_precision_score(1 - labels, 1 - values)  # generated = positive class
        rows.append(row)
    return pd.DataFrame(rows).set_index("generator")


def _metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _chart(at, title_start: str):
    """The plotly figure on the page whose title starts with ``title_start``."""
    import plotly.io as pio

    figures = [pio.from_json(chart.proto.spec) for chart in at.get("plotly_chart")]
    return next(f for f in figures if (f.layout.title.text or "").startswith(title_start))


def _array(value) -> np.ndarray:
    """Plotly JSON stores arrays as base64 typed buffers."""
    if isinstance(value, dict):
        shape = [int(n) for n in str(value["shape"]).split(",")]
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).reshape(shape)
    return np.asarray(value)


def test_views_setting_scores_with_the_mirror(app_env, dataset, weights, monkeypatch):
    from tigas_core.api import TIGAS

    monkeypatch.setenv("TIGAS_VIEWS", "mirror")
    at = _app().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value.set_index("generator")
    averaged = TIGAS(str(weights), device="cpu", views="mirror")
    real = averaged.compute_directory(dataset / "real", progress=False)["score"]
    assert table.loc["real", "mean"] == pytest.approx(real.mean(), abs=1e-5)
    plain = TIGAS(str(weights), device="cpu").compute_directory(dataset / "real", progress=False)["score"]
    assert abs(plain.mean() - real.mean()) > 1e-4  # else this would not tell the two apart
    assert any("averaged with its mirror" in caption.value for caption in at.sidebar.caption)


def test_summary_table_matches_independent_computation(app_env, dataset, tigas):
    at = _app().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value.set_index("generator")
    expected = _expected_summary(tigas, dataset)

    assert list(table.index)[0] == "real"
    assert sorted(table.index) == sorted(GENERATORS)
    for generator, row in expected.iterrows():
        assert table.loc[generator, "n"] == row["n"] == GENERATORS[generator]
        for column in ("mean", "median", "std"):
            assert table.loc[generator, column] == pytest.approx(row[column], abs=1e-5), (generator, column)
        if generator != "real":
            assert table.loc[generator, "AUROC"] == pytest.approx(row["AUROC"], abs=1e-9)
            assert table.loc[generator, "AP"] == pytest.approx(row["AP"], abs=1e-9)
    assert table.loc["checker", "failed"] == 1
    threshold = at.slider(key="threshold").value
    real = tigas.compute_directory(dataset / "real", progress=False)["score"]
    assert table.loc["real", "flagged"] == pytest.approx((real < threshold).mean())

    # FD in TIGAS feature space: the cached features equal features_for_files' (stats by numpy here).
    from tigas_core.metrics.frechet import frechet_distance

    def moments(folder: Path):
        features, _ = tigas.features_for_files(sorted(folder.rglob("*.png")))
        return features.mean(axis=0), np.cov(features, rowvar=False)

    expected_fd = frechet_distance(*moments(dataset / "checker"), *moments(dataset / "real"))
    assert table.loc["checker", "FD to real"] == pytest.approx(expected_fd, rel=1e-4)
    assert np.isnan(table.loc["real", "FD to real"])

    # The corrupt file is listed with its reason, and everything else was scored.
    failed = at.dataframe[-1].value
    assert list(failed["path"].map(lambda p: Path(p).name)) == ["broken.png"]
    assert "not an image" in failed["error"].iloc[0]
    assert _metric(at, "newly scored") == str(sum(GENERATORS.values()) + 1)
    assert _metric(at, "unreadable") == "1"


def test_cache_scores_only_new_or_changed_files(app_env, dataset, tigas):
    at = _app().run()
    assert _metric(at, "newly scored") == str(sum(GENERATORS.values()) + 1)

    # A fresh process would find everything in the persistent cache: nothing is scored again.
    import streamlit as st

    st.cache_resource.clear()
    at = _app().run()
    assert not at.exception, at.exception
    assert _metric(at, "newly scored") == "0"

    # Changing one file rescores exactly that one, and the table follows the new content.
    changed = dataset / "smooth" / "00.png"
    original = changed.read_bytes()
    try:
        _write(changed, _make_image("checker", np.random.default_rng(99)))
        at.sidebar.button[0].click().run()
        assert _metric(at, "newly scored") == "1"
        table = at.dataframe[0].value.set_index("generator")
        expected = _expected_summary(tigas, dataset)
        assert table.loc["smooth", "mean"] == pytest.approx(expected.loc["smooth", "mean"], abs=1e-5)
        at.sidebar.button[0].click().run()  # rescan without changes: nothing new
        assert _metric(at, "newly scored") == "0"
    finally:
        changed.write_bytes(original)


def test_score_cache_keys_on_content_and_model(tmp_path, dataset, tigas, weights):
    """The cache directly: copies of a file are scored once, a different model scores afresh."""
    import torch

    from tigas_core.api import TIGAS
    from tigas_core.model import create_tigas_model
    from tigas_core.score_cache import ScoreCache

    source = dataset / "real" / "00.png"
    copies = []
    for i in range(3):
        copy = tmp_path / "copies" / f"copy{i}.png"
        copy.parent.mkdir(exist_ok=True)
        copy.write_bytes(source.read_bytes())
        copies.append(copy)
    first = ScoreCache(tigas, tmp_path / "cache").score(copies)
    assert first.n_scored == 1 and first.n_hashed == 3
    assert first.table["score"].nunique() == 1
    direct = tigas.score_files([str(source)])["score"].iloc[0]
    assert first.table["score"].iloc[0] == pytest.approx(direct, abs=1e-6)
    assert first.features.shape == (3, tigas.config.feature_dim)
    assert np.isfinite(first.profiles).all() and np.isfinite(first.spectra.astype(np.float32)).all()

    again = ScoreCache(tigas, tmp_path / "cache").score(copies)
    assert (again.n_scored, again.n_hashed) == (0, 0)  # unchanged files are not even re-read
    np.testing.assert_array_equal(again.features, first.features)

    torch.manual_seed(1)
    other = TIGAS(model=create_tigas_model(img_size=64, adapter_channels=8, feature_dim=32), device="cpu")
    assert ScoreCache(other, tmp_path / "cache").score(copies).n_scored == 1
    mirrored = ScoreCache(TIGAS(model=tigas.model, device="cpu", views="mirror"), tmp_path / "cache").score(copies)
    assert mirrored.n_scored == 1  # mirror-averaged scores are other scores: not served from the plain entries


def test_score_cache_sees_a_replaced_file_with_the_old_mtime_and_survives_a_corrupt_database(tmp_path, tigas, caplog,
                                                                                      make_image):
    """`cp -p` / `rsync -t` give a replaced file its old size and mtime; a cache file can be damaged."""
    import os

    from tigas_core.score_cache import ScoreCache

    target = make_image("files/a.bmp", size=(64, 64), seed=0)  # BMP: equal sizes give equal file sizes
    replacement = make_image("b.bmp", size=(64, 64), seed=1)
    first = ScoreCache(tigas, tmp_path / "cache").score([target]).table["score"].iloc[0]
    stat = target.stat()
    assert replacement.stat().st_size == stat.st_size
    os.replace(replacement, target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = ScoreCache(tigas, tmp_path / "cache").score([target])
    assert again.n_hashed == 1 and again.table["score"].iloc[0] != pytest.approx(first, abs=1e-6)

    (tmp_path / "cache" / "scores.sqlite").write_bytes(os.urandom(4096))  # not a database any more
    with caplog.at_level("WARNING", logger="tigas.cache"):
        recovered = ScoreCache(tigas, tmp_path / "cache").score([target])
    assert recovered.n_scored == 1 and "moved it to scores.sqlite.corrupt-" in caplog.text
    assert list((tmp_path / "cache").glob("scores.sqlite.corrupt-*"))

    odd = os.fsdecode(os.fsencode(str(target.parent)) + b"/caf\xe9.bmp")  # a Latin-1 name: SQLite takes only UTF-8
    os.replace(target, odd)
    named = ScoreCache(tigas, tmp_path / "cache").score([odd])
    assert named.table["path"].iloc[0].endswith("caf\\xe9.bmp") and named.table["error"].iloc[0] == ""
    assert ScoreCache(tigas, tmp_path / "cache").score([odd]).n_hashed == 0  # and it is found again


def test_spectral_fingerprints_show_the_known_differences(tmp_path, dataset, tigas):
    """Smoothing removes high frequencies; the checkerboard puts a peak at the Nyquist corner."""
    from tigas_core.score_cache import ScoreCache

    cache = ScoreCache(tigas, tmp_path / "cache")
    mean = {}
    for generator in GENERATORS:
        scored = cache.score(sorted((dataset / generator).rglob("*.png")))
        # nanmean: the corrupt file has NaN rows
        mean[generator] = (np.nanmean(scored.profiles, axis=0), np.nanmean(scored.spectra.astype(np.float32), axis=0))
    high = slice(3 * tigas.config.radial_bins // 4, None)  # outer quarter of the radial profile
    assert mean["smooth"][0][high].mean() < mean["real"][0][high].mean() - 0.5  # > 3x less power
    corner = (0, 0)  # fftshift puts the (Nyquist, Nyquist) frequency at the top-left corner
    assert mean["checker"][1][corner] > mean["real"][1][corner] + 1.0


def test_gallery_click_shows_explanation(app_env):
    at = _app().run()
    buttons = [b for b in at.button if b.key and b.key.startswith("explain-Most")]
    assert buttons, "the gallery shows Explain buttons"
    buttons[0].click().run()
    assert not at.exception, at.exception
    assert any(s.value.startswith("Explanation: ") for s in at.subheader)
    assert not at.error, [e.value for e in at.error]


def test_threshold_slider_drives_flagged_share_and_confusion_matrix(app_env, dataset, tigas):
    at = _app().run()
    scores = {g: tigas.compute_directory(dataset / g, progress=False)["score"].dropna().to_numpy() for g in GENERATORS}
    assert 0.05 < np.concatenate(list(scores.values())).std()  # the calibrated test model spreads its scores
    for threshold in (0.3, 0.62):
        at.slider(key="threshold").set_value(threshold).run()
        assert not at.exception, at.exception
        table = at.dataframe[0].value.set_index("generator")
        for generator, values in scores.items():
            assert table.loc[generator, "flagged"] == pytest.approx((values < threshold).mean()), (generator, threshold)
        fake = np.concatenate([scores["smooth"], scores["checker"]])
        expected = [[(scores["real"] >= threshold).sum(), (scores["real"] < threshold).sum()],
                    [(fake >= threshold).sum(), (fake < threshold).sum()]]
        matrix = _array(_chart(at, "Confusion matrix").data[0].z)
        np.testing.assert_array_equal(matrix, expected)


def test_without_a_folder_it_opens_on_the_demo_set(app_env, monkeypatch):
    monkeypatch.delenv("TIGAS_DASHBOARD_ROOT")
    at = _app().run()
    assert not at.exception, at.exception
    demo = app_env / "demo"
    assert at.sidebar.text_input(key="root").value == str(demo)
    table = at.dataframe[0].value.set_index("generator")
    folders = sorted(p.name for p in demo.iterdir() if p.is_dir())
    assert sorted(table.index) == folders and "real" in folders
    assert table["n"].sum() == len(list(demo.rglob("*.png")))


def _load_dashboard_module():
    spec = importlib.util.spec_from_file_location("tigas_dashboard_under_test", DASHBOARD)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_inputs_zip_and_csv(tmp_path, dataset):
    dashboard = _load_dashboard_module()
    # A zip of one top folder opens at that folder; members escaping the target are refused.
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in dataset.rglob("*.png"):
            handle.write(path, Path("mydata") / path.relative_to(dataset))
    root = dashboard.extract_zip(archive.read_bytes(), tmp_path / "uploads")
    index = dashboard.index_folder(root)
    assert index["generator"].value_counts().to_dict() == {"real": 12, "smooth": 9, "checker": 10}
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as handle:
        handle.writestr("../outside.png", b"x")
    with pytest.raises(ValueError, match="outside"):
        dashboard.extract_zip(evil.read_bytes(), tmp_path / "uploads")
    assert not (tmp_path / "outside.png").exists()

    csv = tmp_path / "index.csv"  # relative paths are relative to the CSV's own folder
    relative = os.path.relpath(dataset / "real" / "00.png", tmp_path)
    pd.DataFrame({"path": [relative, str(dataset / "smooth" / "01.png")], "generator": ["real", "smooth"]}).to_csv(csv, index=False)
    frame = dashboard.index_csv(csv)
    assert frame["path"].tolist() == [str(dataset / "real" / "00.png"), str(dataset / "smooth" / "01.png")]
    assert frame["generator"].tolist() == ["real", "smooth"]
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label2\nx.png,real\n")
    with pytest.raises(ValueError, match="generator"):
        dashboard.index_csv(bad)


def test_violins_stay_within_the_observed_scores():
    dashboard = _load_dashboard_module()
    frame = pd.DataFrame({"generator": ["real"] * 3 + ["dcgan"] * 3, "score": [0.9, 0.95, 0.99, 0.01, 0.2, 0.5],
                          "error": [""] * 6})
    violin = dashboard.distribution_figures(frame, "score", ["real", "dcgan"])["violin_score"]
    assert len(violin.data) == 2 and all(trace.spanmode == "hard" for trace in violin.data)


def test_histograms_are_one_panel_per_group_with_the_real_reference_outlined():
    dashboard = _load_dashboard_module()
    rng = np.random.default_rng(0)
    groups = ["real", "dcgan", "vae", "ddpm"]
    frame = pd.DataFrame({"generator": np.repeat(groups, 30), "score": rng.uniform(0, 1, 120), "error": [""] * 120})
    histogram = dashboard.distribution_figures(frame, "score", groups)["histogram_score"]
    bars = [trace for trace in histogram.data if trace.type == "bar"]
    outlines = [trace for trace in histogram.data if trace.type == "scatter"]
    assert [trace.name for trace in bars] == groups and [trace.name for trace in outlines] == ["real"] * 3
    assert len({trace.xaxis for trace in bars}) == 4  # each group its own panel, not overlaid
    real = frame.loc[frame["generator"] == "real", "score"].to_numpy()
    width = bars[0].x[1] - bars[0].x[0]
    assert np.sum(outlines[0].y) * width == pytest.approx(1.0) and np.sum(bars[0].y) * width == pytest.approx(1.0)
    counts, _ = np.histogram(real, bins=len(bars[0].x), range=(0, 1))
    assert np.allclose(np.asarray(bars[0].y) * width * len(real), counts)


def test_roc_legend_sits_below_the_plot():
    dashboard = _load_dashboard_module()
    frame = pd.DataFrame({"generator": ["real"] * 3 + ["dcgan"] * 3, "score": [0.9, 0.95, 0.99, 0.01, 0.2, 0.5], "error": [""] * 6})
    roc = dashboard.roc_figure(frame, "real", 0.5, ["real", "dcgan"])
    assert roc.layout.legend.orientation == "h" and roc.layout.legend.y < 0


@pytest.mark.browser
def test_browser_renders_charts(tmp_path, dataset, weights, chromium):
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", TIGAS_NUM_THREADS="1", TIGAS_CACHE_DIR=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "tigas_core.cli", "dashboard", str(dataset), "--weights", str(weights),
               "--port", str(port), "--address", "127.0.0.1"]
    health = f"http://127.0.0.1:{port}/_stcore/health"
    with LocalServer(command, health, tmp_path / "dashboard.log", env, timeout_s=60) as server, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/", timeout=60_000)
        page.wait_for_selector('[data-testid="stDataFrame"]', timeout=90_000)
        page.get_by_role("tab", name="Distributions").click()
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
        page.wait_for_timeout(1000)  # let plotly finish its transitions before the picture
        shot = Path(os.environ.get("TIGAS_SCREENSHOT_DIR", tmp_path)) / "dashboard.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert page.locator(".js-plotly-plot").count() >= 3
        assert "Traceback" not in page.content()

        # Export: all scores as CSV, and a plot as PNG (kaleido drives the same chromium).
        page.get_by_role("tab", name="Export").click()
        with page.expect_download(timeout=60_000) as download:
            page.get_by_role("button", name="All scores (CSV)").click()
        exported = pd.read_csv(download.value.path(), keep_default_na=False)
        assert len(exported) == sum(GENERATORS.values()) + 1
        assert set(exported["generator"]) == set(GENERATORS)
        with page.expect_download(timeout=120_000) as download:
            page.get_by_role("button", name="PNG").first.click()
        assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert shot.stat().st_size > 10_000

        # `tigas dashboard` is the Streamlit server itself: a SIGTERM to that one pid leaves nothing serving.
        os.kill(server.process.pid, signal.SIGTERM)
        server.process.wait(timeout=30)
        assert not server.answers()
