"""TIGAS dashboard: which generator (checkpoint, sampler setting) makes the most real-looking images, and why.

Thin Streamlit view. Scores come from `TIGAS` through `tigas_core.score_cache` (persistent, keyed by
file content + model), spectra from `tigas_core.spectral`, explanations from `TIGAS.explain`,
AUROC/AP/ECE from `tigas_core.metrics.evaluation`, Fréchet distances from `tigas_core.metrics.frechet`. Run it with `tigas dashboard ROOT` or
`streamlit run dashboards/dashboard.py -- ROOT [--weights DIR] [--real-name real]`; the same
settings can come from the environment (TIGAS_DASHBOARD_ROOT, TIGAS_WEIGHTS, TIGAS_REAL_NAME,
TIGAS_CACHE_DIR), which is how tests drive it.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from PIL import Image
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from tigas_core.data.records import REAL, REAL_LABEL, read_csv_index, scan_folder
from tigas_core.data.records import classify_parts  # the layouts' one home
from tigas_core.io import DEFAULT_VIEWS, VIEW_DESCRIPTIONS, VIEW_MODES, iter_image_files
from tigas_core.metrics.evaluation import binary_metrics
from tigas_core.metrics.frechet import StreamingStats, frechet_distance
from tigas_core.model import BRANCHES
from tigas_core.plots import FUSION_NOTE, explanation_figures
from tigas_core.score_cache import ScoreCache, ScoredSet, default_cache_dir
from tigas_core.spectral import radial_frequencies

METRICS = ("score", *BRANCHES)
TOP_LEVEL = "(top level)"
MAX_UNZIPPED_BYTES = 8 * 2**30  # an uploaded zip may not unpack to more than this (zip-bomb guard)


# --------------------------------------------------------------------------------------------
# Settings and inputs (plain functions: no Streamlit calls, so they are easy to test and reuse)
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Settings:
    root: str | None
    weights: str | None
    real_name: str
    cache_dir: str
    batch_size: int
    views: str = DEFAULT_VIEWS


def read_settings() -> Settings:
    """Script arguments under `streamlit run ... -- ARGS` win over environment variables."""
    parser = argparse.ArgumentParser(prog="dashboard.py")
    parser.add_argument("root", nargs="?", default=os.environ.get("TIGAS_DASHBOARD_ROOT") or None)
    parser.add_argument("--weights", default=os.environ.get("TIGAS_WEIGHTS") or None)
    parser.add_argument("--real-name", default=os.environ.get("TIGAS_REAL_NAME") or "real")
    parser.add_argument("--cache-dir", default=os.environ.get("TIGAS_CACHE_DIR") or str(default_cache_dir()))
    parser.add_argument("--batch-size", type=int, default=int(os.environ.get("TIGAS_BATCH_SIZE") or 16))
    parser.add_argument("--views", choices=VIEW_MODES, default=os.environ.get("TIGAS_VIEWS") or DEFAULT_VIEWS)
    # Under AppTest sys.argv belongs to pytest: only parse it when this file is the program.
    own_argv = Path(sys.argv[0]).resolve() == Path(__file__).resolve()
    args, _ = parser.parse_known_args(sys.argv[1:] if own_argv else [])
    return Settings(args.root, args.weights, args.real_name, args.cache_dir, args.batch_size, args.views)


def index_folder(root: str | os.PathLike) -> pd.DataFrame:
    """(path, generator) for every image below ``root``; the generator is the first sub-folder's name.

    A training-data layout (``real/`` + ``fake/<generator>/``) is read with the trainer's own
    scanner instead, so the project's data folders open as they are.
    """
    root = Path(root).resolve()
    if (root / "fake").is_dir() and (root / REAL).is_dir():
        return pd.DataFrame([(r.path, r.generator) for r in scan_folder(root)], columns=["path", "generator"])
    rows = []
    for path in iter_image_files(root, recursive=True):
        parts = path.relative_to(root).parts
        rows.append((str(path), parts[0] if len(parts) > 1 else TOP_LEVEL))
    return pd.DataFrame(rows, columns=["path", "generator"])


def index_csv(csv_path: str | os.PathLike) -> pd.DataFrame:
    """(path, generator) from a CSV index; relative paths are relative to the CSV's folder.

    Columns path,generator; a training index (path,label[,generator]) is read by the trainer's reader.
    """
    csv_path = Path(csv_path)
    table = pd.read_csv(csv_path)
    table.columns = [str(c).strip().lower() for c in table.columns]
    if "label" in table.columns:
        return pd.DataFrame([(r.path, r.generator) for r in read_csv_index(csv_path)], columns=["path", "generator"])
    missing = {"path", "generator"} - set(table.columns)
    if missing:
        raise ValueError(f"CSV index needs columns 'path' and 'generator'; missing {sorted(missing)}")
    paths = [Path(p) if Path(p).is_absolute() else csv_path.parent / p for p in table["path"].astype(str)]
    return pd.DataFrame({"path": [str(p.resolve()) for p in paths], "generator": table["generator"].astype(str)})


def index_scores(parquet_path: str | os.PathLike) -> pd.DataFrame:
    """The rows of a scores file (`tigas score --engine ray --out`: a cluster's results, shown
    without scoring again) with a generator each: its ``generator`` column, else from its path."""
    table = pd.read_parquet(parquet_path)
    missing = {"path", "score", *BRANCHES, "error"} - set(table.columns)
    if missing:
        raise ValueError(f"not a TIGAS scores file: no column(s) {', '.join(sorted(missing))}")
    if "generator" not in table.columns:
        table.insert(0, "generator", generator_names(table["path"]))
    if "digest" not in table.columns:
        table["digest"] = ""
    return table.reset_index(drop=True)


def generator_names(paths: pd.Series) -> list[str]:
    """Each path's generator as `index_folder` names it, below the paths' common folder: by the
    training layouts' rules (the trainer's own), else the first sub-folder."""
    absolute = [os.path.abspath(p) for p in paths]
    root = os.path.commonpath([os.path.dirname(p) for p in absolute]) if absolute else ""
    names = []
    for path in absolute:
        parts = Path(os.path.relpath(path, root)).parts
        label, generator = classify_parts(parts)
        names.append(generator if label is not None else parts[0] if len(parts) > 1 else TOP_LEVEL)
    return names


def extract_zip(data: bytes, dest_root: Path) -> Path:
    """Unpack an uploaded zip once (keyed by its hash) and return the folder holding the generators.

    Members that would land outside the target (absolute paths, '..') are refused, not extracted.
    """
    target = dest_root / hashlib.blake2b(data, digest_size=12).hexdigest()
    if not target.exists():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(member.file_size for member in archive.infolist())
            if unpacked > MAX_UNZIPPED_BYTES:
                raise ValueError(f"unpacks to {unpacked / 2**30:.1f} GiB (limit {MAX_UNZIPPED_BYTES / 2**30:.0f} GiB)")
            for member in archive.infolist():
                destination = (partial / member.filename).resolve()
                if not destination.is_relative_to(partial.resolve()):
                    raise ValueError(f"zip member {member.filename!r} points outside the archive folder")
                if "__MACOSX" not in Path(member.filename).parts:
                    archive.extract(member, partial)
        partial.rename(target)
    # A zip of one folder ("mydata/real/..., mydata/gan/...") holds its generators one level down.
    children = [c for c in target.iterdir() if not c.name.startswith((".", "__MACOSX"))]
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return target


# A ranking metric of 1 or 2 images (AUROC 1.000 from a single image) only looks like a result.
MIN_IMAGES_FOR_METRICS = 5


def summary_table(frame: pd.DataFrame, real_name: str, threshold: float, distances: dict[str, float]) -> pd.DataFrame:
    """Per generator: n, mean, median, std, share flagged as generated, AUROC/AP/ECE against real, FD to real.

    AUROC, AP (generated images as the positive class), balanced accuracy and ECE come from the
    project's evaluation code, so the dashboard and `tigas evaluate` agree; AUROC 0.5 means the
    generator's images are indistinguishable from the real ones by TIGAS.
    """
    ok = frame[frame["error"] == ""]
    real_scores = ok.loc[ok["generator"] == real_name, "score"].to_numpy()
    rows = []
    for generator, group in frame.groupby("generator", sort=True):
        scores = group.loc[group["error"] == "", "score"].to_numpy()
        row = {
            "generator": generator,
            "n": len(scores),
            "failed": len(group) - len(scores),
            "mean": scores.mean() if len(scores) else np.nan,
            "median": np.median(scores) if len(scores) else np.nan,
            "std": scores.std(ddof=1) if len(scores) > 1 else np.nan,
            "flagged": (scores < threshold).mean() if len(scores) else np.nan,
            "AUROC": np.nan, "AP": np.nan, "accuracy": np.nan, "ECE": np.nan,
            "FD to real": distances.get(generator, np.nan),
        }
        if generator != real_name and min(len(scores), len(real_scores)) >= MIN_IMAGES_FOR_METRICS:
            labels = np.r_[np.full(len(real_scores), REAL_LABEL), np.full(len(scores), 1 - REAL_LABEL)]
            metrics = binary_metrics(np.r_[real_scores, scores], labels, threshold)
            row.update(AUROC=metrics["auroc"], AP=metrics["ap"], accuracy=metrics["accuracy"], ECE=metrics["ece"])
        rows.append(row)
    table = pd.DataFrame(rows)
    real_first = (table["generator"] != real_name).astype(int)
    return table.assign(_order=real_first).sort_values(["_order", "mean"], ascending=[True, False]).drop(columns="_order").reset_index(drop=True)


def frechet_to_real(frame: pd.DataFrame, features: np.ndarray, real_name: str) -> dict[str, float]:
    """Fréchet distance between each generator's fused TIGAS features and the real ones' (>= 2 images each)."""
    ok = (frame["error"] == "").to_numpy()
    stats = {}
    for generator in frame["generator"].unique():
        rows = features[ok & (frame["generator"] == generator).to_numpy()]
        if len(rows) >= 2:
            stats[generator] = StreamingStats(rows.shape[1])
            stats[generator].update(rows)
    real = stats.get(real_name)
    if real is None:
        return {}
    return {g: frechet_distance(s.mean, s.cov, real.mean, real.cov) for g, s in stats.items() if g != real_name}


# --------------------------------------------------------------------------------------------
# Figures (each returns a plotly figure; the Export tab offers every one as HTML and PNG)
# --------------------------------------------------------------------------------------------
def palette(order: list[str]) -> dict[str, str]:
    """One colour per generator across every chart; the real reference (first) is always near-black."""
    colours = px.colors.qualitative.Plotly
    return {name: "#222222" if i == 0 else colours[(i - 1) % len(colours)] for i, name in enumerate(order)}


def distribution_figures(frame: pd.DataFrame, column: str, order: list[str]) -> dict[str, go.Figure]:
    ok = frame[frame["error"] == ""]
    label = {"score": "TIGAS score"}.get(column, f"{column} component")
    common = dict(color="generator", category_orders={"generator": order}, labels={column: label},
                  color_discrete_map=palette(order))
    violin = px.violin(ok, x="generator", y=column, box=True, points="all" if len(ok) <= 2000 else False, **common)
    violin.update_traces(spanmode="hard")  # no density drawn outside the observed [0, 1] scores
    violin.update_layout(showlegend=False, title=f"{label} per generator")
    histogram = px.histogram(ok, x=column, barmode="overlay", histnorm="probability density", opacity=0.55, nbins=40, **common)
    histogram.update_layout(title=f"{label}: overlaid histograms")
    ecdf = px.ecdf(ok, x=column, **common)
    ecdf.update_layout(title=f"{label}: ECDF")
    return {f"violin_{column}": violin, f"histogram_{column}": histogram, f"ecdf_{column}": ecdf}


def spectral_figures(frame: pd.DataFrame, scored: ScoredSet, order: list[str], real_name: str) -> dict[str, go.Figure]:
    ok = (frame["error"] == "").to_numpy()
    names = [g for g in order if (ok & (frame["generator"] == g).to_numpy()).any()]
    spectra = np.stack([scored.spectra[ok & (frame["generator"] == g).to_numpy()].astype(np.float32).mean(axis=0) for g in names])
    profiles = {g: scored.profiles[ok & (frame["generator"] == g).to_numpy()].mean(axis=0) for g in names}
    figures: dict[str, go.Figure] = {}
    heat = px.imshow(spectra, facet_col=0, facet_col_wrap=min(4, len(names)), color_continuous_scale="viridis",
                     labels={"color": "log10 power"}, facet_row_spacing=0.08)
    _name_facets(heat, names)
    heat.update_layout(title="Mean 2-D log10 power spectrum of the model view (DC in the middle, each image's mean level removed)", height=260 * ((len(names) + 3) // 4) + 80)
    heat.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
    figures["spectrum_mean"] = heat
    if real_name in names:
        diff = spectra - spectra[names.index(real_name)]
        others = [i for i, g in enumerate(names) if g != real_name]
        if others:
            limit = float(np.abs(diff[others]).max()) or 1.0
            delta = px.imshow(diff[others], facet_col=0, facet_col_wrap=min(4, len(others)), color_continuous_scale="RdBu_r",
                              zmin=-limit, zmax=limit, labels={"color": "Δ log10 power"}, facet_row_spacing=0.08)
            _name_facets(delta, [names[i] for i in others])
            delta.update_layout(title=f"Mean log spectrum minus '{real_name}' (red = more energy than real)",
                                height=260 * ((len(others) + 3) // 4) + 80)
            delta.update_xaxes(showticklabels=False).update_yaxes(showticklabels=False)
            figures["spectrum_minus_real"] = delta
    frequencies = radial_frequencies(scored.profiles.shape[1]).numpy()
    radial = go.Figure()
    colours = palette(order)
    for g in names:
        radial.add_scatter(x=frequencies, y=profiles[g], name=g, mode="lines", line=dict(width=4 if g == real_name else 2, color=colours[g]))
    radial.update_layout(title="Mean radial power profile (log10, normalised at mid frequency)",
                         xaxis_title="frequency / Nyquist", yaxis_title="log10 power")
    figures["radial_profile"] = radial
    return figures


def _name_facets(figure: go.Figure, names: list[str]) -> None:
    for annotation in figure.layout.annotations:
        index = int(annotation.text.split("=")[-1])
        annotation.text = names[index]


def roc_figure(frame: pd.DataFrame, real_name: str, threshold: float, order: list[str]) -> go.Figure:
    ok = frame[frame["error"] == ""]
    colours = palette(order)
    real = ok.loc[ok["generator"] == real_name, "score"].to_numpy()
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="grey"), name="chance")
    for generator, group in ok[ok["generator"] != real_name].groupby("generator", sort=True):
        labels = np.r_[np.ones(len(real)), np.zeros(len(group))]
        values = np.r_[real, group["score"].to_numpy()]
        fpr, tpr, _ = roc_curve(labels, values)
        # The operating point of the slider: real kept (TPR) vs this generator passed as real (FPR).
        point_tpr, point_fpr = (real >= threshold).mean(), (group["score"].to_numpy() >= threshold).mean()
        figure.add_scatter(x=fpr, y=tpr, mode="lines", line=dict(color=colours[generator]),
                           name=f"{generator} (AUROC {roc_auc_score(labels, values):.3f})")
        figure.add_scatter(x=[point_fpr], y=[point_tpr], mode="markers", marker=dict(size=10, color=colours[generator]),
                           showlegend=False, name=f"{generator} @ {threshold:.2f}")
    figure.update_layout(title=f"ROC per generator against '{real_name}' (dots: threshold {threshold:.2f})",
                         xaxis_title="generated images passed as real (FPR)", yaxis_title="real images kept (TPR)")
    return figure


def confusion_figure(frame: pd.DataFrame, real_name: str, threshold: float, generator: str) -> go.Figure:
    ok = frame[frame["error"] == ""]
    if generator != "all generated":
        ok = ok[ok["generator"].isin([real_name, generator])]
    truth = np.where(ok["generator"] == real_name, "real", "generated")
    predicted = np.where(ok["score"] >= threshold, "real", "generated")
    matrix = confusion_matrix(truth, predicted, labels=["real", "generated"])
    figure = px.imshow(matrix, x=["predicted real", "predicted generated"], y=["real", generator], text_auto=True,
                       color_continuous_scale="Blues")
    figure.update_layout(title=f"Confusion matrix at threshold {threshold:.2f}", coloraxis_showscale=False)
    return figure


# --------------------------------------------------------------------------------------------
# Streamlit caching: the model once per process, results once per (model, file list, rescan)
# --------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the TIGAS model…")
def load_tigas(weights: str | None, views: str = DEFAULT_VIEWS):
    import torch

    from tigas_core.api import TIGAS

    threads = os.environ.get("TIGAS_NUM_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    return TIGAS(checkpoint_path=weights, views=views)


@st.cache_resource(show_spinner=False)
def score_cache(_tigas, weights: str | None, cache_dir: str, views: str = DEFAULT_VIEWS) -> ScoreCache:
    return ScoreCache(_tigas, cache_dir)


@st.cache_resource(show_spinner=False)
def results_store() -> dict:
    """Scored sets shared by all browser sessions of this process (read-only once stored)."""
    return {}


@st.cache_data(show_spinner="Indexing images…")
def cached_index(kind: str, source: str, rescan: int) -> pd.DataFrame:
    return {"csv": index_csv, "scores": index_scores}.get(kind, index_folder)(source)


@st.cache_data(show_spinner="Fréchet distances…", max_entries=16)
def cached_frechet(_frame: pd.DataFrame, _features: np.ndarray, key: tuple, real_name: str) -> dict[str, float]:
    """FD per generator, once per scored set and real reference (a matrix square root each)."""
    return frechet_to_real(_frame, _features, real_name)


@st.cache_data(show_spinner=False, max_entries=512)
def thumbnail(path: str, digest: str, size: int = 192) -> np.ndarray:
    with Image.open(path) as image:
        image = image.convert("RGB")
        image.thumbnail((size, size))
        return np.asarray(image)


@st.cache_data(show_spinner="Explaining…", max_entries=64)
def cached_explanation(_tigas, model_id: str, digest: str, path: str):
    return _tigas.explain(path)


def score_with_progress(cache: ScoreCache, index: pd.DataFrame, batch_size: int, rescan: int) -> tuple[ScoredSet, int, tuple]:
    """Scored set for this index, how many files this call scored (0 when this process already had it), and its key.

    Kept in process memory per (model, file list, rescan count); on a miss the persistent cache
    supplies every known file and only new or changed ones are scored, behind a progress bar.
    """
    key = (cache.model_id, hashlib.blake2b("\n".join(index["path"]).encode(), digest_size=16).hexdigest(), rescan)
    store = results_store()
    if key in store:
        return store[key], 0, key
    bar = st.progress(0.0, text="Checking the score cache…")

    def report(done: int, total: int) -> None:
        if total:
            bar.progress(done / total, text=f"Scoring new or changed images: {done}/{total}")

    scored = cache.score(index["path"], batch_size=batch_size, progress=report)
    bar.empty()
    store[key] = scored
    while len(store) > 4:  # keep memory bounded when many folders are opened
        store.pop(next(iter(store)))
    return scored, scored.n_scored, key


# --------------------------------------------------------------------------------------------
# Page
# --------------------------------------------------------------------------------------------
def choose_source(settings: Settings) -> tuple[str, str] | None:
    """Sidebar input choice -> ("folder"|"csv", location) or None when nothing is selected yet."""
    st.sidebar.header("Images")
    mode = st.sidebar.radio("Source", ["Folder or CSV path", "Upload zip", "Upload CSV index"], key="source_mode")
    if mode == "Upload zip":
        upload = st.sidebar.file_uploader("Zip with one folder per generator", type=["zip"])
        if upload is None:
            return None
        try:
            return "folder", str(extract_zip(upload.getvalue(), Path(settings.cache_dir) / "uploads"))
        except (ValueError, zipfile.BadZipFile) as exc:
            st.sidebar.error(f"{upload.name}: cannot use this zip ({exc})")
            return None
    if mode == "Upload CSV index":
        upload = st.sidebar.file_uploader("CSV with columns path, generator (absolute paths)", type=["csv"])
        if upload is None:
            return None
        data = upload.getvalue()
        target = Path(settings.cache_dir) / "uploads" / f"{hashlib.blake2b(data, digest_size=12).hexdigest()}.csv"
        if not target.exists():
            from tigas_core.config import atomic_write_bytes

            atomic_write_bytes(target, data)
        return "csv", str(target)
    default = settings.root or demo_root(settings.cache_dir)
    location = st.sidebar.text_input("Folder (one sub-folder per generator), CSV index or scores .parquet", value=default or "", key="root")
    if not location:
        return None
    kind = {".csv": "csv", ".parquet": "scores"}.get(Path(location).suffix.lower(), "folder")
    return kind, str(Path(location).expanduser())


@st.cache_resource(show_spinner="Building the demo set: 16 photo crops and 16 samples of each bundled zoo generator (once per start)…")
def demo_root(cache_dir: str) -> str | None:
    """With no input, the project's own demo set (generator-zoo samples + package-shipped photos)."""
    try:
        from tigas_core.demo import build_demo_set
    except ImportError:
        return None
    root = Path(cache_dir) / "demo"
    build_demo_set(root)
    return str(root)


def main() -> None:
    st.set_page_config(page_title="TIGAS dashboard", layout="wide")
    os.environ.setdefault("BROWSER_PATH", shutil.which("chromium") or shutil.which("google-chrome") or "")
    settings = read_settings()
    st.title("TIGAS: realism of generated images per generator")

    source = choose_source(settings)
    if "rescan" not in st.session_state:
        st.session_state.rescan = 0
    if st.sidebar.button("Rescan files", help="Pick up added, removed or edited files"):
        st.session_state.rescan += 1
    if source is None:
        st.info("Choose a folder with one sub-folder per generator (one named like the real reference), a zip or a CSV index.")
        return
    kind, location = source
    if not Path(location).exists():
        st.error(f"{location}: not found")
        return
    try:
        index = cached_index(kind, location, st.session_state.rescan)
    except (ValueError, OSError) as exc:
        st.error(f"{location}: cannot read the image list ({exc})")
        return
    if index.empty:
        st.warning(f"{location}: no image files found")
        return

    try:
        tigas = load_tigas(settings.weights, settings.views)
    except Exception as exc:  # missing or broken weights: say which and why, keep the page alive
        st.error(f"Cannot load TIGAS weights ({settings.weights or 'bundled'}): {exc}")
        return
    cache = score_cache(tigas, settings.weights, settings.cache_dir, settings.views)
    if kind == "scores":  # scored elsewhere (a cluster): no features or spectra, nothing to score here
        scored, n_new, key, frame = None, 0, None, index
        st.sidebar.caption(f"Scores read from {location}; explanations in the gallery use the model below.")
    else:
        scored, n_new, key = score_with_progress(cache, index, settings.batch_size, st.session_state.rescan)
        frame = pd.concat([index.reset_index(drop=True), scored.table.drop(columns="path")], axis=1)

    generators = sorted(frame["generator"].unique())
    default_real = generators.index(settings.real_name) if settings.real_name in generators else 0
    real_name = st.sidebar.selectbox(
        "Real reference", generators, index=default_real, key="real_name",
        help=None if settings.real_name in generators else f"No folder is named '{settings.real_name}': pick the real one.")
    threshold = st.sidebar.slider("Threshold (score below = flagged as generated)", 0.0, 1.0,
                                  float(tigas.config.threshold), 0.01, key="threshold")
    views_note = "" if tigas.views == "single" else f" · {VIEW_DESCRIPTIONS[tigas.views]}"
    st.sidebar.caption(f"Model: {tigas.weights_source}{views_note} · id {cache.model_id[:12]} · cache {cache.path}")
    order = [real_name] + [g for g in generators if g != real_name]

    n_failed = int((frame["error"] != "").sum())
    cols = st.columns(4)
    cols[0].metric("images", len(frame))
    cols[1].metric("generators", len(generators))
    cols[2].metric("newly scored", n_new, help="Files scored in this run; all others came from the score cache")
    cols[3].metric("unreadable", n_failed)
    has_real = real_name in generators and len(generators) > 1

    figures: dict[str, go.Figure] = {}
    tabs = st.tabs(["Summary", "Distributions", "Spectra", "Gallery", "Threshold & ROC", "Export", f"Unreadable ({n_failed})"])
    with tabs[0]:
        distances = cached_frechet(frame, scored.features, key, real_name) if scored else {}
        table = summary_table(frame, real_name, threshold, distances)
        st.dataframe(table, hide_index=True, key="summary",
                     column_config={c: st.column_config.NumberColumn(format="%.3f") for c in
                                    ("mean", "median", "std", "flagged", "AUROC", "AP", "accuracy", "ECE", "FD to real")})
        st.caption(f"Each generator against '{real_name}'. AUROC 0.5 = indistinguishable from real; AP with generated "
                   "images as the positive class; accuracy: class-balanced at the threshold; ECE: calibration error; "
                   "flagged: share scored below the threshold; FD: Fréchet distance of fused TIGAS features. "
                   f"AUROC, AP, accuracy and ECE need at least {MIN_IMAGES_FOR_METRICS} scored images in both groups; "
                   "below about 30 treat them as rough.")
        feature_dim = scored.features.shape[1] if scored else 0
        if has_real and table["n"].min() <= feature_dim:
            st.warning(f"FD from groups of {feature_dim} images or fewer ({feature_dim}-d features) is biased upwards "
                       "and noisy: compare it only between groups of the same size.", icon="⚠️")
        st.download_button("Download summary (CSV)", table.to_csv(index=False), "tigas_summary.csv", "text/csv",
                           on_click="ignore")
    with tabs[1]:
        column = st.radio("Value", METRICS, horizontal=True, key="dist_metric")
        for name, figure in distribution_figures(frame, column, order).items():
            figures[name] = figure
            st.plotly_chart(figure, key=name)
    with tabs[2]:
        if scored is None:
            st.info("A scores file holds scores, not spectra: open the image folder itself to see them.")
        for name, figure in (spectral_figures(frame, scored, order, real_name) if scored else {}).items():
            figures[name] = figure
            st.plotly_chart(figure, key=name)
    with tabs[3]:
        figures.update(gallery(frame, tigas, cache.model_id, generators, order[1] if len(order) > 1 else order[0]))
    with tabs[4]:
        if has_real:
            figures["roc"] = roc_figure(frame, real_name, threshold, order)
            choice = st.selectbox("Confusion matrix for", ["all generated", *order[1:]], key="cm_generator")
            figures["confusion"] = confusion_figure(frame, real_name, threshold, choice)
            left, right = st.columns([3, 2])
            left.plotly_chart(figures["roc"], key="roc")
            right.plotly_chart(figures["confusion"], key="confusion")
        else:
            st.info("ROC curves and the confusion matrix need a real reference folder and at least one generator.")
    with tabs[5]:
        export(frame, figures)
    with tabs[6]:
        failed = frame.loc[frame["error"] != "", ["generator", "path", "error"]]
        if failed.empty:
            st.success("Every file was scored.")
        else:
            st.dataframe(failed, hide_index=True, key="failed")


def gallery(frame: pd.DataFrame, tigas, model_id: str, generators: list[str], default: str) -> dict[str, go.Figure]:
    """Most and least real-looking images of one generator; a button under each shows its explanation."""
    generator = st.selectbox("Generator", generators, index=generators.index(default), key="gallery_generator")
    count = st.slider("Images per row", 3, 12, 6, key="gallery_count")
    ok = frame[(frame["generator"] == generator) & (frame["error"] == "")].sort_values("score", ascending=False)
    top = ok.head(count)
    bottom = ok.iloc[len(top):].tail(count).iloc[::-1]  # never repeat an image of the top row
    for title, rows in (("Most real-looking", top), ("Least real-looking", bottom)):
        if rows.empty:
            continue
        st.subheader(title)
        columns = st.columns(count)
        for column, (_, row) in zip(columns, rows.iterrows()):
            caption = f"{row['score']:.3f} · {Path(row['path']).name}"
            try:
                column.image(thumbnail(row["path"], row["digest"]), caption=caption)
            except OSError as exc:  # moved or deleted since it was scored
                column.caption(f"{caption}: {exc}")
            if column.button("Explain", key=f"explain-{title}-{row['digest']}"):
                st.session_state.explain = (row["path"], row["digest"])
    selected = st.session_state.get("explain")
    if not selected:
        return {}
    path, digest = selected
    st.subheader(f"Explanation: {path}")
    try:
        explanation = cached_explanation(tigas, model_id, digest, path)
    except Exception as exc:  # e.g. the file changed or vanished since it was scored
        st.error(f"{path}: cannot explain ({exc})")
        return {}
    figures = {f"explain_{name}": figure for name, figure in explanation_figures(explanation).items()}
    st.caption(FUSION_NOTE)
    left, right = st.columns(2)
    for i, (name, figure) in enumerate(figures.items()):
        (left if i % 2 == 0 else right).plotly_chart(figure, key=name)
    return figures


def export(frame: pd.DataFrame, figures: dict[str, go.Figure]) -> None:
    """All scores as CSV/Parquet; every plot of this page as HTML and PNG, built only when clicked."""
    st.subheader("Scores")
    left, right = st.columns(2)
    left.download_button("All scores (CSV)", lambda: frame.to_csv(index=False), "tigas_scores.csv", "text/csv", key="export_csv",
                         on_click="ignore")
    right.download_button("All scores (Parquet)", lambda: frame.to_parquet(index=False), "tigas_scores.parquet",
                          "application/octet-stream", key="export_parquet", on_click="ignore")
    st.subheader("Plots")
    st.caption("PNG export renders with kaleido, which needs a Chrome/Chromium (BROWSER_PATH); HTML always works.")
    for name, figure in figures.items():
        row = st.columns([3, 1, 1])
        row[0].write(figure.layout.title.text or name)
        row[1].download_button("HTML", lambda f=figure: for_export(f).to_html(include_plotlyjs=True), f"{name}.html",
                               "text/html", key=f"html-{name}", on_click="ignore")
        row[2].download_button("PNG", lambda f=figure: for_export(f).to_image(format="png", width=1200, height=700),
                               f"{name}.png", "image/png", key=f"png-{name}", on_click="ignore")


def for_export(figure: go.Figure) -> go.Figure:
    """A copy with an explicit light theme: Streamlit's chart theme is applied in the browser only."""
    return go.Figure(figure).update_layout(template="plotly_white")


if __name__ == "__main__":
    main()
