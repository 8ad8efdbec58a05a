"""`Explanation`: why an image got its score (what `TIGAS.explain` returns), and the one home for
drawing it. The app, the dashboard and `tigas explain` all show these four plotly figures, so a
branch bar or a spectrum looks the same wherever it is seen.

No numbers are computed here; the figures arrange the arrays `TIGAS.explain` returns. The data and
its drawing live in one module so that neither needs to import the other (the scorer in
`tigas_core.api` imports this, never the other way round).
"""
from __future__ import annotations

import dataclasses
import html
import os
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from tigas_core.config import atomic_write_text
from tigas_core.model import BRANCHES


@dataclasses.dataclass
class Explanation:
    """Everything needed to show why an image got its score (the app and dashboard draw this)."""

    score: float
    verdict: str
    components: dict[str, float]
    branch_weights: dict[str, float]
    spectrum: np.ndarray  # 2-D log power spectrum of the model view, DC at the centre
    radial_profile: np.ndarray  # normalised log10 radial power of this image
    reference_profile: np.ndarray  # the same for real photographs (learnt during training)
    frequencies: np.ndarray  # radial bin centres, fraction of Nyquist
    saliency: np.ndarray  # 2-D in [0,1]: where changing pixels moves the score most
    image: np.ndarray  # HxWx3 uint8: the model's view of the image
    image_size: tuple[int, int]  # (width, height) of the original
    note: str = ""  # what to read the score with (an animation is scored on its first frame)

    def figures(self) -> dict:
        """Plotly figures by name (branches, spectrum, profile, saliency): what the app and dashboard show."""
        return explanation_figures(self)

    def save_html(self, path: str | os.PathLike, title: str = "image") -> Path:
        """A report page of the score and the four figures (opens offline; plotly.min.js beside it)."""
        return write_explanation_html(self, path, title)

    def to_dict(self, arrays: bool = False) -> dict[str, Any]:
        """JSON-able summary; ``arrays=True`` adds the profiles and maps as nested lists."""
        data = {
            "score": self.score, "verdict": self.verdict, "components": self.components,
            "branch_weights": self.branch_weights, "image_size": list(self.image_size), "note": self.note,
        }
        if arrays:
            for name in ("radial_profile", "reference_profile", "frequencies", "spectrum", "saliency"):
                data[name] = np.round(getattr(self, name), 5).tolist()
        return data


# Transparent where the score does not react, opaque red where it reacts most: the photo stays visible.
SALIENCY_COLORS = [[0.0, "rgba(255,0,0,0)"], [0.3, "rgba(255,160,0,0.15)"], [1.0, "rgba(255,0,0,0.85)"]]
FUSION_NOTE = ("Each branch's score says what that branch alone can tell (the perceptual one is the read-out of the "
               "ImageNet trunk's statistics, which also reads the spectrum's radial profiles, block-DCT energy and colour coherence). "
               "The final score is that read-out corrected by the fused features of all three, so it is not the "
               "weighted mean of the branch scores (the weights say how much each branch's features counted in the fusion).")


def branch_figure(explanation: Explanation) -> go.Figure:
    scores = [float(explanation.components[b]) for b in BRANCHES]
    weights = [float(explanation.branch_weights[b]) for b in BRANCHES]
    figure = go.Figure(
        [
            go.Bar(name="component score", x=list(BRANCHES), y=scores, text=[f"{v:.3f}" for v in scores],
                   textposition="outside", marker_color="#4C78A8"),
            go.Bar(name="fusion weight", x=list(BRANCHES), y=weights, text=[f"{v:.3f}" for v in weights],
                   textposition="outside", marker_color="#F58518"),
        ]
    )
    figure.update_layout(
        title=f"Branch scores and fusion weights (TIGAS score {explanation.score:.3f})",
        barmode="group", yaxis=dict(range=[0, 1.15], title="value in [0, 1]"),
        legend=dict(orientation="h", y=-0.15), margin=dict(t=60, b=40, l=50, r=20), height=360,
    )
    return figure


def spectrum_figure(explanation: Explanation) -> go.Figure:
    spectrum = np.asarray(explanation.spectrum)
    height, width = spectrum.shape
    figure = go.Figure(
        go.Heatmap(
            z=spectrum, x=(np.arange(width) - width // 2) / width, y=(np.arange(height) - height // 2) / height,
            colorscale="Viridis", colorbar=dict(title="log power"),
            hovertemplate="fx %{x:.3f}<br>fy %{y:.3f}<br>log power %{z:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        title="2-D log-magnitude spectrum (model view, DC at centre)",
        xaxis=dict(title="horizontal frequency (cycles/px)", scaleanchor="y", constrain="domain"),
        yaxis=dict(title="vertical frequency (cycles/px)", constrain="domain"),
        margin=dict(t=60, b=40, l=50, r=20), height=360,
    )
    return figure


def profile_figure(explanation: Explanation) -> go.Figure:
    frequencies = np.asarray(explanation.frequencies)
    figure = go.Figure(
        [
            go.Scatter(x=frequencies, y=np.asarray(explanation.radial_profile), name="this image", mode="lines+markers",
                       marker=dict(size=4), hovertemplate="f %{x:.3f}<br>image %{y:.3f}<extra></extra>"),
            go.Scatter(x=frequencies, y=np.asarray(explanation.reference_profile), name="natural-image reference",
                       mode="lines", line=dict(dash="dash"), hovertemplate="f %{x:.3f}<br>reference %{y:.3f}<extra></extra>"),
        ]
    )
    figure.update_layout(
        title="Radial power profile vs natural-image reference",
        xaxis=dict(title="spatial frequency (fraction of Nyquist)"), yaxis=dict(title="normalised log10 power"),
        hovermode="x unified", legend=dict(orientation="h", y=-0.2), margin=dict(t=60, b=40, l=50, r=20), height=360,
    )
    return figure


def saliency_figure(explanation: Explanation) -> go.Figure:
    image = np.asarray(explanation.image)
    figure = make_subplots(rows=1, cols=2, subplot_titles=("model view", "saliency overlay"), horizontal_spacing=0.04)
    figure.add_trace(go.Image(z=image, hoverinfo="skip"), row=1, col=1)
    figure.add_trace(go.Image(z=image, hoverinfo="skip"), row=1, col=2)
    figure.add_trace(
        go.Heatmap(z=np.asarray(explanation.saliency), zmin=0, zmax=1, colorscale=SALIENCY_COLORS,
                   colorbar=dict(title="saliency"),
                   hovertemplate="x %{x}<br>y %{y}<br>saliency %{z:.3f}<extra></extra>"),
        row=1, col=2,
    )
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    figure.update_layout(title="Where the score is most sensitive", margin=dict(t=70, b=10, l=10, r=10), height=360)
    return figure


def explanation_figures(explanation: Explanation) -> dict[str, go.Figure]:
    """The four views of an explanation, by name: branches, spectrum, profile, saliency."""
    return {
        "branches": branch_figure(explanation),
        "spectrum": spectrum_figure(explanation),
        "profile": profile_figure(explanation),
        "saliency": saliency_figure(explanation),
    }


def write_explanation_html(explanation: Explanation, path: str | os.PathLike, title: str) -> Path:
    """One self-contained report page: score, verdict, components and the four figures.

    plotly.js is written once beside the page (``plotly.min.js``), so a folder of reports opens
    offline without every page carrying its own 4 MB copy. Written atomically.
    """
    path = Path(path)
    components = ", ".join(f"{b} {float(explanation.components[b]):.3f}" for b in BRANCHES)
    width, height = explanation.image_size
    parts = [
        f"<h2>{html.escape(title)}: score {explanation.score:.3f} ({html.escape(explanation.verdict)})</h2>",
        f"<p>Components: {components}. Original size {width}x{height} px.</p>",
        f"<p>{html.escape(FUSION_NOTE)}</p>",
    ]
    for index, figure in enumerate(explanation_figures(explanation).values()):
        parts.append(figure.to_html(full_html=False, include_plotlyjs="directory" if index == 0 else False))
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>TIGAS: {html.escape(title)}</title></head>"
            f"<body style='font-family: sans-serif; max-width: 960px; margin: auto'>{''.join(parts)}</body></html>")
    atomic_write_text(path, page)
    plotly_js = path.parent / "plotly.min.js"
    if not plotly_js.is_file():
        atomic_write_text(plotly_js, get_plotlyjs())
    return path
