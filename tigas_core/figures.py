"""Plotly figures of score tables (a run's histogram; the dashboard's generators side by side:
distributions, spectra, ROC, confusion), and the one way a figure leaves as a file.

No numbers are computed here beyond grouping: the figures arrange what TIGAS and the score cache
returned. PNG export goes through kaleido, which drives a Chrome: `figure_image` finds one (BROWSER_PATH,
else chromium or google-chrome on the PATH) for every face that exports, the CLI's ``--plot`` and
the dashboard's Export tab alike.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots
from sklearn.metrics import confusion_matrix, roc_auc_score, roc_curve

from tigas_core.config import atomic_write_bytes, atomic_write_text
from tigas_core.spectral import radial_frequencies

if TYPE_CHECKING:
    from tigas_core.score_cache import ScoredSet

BROWSERS = ("chromium", "google-chrome", "chrome")


def figure_image(figure: go.Figure, format: str = "png", width: int | None = None, height: int | None = None) -> bytes:
    """The figure as image bytes (png, jpeg, svg, pdf), rendered by kaleido in a Chrome found here."""
    if not os.environ.get("BROWSER_PATH"):
        browser = next((found for name in BROWSERS if (found := shutil.which(name))), None)
        if browser:
            os.environ["BROWSER_PATH"] = browser
    return figure.to_image(format=format, width=width, height=height)


def write_figure(figure: go.Figure, path: Path) -> None:
    """``.png``: an image (`figure_image`); anything else: an HTML page with plotly.js inside, so it
    opens offline. Written atomically."""
    if path.suffix.lower() == ".png":
        atomic_write_bytes(path, figure_image(figure))
    else:
        atomic_write_text(path, figure.to_html(include_plotlyjs=True))


def score_histogram(table: pd.DataFrame, threshold: float) -> go.Figure:
    """The scored rows of a result table as a histogram over [0, 1], the threshold marked."""
    scored = table[table["error"] == ""]
    figure = px.histogram(scored, x="score", nbins=40, range_x=[0, 1], hover_data=["path"],
                          title=f"TIGAS scores ({len(scored)} images)")
    figure.add_vline(x=threshold, line_dash="dash", annotation_text="threshold")
    return figure


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
    histogram = histogram_panels(ok, column, order, label)
    ecdf = px.ecdf(ok, x=column, **common)
    ecdf.update_layout(title=f"{label}: ECDF", legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, title=None))
    return {f"violin_{column}": violin, f"histogram_{column}": histogram, f"ecdf_{column}": ecdf}


def histogram_panels(ok: pd.DataFrame, column: str, order: list[str], label: str, wrap: int = 3) -> go.Figure:
    """One small histogram per generator, each with the real reference (``order[0]``) outlined
    behind it: a dozen overlaid translucent histograms cannot be read, side-by-side panels on
    shared bins and axes can."""
    values = ok[column].to_numpy(dtype=float)
    n_bins = int(np.clip(2 * np.sqrt(len(values)), 10, 40))  # fewer, fuller bins for a few dozen images
    edges = np.linspace(min(0.0, np.nanmin(values)), max(1.0, np.nanmax(values)), n_bins + 1)
    centres, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    names = [g for g in order if (ok["generator"] == g).any()]
    rows = (len(names) + wrap - 1) // wrap
    figure = make_subplots(rows=rows, cols=wrap, subplot_titles=names, shared_xaxes=True, shared_yaxes=True,
                           vertical_spacing=min(0.12, 0.5 / rows), horizontal_spacing=0.04)
    colours = palette(order)

    def density(name: str) -> np.ndarray:
        counts, _ = np.histogram(ok.loc[ok["generator"] == name, column].to_numpy(dtype=float), bins=edges)
        return counts / max(1, counts.sum()) / width

    reference = density(order[0]) if order and order[0] in names else None
    for i, name in enumerate(names):
        row, col = i // wrap + 1, i % wrap + 1
        figure.add_bar(x=centres, y=density(name), width=width, marker_color=colours[name], name=name, showlegend=False,
                       row=row, col=col)
        if reference is not None and name != order[0]:
            figure.add_scatter(x=centres, y=reference, mode="lines", line=dict(shape="hvh", color=colours[order[0]], width=1.5),
                               name=order[0], showlegend=i == 1, row=row, col=col)
    figure.update_layout(title=f"{label}: each group's histogram (line: '{order[0]}')" if order else label,
                         height=170 * rows + 110, bargap=0, legend=dict(orientation="h", y=-0.08, x=0),
                         margin=dict(t=80, b=40, l=40, r=10))
    figure.update_yaxes(showticklabels=False)
    return figure


def spectral_figures(frame: pd.DataFrame, scored: ScoredSet, order: list[str], real_name: str) -> dict[str, go.Figure]:
    ok = (frame["error"] == "").to_numpy()
    names = [g for g in order if (ok & (frame["generator"] == g).to_numpy()).any()]
    spectra = np.stack([scored.spectra[ok & (frame["generator"] == g).to_numpy()].astype(np.float32).mean(axis=0) for g in names])
    profiles = {g: scored.profiles[ok & (frame["generator"] == g).to_numpy()].mean(axis=0) for g in names}
    figures: dict[str, go.Figure] = {}
    heat = px.imshow(spectra, facet_col=0, facet_col_wrap=min(4, len(names)), color_continuous_scale="viridis",
                     labels={"color": "log10 power"}, facet_row_spacing=0.08)
    _name_facets(heat, names)
    heat.update_layout(title="Mean 2-D log10 power spectrum of the model view (DC in the middle, each image's mean level removed)",
                       height=260 * ((len(names) + 3) // 4) + 80)
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
        radial.add_scatter(x=frequencies, y=profiles[g], name=g, mode="lines",
                           line=dict(width=4 if g == real_name else 2, color=colours[g]))
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
    # The legend below the square, not beside it: on a phone a side legend took most of the width.
    figure.update_layout(title=f"ROC per generator against '{real_name}'<br><sub>dots: threshold {threshold:.2f}</sub>",
                         xaxis_title="generated passed as real (FPR)", yaxis_title="real kept (TPR)",
                         legend=dict(orientation="h", yanchor="top", y=-0.18, x=0), height=380 + 22 * len(order),
                         margin=dict(l=50, r=10, t=70))
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
