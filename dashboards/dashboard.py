"""TIGAS dashboard: which generator (checkpoint, sampler setting) makes the most real-looking images, and why.

A Streamlit view that only lays out and calls: scores come from `TIGAS` through
`tigas_core.score_cache` (persistent, keyed by file content + model), the per-generator analysis
(indexing, summary, Fréchet distance to real) from `tigas_core.compare`, the figures from
`tigas_core.figures` and `tigas_core.explanation`, explanations from `TIGAS.explain`. One function per tab.
Run it with `tigas dashboard ROOT` or `streamlit run dashboards/dashboard.py -- ROOT [--weights DIR]
[--real-name real]`; the same settings can come from the environment (ENVIRONMENT), which is how tests drive it.
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
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from tigas_core.commands import add_scorer_arguments, load_scorer
from tigas_core.compare import MIN_IMAGES_FOR_METRICS, frechet_to_real, index_csv, index_folder, index_scores, summary_table
from tigas_core.explanation import FUSION_NOTE, explanation_figures
from tigas_core.figures import confusion_figure, distribution_figures, figure_image, roc_figure, spectral_figures
from tigas_core.io import setting_notes
from tigas_core.model import BRANCHES
from tigas_core.score_cache import ScoreCache, ScoredSet, default_cache_dir

METRICS = ("score", *BRANCHES)
MAX_UNZIPPED_BYTES = 8 * 2**30  # an uploaded zip may not unpack to more than this (zip-bomb guard)
# Where a setting comes from when no script argument gives it (how tests and `tigas dashboard` hand them over).
ENVIRONMENT = {"root": "TIGAS_DASHBOARD_ROOT", "weights": "TIGAS_WEIGHTS", "real_name": "TIGAS_REAL_NAME",
               "cache_dir": "TIGAS_CACHE_DIR", "batch_size": "TIGAS_BATCH_SIZE", "views": "TIGAS_VIEWS",
               "precision": "TIGAS_PRECISION", "threads": "TIGAS_NUM_THREADS", "device": "TIGAS_DEVICE", "threshold": "TIGAS_THRESHOLD"}


# --------------------------------------------------------------------------------------------
# Settings and inputs (plain functions: no Streamlit calls, so they are easy to test)
# --------------------------------------------------------------------------------------------
def read_settings() -> argparse.Namespace:
    """Script arguments under `streamlit run ... -- ARGS` (the scorer's own: `add_scorer_arguments`)
    win over the environment (ENVIRONMENT), which wins over the defaults."""
    parser = argparse.ArgumentParser(prog="dashboard.py")
    parser.add_argument("root", nargs="?")
    parser.add_argument("--real-name", default="real")
    parser.add_argument("--cache-dir", default=str(default_cache_dir()))
    add_scorer_arguments(parser)
    parser.set_defaults(**{dest: os.environ[name] for dest, name in ENVIRONMENT.items() if os.environ.get(name)})
    # Under AppTest sys.argv belongs to pytest: only parse it when this file is the program.
    own_argv = Path(sys.argv[0]).resolve() == Path(__file__).resolve()
    return parser.parse_known_args(sys.argv[1:] if own_argv else [])[0]


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


# --------------------------------------------------------------------------------------------
# Streamlit caching: the model once per process, results once per (model, file list, rescan)
# --------------------------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the TIGAS model…")
def load_tigas(weights: str | None, views: str, precision: str, device: str, threads: int | None):
    """The scorer once per process and options (`tigas_core.commands.load_scorer`)."""
    return load_scorer(argparse.Namespace(weights=weights, views=views, precision=precision, device=device, threads=threads))


@st.cache_resource(show_spinner=False)
def score_cache(_tigas, weights: str | None, cache_dir: str, views: str, precision: str) -> ScoreCache:
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
def choose_source(settings: argparse.Namespace) -> tuple[str, str] | None:
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


@dataclasses.dataclass
class View:
    """What every tab reads: the scored rows with their generator, and the sidebar's choices."""

    frame: pd.DataFrame  # index (path, generator) + result rows
    scored: ScoredSet | None  # features and spectra; None for a scores file made elsewhere
    key: tuple | None  # the scored set's key (`score_with_progress`)
    n_new: int  # files this run scored (the others came from the score cache)
    tigas: object
    model_id: str
    generators: list[str]
    real_name: str
    threshold: float

    @property
    def order(self) -> list[str]:
        """The real reference first, then the generators by name: every chart's order and colours."""
        return [self.real_name] + [g for g in self.generators if g != self.real_name]

    @property
    def has_real(self) -> bool:
        return self.real_name in self.generators and len(self.generators) > 1


def main() -> None:
    st.set_page_config(page_title="TIGAS dashboard", layout="wide")
    settings = read_settings()
    st.title("TIGAS: realism of generated images per generator")
    view = open_view(settings)
    if view is None:
        return
    frame = view.frame
    n_failed = int((frame["error"] != "").sum())
    counts = st.container(horizontal=True, gap="large")  # wraps two by two on a phone instead of stacking four
    counts.metric("images", len(frame), width="content")
    counts.metric("generators", len(view.generators), width="content")
    counts.metric("newly scored", view.n_new, help="Files scored in this run; all others came from the score cache", width="content")
    counts.metric("unreadable", n_failed, width="content")
    figures: dict[str, go.Figure] = {}
    tabs = st.tabs(["Summary", "Distributions", "Spectra", "Gallery", "Threshold & ROC", "Export", f"Unreadable ({n_failed})"])
    for tab, show in zip(tabs, (summary_tab, distributions_tab, spectra_tab, gallery, roc_tab)):
        with tab:
            figures.update(show(view) or {})
    with tabs[5]:
        export(frame, figures)
    with tabs[6]:
        failed = frame.loc[frame["error"] != "", ["generator", "path", "error"]]
        if failed.empty:
            st.success("Every file was scored.")
        else:
            st.dataframe(failed, hide_index=True, key="failed")


def open_view(settings: argparse.Namespace) -> View | None:
    """The sidebar: source, model, real reference and threshold; the images indexed and scored.
    None (with the reason on the page) while there is nothing to show."""
    source = choose_source(settings)
    if "rescan" not in st.session_state:
        st.session_state.rescan = 0
    if st.sidebar.button("Rescan files", help="Pick up added, removed or edited files"):
        st.session_state.rescan += 1
    if source is None:
        st.info("Choose a folder with one sub-folder per generator (one named like the real reference), a zip or a CSV index.")
        return None
    kind, location = source
    if settings.root is None and location == demo_root(settings.cache_dir):
        st.info("Demo: crops of photographs that scikit-image ships ('real') against samples of the project's own "
                "CIFAR-10 generators, all 32 px PNG. Each row says how well TIGAS tells that generator's images from "
                "the photos (AUROC 1 = always, 0.5 = not at all). Point the sidebar at your own folders to compare yours.")
    if not Path(location).exists():
        st.error(f"{location}: not found")
        return None
    try:
        index = cached_index(kind, location, st.session_state.rescan)
    except (ValueError, OSError) as exc:
        st.error(f"{location}: cannot read the image list ({exc})")
        return None
    if index.empty:
        st.warning(f"{location}: no image files found")
        return None
    try:
        tigas = load_tigas(settings.weights, settings.views, settings.precision, settings.device, settings.threads)
    except Exception as exc:  # missing or broken weights: say which and why, keep the page alive
        st.error(f"Cannot load TIGAS weights ({settings.weights or 'bundled'}): {exc}")
        return None
    cache = score_cache(tigas, settings.weights, settings.cache_dir, settings.views, settings.precision)
    if kind == "scores":  # scored elsewhere (a cluster): no features or spectra, nothing to score here
        scored, n_new, key, frame = None, 0, None, index
        st.sidebar.caption(f"Scores read from {location}; explanations in the gallery use the model below.")
    else:
        scored, n_new, key = score_with_progress(cache, index, settings.batch_size, st.session_state.rescan)
        frame = pd.concat([index.reset_index(drop=True), scored.table.drop(columns="path")], axis=1)
    generators = sorted(frame["generator"].unique())
    real_name = st.sidebar.selectbox(
        "Real reference", generators, index=generators.index(settings.real_name) if settings.real_name in generators else 0,
        key="real_name",
        help=None if settings.real_name in generators else f"No folder is named '{settings.real_name}': pick the real one.")
    default_threshold = tigas.threshold if settings.threshold is None else settings.threshold
    threshold = st.sidebar.slider("Threshold (score below = flagged as generated)", 0.0, 1.0, float(default_threshold), 0.01,
                                  key="threshold")
    views_note = "".join(f" · {note}" for note in setting_notes(tigas.views, tigas.precision))
    st.sidebar.caption(f"Model: {tigas.weights_source}{views_note} · id {cache.model_id[:12]} · cache {cache.path}")
    return View(frame, scored, key, n_new, tigas, cache.model_id, generators, real_name, threshold)


def summary_tab(view: View) -> None:
    """Per generator against the real reference: the summary table, what its columns mean, its CSV."""
    distances = cached_frechet(view.frame, view.scored.features, view.key, view.real_name) if view.scored else {}
    table = summary_table(view.frame, view.real_name, view.threshold, distances)
    st.dataframe(table, hide_index=True, key="summary", height="content", placeholder="—",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in
                                ("mean", "median", "std", "flagged", "AUROC", "AP", "accuracy", "ECE", "FD to real")})
    st.caption(f"Each generator against '{view.real_name}'. AUROC 0.5 = indistinguishable from real; AP with generated "
               "images as the positive class; accuracy: class-balanced at the threshold; ECE: calibration error; "
               "flagged: share scored below the threshold; FD: Fréchet distance of fused TIGAS features. "
               f"AUROC, AP, accuracy and ECE need at least {MIN_IMAGES_FOR_METRICS} scored images in both groups; "
               "below about 30 treat them as rough.")
    feature_dim = view.scored.features.shape[1] if view.scored else 0
    if view.has_real and table["n"].min() <= feature_dim:
        st.warning(f"FD from groups of {feature_dim} images or fewer ({feature_dim}-d features) is biased upwards "
                   "and noisy: compare it only between groups of the same size.", icon="⚠️")
    st.download_button("Download summary (CSV)", table.to_csv(index=False), "tigas_summary.csv", "text/csv", on_click="ignore")


def distributions_tab(view: View) -> dict[str, go.Figure]:
    """Violins, histograms and ECDFs of the score or one branch's, per generator."""
    column = st.radio("Value", METRICS, horizontal=True, key="dist_metric")
    return show_figures(distribution_figures(view.frame, column, view.order))


def spectra_tab(view: View) -> dict[str, go.Figure]:
    """Mean spectra per generator, their difference to real, and the radial profiles."""
    if view.scored is None:
        st.info("A scores file holds scores, not spectra: open the image folder itself to see them.")
        return {}
    return show_figures(spectral_figures(view.frame, view.scored, view.order, view.real_name))


def roc_tab(view: View) -> dict[str, go.Figure]:
    """ROC curves per generator with the threshold's operating points, and a confusion matrix."""
    if not view.has_real:
        st.info("ROC curves and the confusion matrix need a real reference folder and at least one generator.")
        return {}
    choice = st.selectbox("Confusion matrix for", ["all generated", *view.order[1:]], key="cm_generator")
    figures = {"roc": roc_figure(view.frame, view.real_name, view.threshold, view.order),
               "confusion": confusion_figure(view.frame, view.real_name, view.threshold, choice)}
    left, right = st.columns([3, 2])
    left.plotly_chart(figures["roc"], key="roc")
    right.plotly_chart(figures["confusion"], key="confusion")
    return figures


def show_figures(figures: dict[str, go.Figure]) -> dict[str, go.Figure]:
    """Each figure drawn, keyed by its name (so the Export tab can offer it)."""
    for name, figure in figures.items():
        st.plotly_chart(figure, key=name)
    return figures


def gallery(view: View) -> dict[str, go.Figure]:
    """Most and least real-looking images of one generator; a button under each shows its explanation."""
    frame, tigas, model_id, generators = view.frame, view.tigas, view.model_id, view.generators
    default = view.order[1] if len(view.order) > 1 else view.order[0]
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
    st.caption("PNG export renders with kaleido, which needs a Chrome/Chromium (BROWSER_PATH, or one on the PATH); HTML always works.")
    for name, figure in figures.items():
        row = st.columns([3, 1, 1])
        row[0].write(figure.layout.title.text or name)
        row[1].download_button("HTML", lambda f=figure: for_export(f).to_html(include_plotlyjs=True), f"{name}.html",
                               "text/html", key=f"html-{name}", on_click="ignore")
        row[2].download_button("PNG", lambda f=figure: figure_image(for_export(f), width=1200, height=700),
                               f"{name}.png", "image/png", key=f"png-{name}", on_click="ignore")


def for_export(figure: go.Figure) -> go.Figure:
    """A copy with an explicit light theme: Streamlit's chart theme is applied in the browser only."""
    return go.Figure(figure).update_layout(template="plotly_white")


if __name__ == "__main__":
    main()
