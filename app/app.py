"""TIGAS Gradio app: drag-and-drop realism scores with per-branch breakdowns, spectra and saliency.

A thin view over `tigas_core.api.TIGAS`: every number and array shown here comes from
`TIGAS.score_files` / `TIGAS.explain` and `tigas_core.results`; the app only arranges them
into tables and plotly figures. The model is loaded once per process (`main`) and shared by all
sessions through a queue with a concurrency limit. It is the Hugging Face Space entry point
(`app_file: app/app.py`) and what `tigas app` launches.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

if importlib.util.find_spec("tigas_core") is None:
    # `python app/app.py` (how a Space starts it) puts app/ on sys.path, not the folder that holds
    # tigas_core; an installed TIGAS (editable or a wheel) needs nothing.
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from tigas_core.api import TIGAS, Explanation  # noqa: E402
from tigas_core.commands import add_scorer_arguments, load_scorer  # noqa: E402
from tigas_core.explanation import FUSION_NOTE, explanation_figures  # noqa: E402
from tigas_core.hub import WeightsNotFoundError  # noqa: E402
from tigas_core.io import MAX_FILE_BYTES, TIGASInputError, check_file_size, check_threshold, setting_notes  # noqa: E402
from tigas_core.model import BRANCHES  # noqa: E402
from tigas_core.overrides import parse_bool  # noqa: E402
from tigas_core.results import SCORE_COLUMNS, VERDICT_MARGIN, breakdown, empty_row, plain_numbers, verdict  # noqa: E402

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when gradio is imported
import gradio as gr  # noqa: E402

TABLE_COLUMNS = ["file", "score", "verdict", *BRANCHES, "message"]
# The downloads: every column of a result row, under the upload's name, with the threshold it was read at.
DOWNLOAD_COLUMNS = ["file", "score", "verdict", "threshold", *SCORE_COLUMNS[1:], "error", "note"]
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DOWNLOAD_MAX_AGE_S = 3600
MAP_KEYS = ("spectrum", "saliency")  # the large 2-D arrays of Explanation.to_dict(arrays=True)

# Gradio's gallery shrinks its grid to the number of images, so a single thumbnail would fill the
# whole width: keep six columns however many images there are.
THUMBNAIL_CSS = """#tigas-thumbnails .grid-container { --grid-cols: 6 !important; }
#tigas-gen-gallery, #tigas-gen-gallery .gallery-container, #tigas-gen-gallery .grid-wrap {
  height: auto !important; max-height: none !important; min-height: 0 !important; }
@media (max-width: 640px) { #tigas-gen-gallery .grid-container { --grid-cols: 3 !important; } }
"""  # the Generate gallery as tall as its samples (none behind an inner scroll bar), 3 across on a phone (8 overflowed)

# What the page uploads in place of a file over the per-file limit: these bytes, then its size.
OVERSIZED_STUB = b"TIGAS-OVERSIZED "

# The page's script. (1) A file over the per-file limit, picked, dropped or pasted, is never sent:
# Gradio would fail the whole upload, good files too. A few bytes holding its size go in its place,
# under its name, so the app lists it with its own message and scores the rest. (2) Clipboard
# images pasted anywhere join the upload box, the same multi-file path as drag-and-drop and picking.
PAGE_JS = """
() => {
  const LIMIT = __LIMIT__;
  const BOXES = "#tigas-upload, #tigas-api-file";
  const tooBig = (files) => files.some((file) => file.size > LIMIT);
  const keptBack = (files) => {
    const transfer = new DataTransfer();
    files.forEach((file) => transfer.items.add(file.size > LIMIT
      ? new File(["__STUB__" + file.size], file.name, { type: "text/plain" }) : file));
    return transfer;
  };
  const send = (input, files) => {
    input.files = keptBack(files).files;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  };
  document.addEventListener("change", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.closest(BOXES) || !tooBig(Array.from(input.files || []))) return;
    event.stopImmediatePropagation();
    send(input, Array.from(input.files));
  }, true);
  document.addEventListener("drop", (event) => {
    const files = event.dataTransfer ? Array.from(event.dataTransfer.files) : [];
    if (!(event.target instanceof Element) || !event.target.closest(BOXES) || !tooBig(files)) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    const init = { bubbles: true, cancelable: true, dataTransfer: keptBack(files) };
    event.target.dispatchEvent(new DragEvent("drop", init));
  }, true);
  document.addEventListener("paste", (event) => {
    const files = event.clipboardData ? Array.from(event.clipboardData.files) : [];
    const input = document.querySelector("#tigas-upload input[type=file]");
    if (!files.length || !input) return;
    send(input, files);
    event.preventDefault();
  });
}
"""


@dataclass(frozen=True)
class AppLimits:
    """Per-request limits that keep one visitor from monopolising a shared CPU Space."""

    max_files: int = 32
    max_file_mb: float = 10.0
    concurrency: int = 2
    queue_size: int = 64
    batch_size: int = 16  # images per forward pass

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 2**20)

    def page_js(self) -> str:
        """The page's script, holding back files over this per-file limit (see PAGE_JS)."""
        return PAGE_JS.replace("__LIMIT__", str(self.max_file_bytes)).replace("__STUB__", OVERSIZED_STUB.decode())


# --------------------------------------------------------------------------------------------
# Naming and messages: users only ever see base file names, never where the server keeps them.


def _display_names(paths: Sequence[str]) -> list[str]:
    """Base names, made unique ("a.png", "a.png (2)") so that table rows map back to one file."""
    seen: dict[str, int] = {}
    names = []
    for path in paths:
        base = Path(path).name
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base} ({seen[base]})")
    return names


def _scrub(message: str, path: str, name: str) -> str:
    """Replace the server-side path (and its folder) in a core error message by the base name."""
    message = message.replace(str(path), name)
    folder = str(Path(path).parent)
    if folder not in ("", "."):
        message = message.replace(folder + os.sep, "").replace(folder, "")
    return message


def _upload_size(path: str) -> int:
    """A file's size; for the page's stand-in for a file it held back (PAGE_JS), that file's size."""
    file = Path(path)
    if not file.is_file():
        return 0
    size = file.stat().st_size
    if size <= len(OVERSIZED_STUB) + 20:
        head = file.read_bytes()
        if head.startswith(OVERSIZED_STUB) and head[len(OVERSIZED_STUB):].isdigit():
            return int(head[len(OVERSIZED_STUB):])
    return size


def _size_error(path: str, limits: AppLimits) -> str:
    """The per-file size cap, checked before decoding so a huge upload costs no model time."""
    try:
        check_file_size(_upload_size(path), limits.max_file_bytes, Path(path).name)
    except TIGASInputError as exc:
        return exc.reason
    return ""


# --------------------------------------------------------------------------------------------
# Scoring: records are plain JSON-able dicts kept server-side in gr.State.


def _record(name: str, row: dict[str, Any]) -> dict[str, Any]:
    """A result row (`tigas_core.results`) as the app keeps it: under the upload's display name,
    NaN as None (JSON and Gradio take it)."""
    record = plain_numbers(row)
    record.pop("path")
    return {"file": name, **record}


def score_paths(tigas: TIGAS, paths: Sequence[str], limits: AppLimits, threshold: float,
                known: dict[str, dict] | None = None) -> tuple[list[dict], dict[str, str]]:
    """Score uploaded files; returns one record per file (in upload order) and name -> path of the
    files that scored. Files over the size cap or beyond the file cap get a message instead.
    ``known`` (upload path -> record) holds this session's earlier results: files dropped before
    keep their upload path, so adding files to the list scores only the new ones."""
    known = known or {}
    names = _display_names(paths)
    records: dict[str, dict[str, Any]] = {}
    scored: dict[str, str] = {}
    to_score: list[tuple[str, str]] = []
    for index, (name, path) in enumerate(zip(names, paths)):
        refused = (f"not scored: at most {limits.max_files} files per request" if index >= limits.max_files
                   else _size_error(path, limits))
        if refused:
            records[name] = _record(name, empty_row(path, refused))
        elif path in known:
            records[name] = {**known[path], "file": name}
            scored[name] = path
        else:
            to_score.append((name, path))
    if to_score:
        frame = tigas.score_files([path for _, path in to_score], batch_size=limits.batch_size, progress=False)
        for (name, path), row in zip(to_score, frame.to_dict("records")):
            records[name] = _record(name, {**row, "error": _scrub(str(row["error"] or ""), path, name)})
            if not records[name]["error"] and records[name]["score"] is not None:
                scored[name] = path
    return apply_threshold([records[name] for name in names], threshold), scored


def apply_threshold(records: list[dict], threshold: float) -> list[dict]:
    """Verdicts under the user's threshold (scores are not recomputed)."""
    return [
        {**record, "verdict": verdict(record["score"], threshold), "threshold": float(threshold)}
        for record in records
    ]


def results_table(records: list[dict]) -> pd.DataFrame:
    """Scored files by descending score, then the files that failed with their messages."""
    rows = [
        {
            "file": record["file"],
            "score": None if record["score"] is None else round(record["score"], 4),
            "verdict": record["verdict"],
            **{branch: None if record[branch] is None else round(record[branch], 4) for branch in BRANCHES},
            "message": record["error"] or record["note"],
        }
        for record in records
    ]
    frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    if frame.empty:
        return frame
    return frame.sort_values("score", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def ranked_names(table: pd.DataFrame, scored: dict[str, str]) -> list[str]:
    """The scored files in the `results_table` order (best score first): the inspect list and the thumbnails."""
    return [name for name in table["file"] if name in scored] if not table.empty else []


def status_markdown(records: list[dict]) -> str:
    if not records:
        return "Drop images above (or paste one, or pick an example) to score them."
    failed = [record for record in records if record["error"]]
    lines = [f"**{len(records) - len(failed)} of {len(records)} file(s) scored.**"]
    lines += [f"- ⚠️ `{record['file']}`: {record['error']}" for record in failed]
    lines += [f"- ℹ️ `{record['file']}`: {record['note']}" for record in records if record["note"]]
    return "\n".join(lines)


class DownloadWriter:
    """Writes results as CSV and JSON into a folder the app owns, pruning old files as it goes."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="tigas_app_")
        self.root = Path(self._tmp.name)

    def write(self, records: list[dict]) -> tuple[str, str]:
        self._prune()
        folder = self.root / uuid.uuid4().hex
        folder.mkdir()
        frame = pd.DataFrame(records, columns=DOWNLOAD_COLUMNS).sort_values(
            "score", ascending=False, na_position="last", kind="stable"
        )
        csv_path = folder / "tigas_results.csv"
        json_path = folder / "tigas_results.json"
        frame.to_csv(csv_path, index=False)
        json_path.write_text(frame.to_json(orient="records", indent=2) + "\n")
        return str(csv_path), str(json_path)

    def _prune(self) -> None:
        cutoff = time.time() - DOWNLOAD_MAX_AGE_S
        for folder in self.root.iterdir():
            if folder.stat().st_mtime < cutoff:
                for file in folder.iterdir():
                    file.unlink(missing_ok=True)
                folder.rmdir()


def api_error(message: str) -> gr.Error:
    """A bad request's answer: the client gets ``message``; in the page the toast stays until
    closed (it used to vanish after 10 s); no traceback in the server log for a user's bad file."""
    return gr.Error(message, duration=None, print_exception=False)


def weights_label(tigas: TIGAS) -> str:
    """Which weights score here, and for the bundled baseline what it is known to get wrong."""
    source = tigas.weights_source
    views = ", ".join([f"{tigas.img_size} px views", *setting_notes(tigas.views, tigas.precision)])
    if source.startswith("bundled"):
        return (f"the bundled baseline ({views}; a frozen ImageNet trunk and learnt layers trained on a CPU "
                "on 22 generators and nine photo sources). It misjudges many images of generators it never saw "
                "(the README's leave-one-out results) and leaves most generated images 'uncertain' "
                "rather than call a photo generated. Serve better weights with "
                "`tigas app --weights DIR` or `--weights OWNER/NAME@REVISION`")
    kind, _, detail = source.partition(" ")
    if kind == "checkpoint":  # name the weights, not a path on the server
        source = f"checkpoint {Path(detail).name}"
    return f"{source} ({views})"


def explanation_summary(name: str, explanation: Explanation, threshold: float) -> str:
    components = ", ".join(f"{b} {float(explanation.components[b]):.3f}" for b in BRANCHES)
    width, height = explanation.image_size
    return (
        f"### `{name}`: score **{explanation.score:.3f}** ({verdict(explanation.score, threshold)})\n"
        f"Components: {components}. Original size {width}x{height} px; threshold {threshold:.2f}.\n\n{FUSION_NOTE}"
    )


# --------------------------------------------------------------------------------------------
# The app.


class AppHandlers:
    """What the page's events and the /score and /explain endpoints do, over one loaded TIGAS
    shared by all sessions. Plain methods of plain values (session state comes in and goes out as
    arguments), so tests call them without building the Blocks; `build_app` only lays out and wires."""

    def __init__(self, tigas: TIGAS, limits: AppLimits | None = None) -> None:
        self.tigas = tigas
        self.limits = limits or AppLimits()
        self.downloads = DownloadWriter()
        self.default_threshold = float(tigas.threshold)
        self._style_features = None

    # -- the page ------------------------------------------------------------------------------
    def upload(self, files: list[str] | None, threshold: float, records: list[dict], scored: dict[str, str]) -> tuple:
        """Score the files in the upload box (those scored before in this session are kept, not rescored)."""
        by_name = {record["file"]: record for record in records}
        known = {path: by_name[name] for name, path in scored.items() if name in by_name}
        records, scored = score_paths(self.tigas, [str(path) for path in files or []], self.limits, threshold, known)
        return self.render(records, scored)

    def rethreshold(self, records: list[dict], scored: dict[str, str], threshold: float) -> tuple:
        """Verdicts at the slider's new threshold; no image is scored again."""
        return self.render(apply_threshold(records, threshold), scored)

    def render(self, records: list[dict], scored: dict[str, str]) -> tuple:
        """The outputs of a scoring event: state, table, status, inspect list, downloads, thumbnails."""
        table = results_table(records)
        csv_path, json_path = self.downloads.write(records) if records else (None, None)
        ranked = ranked_names(table, scored)
        by_name = {record["file"]: record for record in records}
        thumbnails = [(scored[name], f"{by_name[name]['score']:.3f} · {by_name[name]['verdict']} · {name}") for name in ranked]
        return (
            records, scored, table, status_markdown(records),
            gr.update(choices=ranked, value=ranked[0] if ranked else None),
            gr.update(value=csv_path, interactive=csv_path is not None),
            gr.update(value=json_path, interactive=json_path is not None),
            gr.update(value=thumbnails, visible=bool(thumbnails)),
        )

    @staticmethod
    def select_row(table: pd.DataFrame, event: gr.SelectData):
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        return gr.update(value=str(table.iloc[row]["file"]))

    @staticmethod
    def select_thumbnail(table: pd.DataFrame, scored: dict[str, str], event: gr.SelectData):
        return gr.update(value=ranked_names(table, scored)[event.index])

    def inspect(self, name: str | None, scored: dict[str, str], threshold: float) -> tuple:
        """The breakdown of one scored file: summary text and the four figures."""
        if not name or name not in scored:
            return "Select a scored file to see its breakdown.", None, None, None, None
        try:
            explanation = self.tigas.explain(scored[name])
        except TIGASInputError as exc:  # e.g. the upload expired from Gradio's cache
            return f"`{name}` could not be explained: {exc.reason}", None, None, None, None
        figures = explanation_figures(explanation)
        return (explanation_summary(name, explanation, threshold), figures["branches"], figures["spectrum"],
                figures["profile"], figures["saliency"])

    # -- the Generate and Style transfer tabs --------------------------------------------------
    def generate(self, model: str, n: float, seed: float, truncation: float, prompt: str | None = None) -> tuple[list, str]:
        """Samples of bundled zoo ``model``, each captioned with its TIGAS score, best first, and a
        one-line summary. ``prompt`` steers a text-conditioned model (text2image)."""
        from tigas_core.generators.showcase import sample_grid_with_scores

        prompt = (prompt or "").strip() or None
        try:
            samples = sample_grid_with_scores(model, int(n), int(seed), float(truncation), scorer=self.tigas, prompt=prompt)
        except ValueError as exc:
            raise api_error(str(exc)) from None
        threshold = self.default_threshold
        gallery = [(sample.image, f"{sample.score:.3f}") for sample in samples]  # a verdict would not fit under a tile
        scores = [sample.score for sample in samples]
        asked = f' for "{prompt}"' if prompt else ""
        summary = (f"{len(samples)} samples of **{model}**{asked} (seed {int(seed)}, truncation {float(truncation):g}), best score first: "
                   f"mean TIGAS {sum(scores) / len(scores):.3f}, best {max(scores):.3f}; "
                   f"{sum(score >= threshold for score in scores)} at or above the threshold {threshold:.2f}.")
        return gallery, summary

    def style_transfer(self, content: str | None, style: str | None, steps: float, style_weight: float,
                       size: float) -> tuple[Any, str]:
        """``content`` painted in ``style`` (Gatys et al. on ImageNet Lite0 features) and the result's TIGAS score."""
        from tigas_core.io import to_uint8_image
        from tigas_core.style_transfer import transfer_and_score

        if content is None or style is None:
            raise api_error("give a content image and a style image")
        for path in (content, style):
            too_big = _size_error(str(path), self.limits)
            if too_big:
                raise api_error(f"{Path(path).name}: {too_big}")
        try:
            result = transfer_and_score(str(content), str(style), int(size), int(steps), float(style_weight), scorer=self.tigas,
                                        features=self.style_features())
        except TIGASInputError as exc:
            raise api_error(f"{Path(exc.source).name}: {exc.reason}") from None
        summary = (f"TIGAS score of the result: **{result.score:.3f}** ({verdict(result.score, self.default_threshold)}); "
                   f"style loss {result.style_loss[0]:.3g} → {result.style_loss[-1]:.3g} over {int(steps)} steps, "
                   f"content loss {result.content_loss[-1]:.3g}.")
        return to_uint8_image(result.image), summary

    def style_features(self):
        """The ImageNet Lite0 feature network of style transfer, built once per process."""
        if self._style_features is None:
            from tigas_core.metrics.perceptual import LiteFeatures
            from tigas_core.style_transfer import TAPS

            self._style_features = LiteFeatures(taps=TAPS)
        return self._style_features

    # -- the JSON API --------------------------------------------------------------------------
    def request_threshold(self, threshold: Any) -> float:
        """The API's threshold argument: the default when left out, else a number in [0, 1]."""
        try:
            return self.default_threshold if threshold is None else check_threshold(threshold)
        except TIGASInputError as exc:
            raise api_error(str(exc)) from None

    def api_score(self, file: str | None, threshold: float | None = None) -> dict[str, Any]:
        """Score one image: JSON with score, components, branch_weights, verdict and a note
        (non-empty when the score needs one: an animation is scored on its first frame)."""
        threshold = self.request_threshold(threshold)
        if file is None:
            raise api_error("no file given")
        record = score_paths(self.tigas, [str(file)], self.limits, threshold)[0][0]
        if record["error"]:
            raise api_error(f"{record['file']}: {record['error']}")
        return {"file": record["file"], "score": record["score"], "verdict": record["verdict"], "threshold": threshold,
                **breakdown(record), "note": record["note"]}

    def api_explain(self, file: str | None, threshold: float | None = None, maps: bool = False) -> dict[str, Any]:
        """Explain one image: score, components, branch weights, verdict, the radial power profile
        with the natural-image reference; ``maps=True`` adds the 2-D log spectrum and saliency map
        (nested lists, ~3 MB of JSON at 256 px, so they are opt-in)."""
        threshold = self.request_threshold(threshold)
        if file is None:
            raise api_error("no file given")
        path = str(file)
        name = Path(path).name
        too_big = _size_error(path, self.limits)
        if too_big:
            raise api_error(f"{name}: {too_big}")
        try:
            explanation = self.tigas.explain(path)
        except TIGASInputError as exc:
            raise api_error(f"{name}: {exc.reason}") from exc
        payload = explanation.to_dict(arrays=True)
        if not maps:
            for key in MAP_KEYS:
                payload.pop(key)
        payload.update(file=name, threshold=threshold, verdict=verdict(explanation.score, threshold))
        return payload


@dataclass
class Page:
    """The components `build_app` wires to `AppHandlers`."""

    records: gr.State
    scored: gr.State
    upload: gr.File
    threshold: gr.Slider
    status: gr.Markdown
    table: gr.Dataframe
    csv_button: gr.DownloadButton
    json_button: gr.DownloadButton
    thumbnails: gr.Gallery
    chosen: gr.Dropdown
    inspect_outputs: list
    api_file: gr.File
    api_threshold: gr.Number
    api_maps: gr.Checkbox
    score_button: gr.Button
    explain_button: gr.Button
    api_output: gr.JSON
    generate_inputs: list
    generate_button: gr.Button
    generate_outputs: list
    transfer_inputs: list
    transfer_button: gr.Button
    transfer_outputs: list


def build_app(tigas: TIGAS, limits: AppLimits | None = None, examples: Sequence[str] | None = None) -> gr.Blocks:
    """Gradio Blocks over one loaded TIGAS (shared by all sessions): `AppHandlers` wired to the page.

    Named API endpoints: ``/score`` and ``/explain`` take one image file (and an optional
    threshold) and return JSON with the score, components, branch weights and verdict;
    ``/generate`` (bundled zoo model, n, seed, truncation, prompt) returns scored samples and
    ``/style_transfer`` (content, style, steps, style weight, size) the result and its score.
    """
    handlers = AppHandlers(tigas, limits)
    with gr.Blocks(title="TIGAS realism score", delete_cache=(1800, 3600)) as demo:
        page = _lay_out(handlers, examples)
        _wire(page, handlers)
    demo.queue(default_concurrency_limit=handlers.limits.concurrency, max_size=handlers.limits.queue_size)
    return demo


def _lay_out(handlers: AppHandlers, examples: Sequence[str] | None) -> Page:
    """The page: the intro, then three tabs. Score (first): upload and results, the inspected
    file, the JSON API; Generate; Style transfer."""
    limits = handlers.limits
    gr.Markdown(
        "# TIGAS: how real does this image look?\n"
        "A no-reference realism score in [0, 1] (1 = looks like a real photo, 0 = looks generated), "
        "combining perceptual, spectral and statistical branches. Drop images, paste one (Ctrl+V), "
        f"or pick files; up to {limits.max_files} files per request, {limits.max_file_mb:g} MiB per file.\n\n"
        f"**Weights:** {weights_label(handlers.tigas)}."
    )
    with gr.Tabs():
        with gr.Tab("Score", id="score"):
            score_parts = _lay_out_scoring(handlers, examples)
        with gr.Tab("Generate", id="generate"):
            generate_parts = _lay_out_generate()
        with gr.Tab("Style transfer", id="style-transfer"):
            transfer_parts = _lay_out_style_transfer()
    return Page(*score_parts, *generate_parts, *transfer_parts)


def _lay_out_scoring(handlers: AppHandlers, examples: Sequence[str] | None) -> tuple:
    """The Score tab: upload and results, the inspected file, the JSON API."""
    default_threshold = handlers.default_threshold
    records, scored = gr.State([]), gr.State({})
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label="Images", file_count="multiple", elem_id="tigas-upload", height=180)
            threshold = gr.Slider(0.0, 1.0, value=default_threshold, step=0.01, label="Decision threshold",
                                  info=f"within ±{VERDICT_MARGIN:g} of the threshold a score reads 'uncertain'",
                                  elem_id="tigas-threshold")
            status = gr.Markdown(status_markdown([]), elem_id="tigas-status")
            if examples:
                gr.Examples(examples=[[[path]] for path in examples], inputs=[upload],
                            example_labels=[Path(path).name for path in examples],
                            label="Examples (real photos from skimage.data and images from the project's own generators)",
                            elem_id="tigas-examples")
        with gr.Column(scale=2):
            table = gr.Dataframe(value=results_table([]), label="Results (sorted by score; click a row to inspect)",
                                 interactive=False, elem_id="tigas-table", wrap=True,
                                 column_widths=["128px", "70px", "120px", "105px", "90px", "105px", "170px"])
            with gr.Row():
                csv_button = gr.DownloadButton("Download CSV", interactive=False, elem_id="tigas-csv")
                json_button = gr.DownloadButton("Download JSON", interactive=False, elem_id="tigas-json")
            thumbnails = gr.Gallery(label="Scored images (best score first; click one to inspect)", columns=6,
                                    height=240, object_fit="contain", allow_preview=False, visible=False,
                                    elem_id="tigas-thumbnails")
    chosen = gr.Dropdown(choices=[], label="Inspect file", elem_id="tigas-inspect")
    inspect_outputs = _lay_out_inspection()
    return (records, scored, upload, threshold, status, table, csv_button, json_button, thumbnails, chosen,
            inspect_outputs, *_lay_out_api(default_threshold))


def _lay_out_generate() -> tuple:
    """The Generate tab: a bundled zoo model, how many samples, seed, truncation, a prompt for
    text2image -> the samples with their scores, best first."""
    from tigas_core.demo import bundled_generators

    names = [stem.name for stem in bundled_generators()]
    gr.Markdown("Samples of the project's own CIFAR-10 generators (32 px), each with its TIGAS score, best first.")
    with gr.Row():
        model = gr.Dropdown(names, value=names[0] if names else None, label="Generator", elem_id="tigas-gen-model")
        n = gr.Slider(1, 64, value=16, step=1, label="Samples")
        seed = gr.Number(value=0, precision=0, label="Seed")
        truncation = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Truncation (psi)",
                               info="below 1: less variety, higher fidelity (GANs, VAE)")
    prompt = gr.Textbox(label="Prompt (text2image only)", placeholder="a small red car", elem_id="tigas-gen-prompt",
                        info="class names, colours (red, blue, brown, ...) and sizes (small, large)")
    button = gr.Button("Generate", variant="primary", elem_id="tigas-gen-button")
    summary = gr.Markdown(elem_id="tigas-gen-summary")
    gallery = gr.Gallery(label="Samples (caption: TIGAS score)", columns=8, object_fit="contain", elem_id="tigas-gen-gallery", format="png")
    return [model, n, seed, truncation, prompt], button, [gallery, summary]


def _lay_out_style_transfer() -> tuple:
    """The Style transfer tab: two uploads and the optimisation's settings -> the result and its score."""
    gr.Markdown("Paints the content image in the style of the other (Gatys et al., on ImageNet EfficientNet-Lite0 features), "
                "then scores the result. About a minute on a CPU at the defaults.")
    with gr.Row():
        content = gr.Image(type="filepath", label="Content (layout kept)", elem_id="tigas-st-content", height=260)
        style = gr.Image(type="filepath", label="Style (colours and textures taken)", elem_id="tigas-st-style", height=260)
        result = gr.Image(label="Result", elem_id="tigas-st-result", height=260, interactive=False, format="png")
    with gr.Row():
        steps = gr.Slider(10, 400, value=100, step=10, label="Steps")
        style_weight = gr.Slider(0.0, 100.0, value=10.0, step=1.0, label="Style weight (content weighs 1)")
        size = gr.Slider(64, 384, value=192, step=32, label="Size (shorter side, px)")
    button = gr.Button("Transfer style", variant="primary", elem_id="tigas-st-button")
    summary = gr.Markdown(elem_id="tigas-st-summary")
    return [content, style, steps, style_weight, size], button, [result, summary]


def _lay_out_inspection() -> list:
    """The inspected file's summary and its four figures (the outputs of `AppHandlers.inspect`)."""
    summary = gr.Markdown("Select a scored file to see its breakdown.", elem_id="tigas-summary")
    with gr.Row():
        branch_plot = gr.Plot(label="Branches", elem_id="tigas-branches")
        saliency_plot = gr.Plot(label="Saliency", elem_id="tigas-saliency")
    with gr.Row():
        spectrum_plot = gr.Plot(label="Spectrum", elem_id="tigas-spectrum")
        profile_plot = gr.Plot(label="Radial profile", elem_id="tigas-profile")
    return [summary, branch_plot, spectrum_plot, profile_plot, saliency_plot]


def _lay_out_api(default_threshold: float) -> tuple:
    """The JSON API's panel: file, threshold, maps, the two buttons and the response."""
    with gr.Accordion("JSON API (one file): the /score and /explain endpoints", open=False, elem_id="tigas-api"):
        gr.Markdown("Same as `gradio_client`: `Client(url).predict(handle_file(path), api_name=\"/score\")`.")
        with gr.Row():
            api_file = gr.File(label="Image", file_count="single", elem_id="tigas-api-file")
            # No minimum/maximum: Gradio would refuse an out-of-range value with a traceback in the
            # server log; request_threshold refuses it with one clean message.
            api_threshold = gr.Number(value=default_threshold, label="threshold (0 to 1)")
            api_maps = gr.Checkbox(value=False, label="maps (explain: add 2-D spectrum and saliency)")
        with gr.Row():
            score_button = gr.Button("Score (JSON)", elem_id="tigas-api-score")
            explain_button = gr.Button("Explain (JSON)")
        api_output = gr.JSON(label="Response", elem_id="tigas-api-output")
    return api_file, api_threshold, api_maps, score_button, explain_button, api_output


def _wire(page: Page, handlers: AppHandlers) -> None:
    """Events to handlers. Every event that runs the model shares one concurrency group, so the
    limit is per process; programmatic dropdown updates do not fire .input, so each path explains once."""
    result_outputs = [page.records, page.scored, page.table, page.status, page.chosen, page.csv_button, page.json_button,
                      page.thumbnails]
    uses_model = dict(concurrency_id="tigas", api_visibility="private")
    inspect_args = dict(fn=handlers.inspect, inputs=[page.chosen, page.scored, page.threshold], outputs=page.inspect_outputs,
                        **uses_model)
    page.upload.change(handlers.upload, [page.upload, page.threshold, page.records, page.scored], result_outputs,
                       **uses_model).then(**inspect_args)
    page.threshold.change(handlers.rethreshold, [page.records, page.scored, page.threshold], result_outputs,
                          api_visibility="private", trigger_mode="always_last").then(**inspect_args)
    page.table.select(handlers.select_row, [page.table], [page.chosen], api_visibility="private").then(**inspect_args)
    page.thumbnails.select(handlers.select_thumbnail, [page.table, page.scored], [page.chosen],
                           api_visibility="private").then(**inspect_args)
    page.chosen.input(**inspect_args)
    page.score_button.click(handlers.api_score, [page.api_file, page.api_threshold], page.api_output, api_name="score",
                            concurrency_id="tigas")
    page.explain_button.click(handlers.api_explain, [page.api_file, page.api_threshold, page.api_maps], page.api_output,
                              api_name="explain", concurrency_id="tigas")
    page.generate_button.click(handlers.generate, page.generate_inputs, page.generate_outputs, api_name="generate",
                               concurrency_id="tigas")
    page.transfer_button.click(handlers.style_transfer, page.transfer_inputs, page.transfer_outputs, api_name="style_transfer",
                               concurrency_id="tigas")


# --------------------------------------------------------------------------------------------
# Entry point (Space and `tigas app`).


def _file_mb(text: str) -> float:
    """--max-file-mb: above 0 and at most the library's own cap on any file, so the limit the page
    states is the one that holds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of MiB, got {text!r}") from None
    if not 0 < value <= MAX_FILE_BYTES / 2**20:
        raise argparse.ArgumentTypeError(f"expected more than 0 and at most {MAX_FILE_BYTES / 2**20:g} MiB, got {value:g}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `python app/app.py` and `tigas app`."""
    add_scorer_arguments(parser)  # --threads default: CPU cores / concurrency, so parallel requests do not oversubscribe
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", DEFAULT_HOST),
                        help=f"interface to listen on (default {DEFAULT_HOST}, or $GRADIO_SERVER_NAME as on a Space)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", DEFAULT_PORT)),
                        help=f"port (default {DEFAULT_PORT}, or $GRADIO_SERVER_PORT)")
    parser.add_argument("--share", type=parse_bool, default=False, metavar="{true,false}", help="create a public gradio.live link")
    parser.add_argument("--max-files", type=int, default=AppLimits.max_files, help="files scored per request")
    parser.add_argument("--max-file-mb", type=_file_mb, default=AppLimits.max_file_mb,
                        help=f"size cap per file in MiB (at most {MAX_FILE_BYTES / 2**20:g}, the cap on any file TIGAS reads)")
    parser.add_argument("--concurrency", type=int, default=AppLimits.concurrency, help="requests running at once")
    parser.add_argument("--no-examples", action="store_true", help="skip building the example images")


def example_files() -> list[str]:
    """Example images the project makes itself (skimage.data photo crops and generator-zoo samples),
    written into the temp folder at start-up."""
    from tigas_core.demo import example_images

    return [str(path) for path in example_images(Path(tempfile.gettempdir()) / "tigas_app_examples")]


def launch(args: argparse.Namespace) -> int:
    """Load the model once, build the app and serve it until interrupted."""
    args.threads = args.threads or max(1, (os.cpu_count() or 1) // max(1, args.concurrency))
    try:
        tigas = load_scorer(args)
    except WeightsNotFoundError as exc:
        print(f"tigas app: {exc}", file=sys.stderr)
        return 2
    limits = AppLimits(max_files=args.max_files, max_file_mb=args.max_file_mb, concurrency=args.concurrency, batch_size=args.batch_size)
    examples = [] if args.no_examples else example_files()
    demo = build_app(tigas, limits, examples)
    print(f"TIGAS app: weights {tigas.weights_source}; serving on http://{args.host}:{args.port}", flush=True)
    # No Gradio max_file_size: past it Gradio fails a whole drop in the page and gradio_client refuses
    # a file before sending it, in Gradio's words and units. The page holds back oversized files
    # (PAGE_JS) and the app measures every file it gets, so each one gets the app's own message.
    demo.launch(
        server_name=args.host, server_port=args.port, share=args.share,
        js=limits.page_js(), css=THUMBNAIL_CSS, footer_links=["api", "gradio"], allowed_paths=[str(Path(p).parent) for p in examples[:1]],
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description="Launch the TIGAS Gradio app.")
    add_arguments(parser)
    return launch(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
