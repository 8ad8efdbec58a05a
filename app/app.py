"""TIGAS Gradio app: drag-and-drop realism scores with per-branch breakdowns, spectra and saliency.

A thin view over `tigas_core.api.TIGAS`: every number and array shown here comes from
`TIGAS.score_files` / `TIGAS.explain` and `tigas_core.api.verdict`; the app only arranges them
into tables and plotly figures. The model is loaded once per process (`main`) and shared by all
sessions through a queue with a concurrency limit. It is the Hugging Face Space entry point
(`app_file: app/app.py`) and what `tigas app` launches.
"""
from __future__ import annotations

import argparse
import importlib.util
import inspect
import math
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

if importlib.util.find_spec("tigas_core") is None:
    # `python app/app.py` (how a Space starts it) puts app/ on sys.path, not the folder that holds
    # tigas_core; an installed TIGAS (editable or a wheel) needs nothing.
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from tigas_core.api import TIGAS, Explanation, verdict  # noqa: E402
from tigas_core.hub import DEFAULT_REPO_ID, DEFAULT_REVISION, WeightsNotFoundError  # noqa: E402
from tigas_core.commands import add_views_argument  # noqa: E402
from tigas_core.io import MAX_FILE_BYTES, VIEW_DESCRIPTIONS, TIGASInputError, check_file_size, check_threshold  # noqa: E402
from tigas_core.model import BRANCHES  # noqa: E402
from tigas_core.plots import FUSION_NOTE, explanation_figures  # noqa: E402

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when gradio is imported
import gradio as gr  # noqa: E402

TABLE_COLUMNS = ["file", "score", "verdict", *BRANCHES, "message"]
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DOWNLOAD_MAX_AGE_S = 3600
MAP_KEYS = ("spectrum", "saliency")  # the large 2-D arrays of Explanation.to_dict(arrays=True)
VERDICT_MARGIN = inspect.signature(verdict).parameters["margin"].default

# Gradio's gallery shrinks its grid to the number of images, so a single thumbnail would fill the
# whole width: keep six columns however many images there are.
THUMBNAIL_CSS = "#tigas-thumbnails .grid-container { --grid-cols: 6 !important; }"

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


def _empty_record(name: str, message: str) -> dict[str, Any]:
    return {
        "file": name, "score": None, "verdict": "", "error": message, "note": "",
        **{branch: None for branch in BRANCHES}, **{f"w_{branch}": None for branch in BRANCHES},
    }


def _float_or_none(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


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
        if index >= limits.max_files:
            records[name] = _empty_record(name, f"not scored: at most {limits.max_files} files per request")
            continue
        too_big = _size_error(path, limits)
        if too_big:
            records[name] = _empty_record(name, too_big)
            continue
        if path in known:
            records[name] = {**known[path], "file": name}
            scored[name] = path
            continue
        to_score.append((name, path))
    if to_score:
        frame = tigas.score_files([path for _, path in to_score], progress=False)
        for (name, path), row in zip(to_score, frame.to_dict("records")):
            error = _scrub(str(row["error"] or ""), path, name)
            record = {
                "file": name,
                "score": _float_or_none(row["score"]),
                "verdict": "",
                "error": error,
                "note": row["note"],
                **{branch: _float_or_none(row[branch]) for branch in BRANCHES},
                **{f"w_{branch}": _float_or_none(row[f"w_{branch}"]) for branch in BRANCHES},
            }
            records[name] = record
            if not error and record["score"] is not None:
                scored[name] = path
    ordered = [records[name] for name in names]
    return apply_threshold(ordered, threshold), scored


def apply_threshold(records: list[dict], threshold: float) -> list[dict]:
    """Verdicts under the user's threshold (scores are not recomputed)."""
    return [
        {**record, "verdict": verdict(record["score"], threshold) if record["score"] is not None else "",
         "threshold": float(threshold)}
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
        columns = ["file", "score", "verdict", "threshold", *BRANCHES, *(f"w_{b}" for b in BRANCHES), "error", "note"]
        frame = pd.DataFrame(records, columns=columns).sort_values(
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
    views = f"{tigas.img_size} px views" + ("" if tigas.views == "single" else f", {VIEW_DESCRIPTIONS[tigas.views]}")
    if source.startswith("bundled"):
        return (f"the bundled baseline ({views}, trained on a CPU mostly on 32 px CIFAR-10 photos). "
                "It misjudges many sharp, high-resolution photos: the skimage.data examples below read "
                "'likely generated', and rotating a photo can swing its score. Serve better weights with "
                "`tigas app --weights DIR` or `--repo-id`")
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


def build_app(tigas: TIGAS, limits: AppLimits | None = None, examples: Sequence[str] | None = None) -> gr.Blocks:
    """Gradio Blocks over one loaded TIGAS (shared by all sessions).

    Named API endpoints: ``/score`` and ``/explain`` take one image file (and an optional
    threshold) and return JSON with the score, components, branch weights and verdict.
    """
    limits = limits or AppLimits()
    downloads = DownloadWriter()
    default_threshold = float(tigas.threshold)

    def on_upload(files: list[str] | None, threshold: float, records: list[dict], scored: dict[str, str]):
        by_name = {record["file"]: record for record in records}
        known = {path: by_name[name] for name, path in scored.items() if name in by_name}
        records, scored = score_paths(tigas, [str(path) for path in files or []], limits, threshold, known)
        return _render_results(records, scored, threshold)

    def on_threshold(records: list[dict], scored: dict[str, str], threshold: float):
        return _render_results(apply_threshold(records, threshold), scored, threshold)

    def _render_results(records: list[dict], scored: dict[str, str], threshold: float):
        table = results_table(records)
        csv_path, json_path = downloads.write(records) if records else (None, None)
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

    def on_select_row(table: pd.DataFrame, event: gr.SelectData):
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        return gr.update(value=str(table.iloc[row]["file"]))

    def on_select_thumbnail(table: pd.DataFrame, scored: dict[str, str], event: gr.SelectData):
        return gr.update(value=ranked_names(table, scored)[event.index])

    def on_inspect(name: str | None, scored: dict[str, str], threshold: float):
        if not name or name not in scored:
            return "Select a scored file to see its breakdown.", None, None, None, None
        try:
            explanation = tigas.explain(scored[name])
        except TIGASInputError as exc:  # e.g. the upload expired from Gradio's cache
            return f"`{name}` could not be explained: {exc.reason}", None, None, None, None
        figures = explanation_figures(explanation)
        return (explanation_summary(name, explanation, threshold), figures["branches"], figures["spectrum"],
                figures["profile"], figures["saliency"])

    def request_threshold(threshold: Any) -> float:
        """The API's threshold argument: the default when left out, else a number in [0, 1]."""
        try:
            return default_threshold if threshold is None else check_threshold(threshold)
        except TIGASInputError as exc:
            raise api_error(str(exc)) from None

    def api_score(file: str | None, threshold: float | None = None) -> dict[str, Any]:
        """Score one image: JSON with score, components, branch_weights, verdict and a note
        (non-empty when the score needs one: an animation is scored on its first frame)."""
        threshold = request_threshold(threshold)
        if file is None:
            raise api_error("no file given")
        records, _ = score_paths(tigas, [str(file)], limits, threshold)
        record = records[0]
        if record["error"]:
            raise api_error(f"{record['file']}: {record['error']}")
        return {
            "file": record["file"], "score": record["score"], "verdict": record["verdict"], "threshold": threshold,
            "components": {b: record[b] for b in BRANCHES},
            "branch_weights": {b: record[f"w_{b}"] for b in BRANCHES},
            "note": record["note"],
        }

    def api_explain(file: str | None, threshold: float | None = None, maps: bool = False) -> dict[str, Any]:
        """Explain one image: score, components, branch weights, verdict, the radial power profile
        with the natural-image reference; ``maps=True`` adds the 2-D log spectrum and saliency map
        (nested lists, ~3 MB of JSON at 256 px, so they are opt-in)."""
        threshold = request_threshold(threshold)
        if file is None:
            raise api_error("no file given")
        path = str(file)
        name = Path(path).name
        too_big = _size_error(path, limits)
        if too_big:
            raise api_error(f"{name}: {too_big}")
        try:
            explanation = tigas.explain(path)
        except TIGASInputError as exc:
            raise api_error(f"{name}: {exc.reason}") from exc
        payload = explanation.to_dict(arrays=True)
        if not maps:
            for key in MAP_KEYS:
                payload.pop(key)
        payload.update(file=name, threshold=threshold, verdict=verdict(explanation.score, threshold))
        return payload

    with gr.Blocks(title="TIGAS realism score", delete_cache=(1800, 3600)) as demo:
        records_state = gr.State([])
        scored_state = gr.State({})
        gr.Markdown(
            "# TIGAS: how real does this image look?\n"
            "A no-reference realism score in [0, 1] (1 = looks like a real photo, 0 = looks generated), "
            "combining perceptual, spectral and statistical branches. Drop images, paste one (Ctrl+V), "
            f"or pick files; up to {limits.max_files} files per request, {limits.max_file_mb:g} MiB per file.\n\n"
            f"**Weights:** {weights_label(tigas)}."
        )
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
                                     column_widths=["170px", "80px", "120px", "110px", "95px", "115px", "170px"])
                with gr.Row():
                    csv_button = gr.DownloadButton("Download CSV", interactive=False, elem_id="tigas-csv")
                    json_button = gr.DownloadButton("Download JSON", interactive=False, elem_id="tigas-json")
                thumbnails = gr.Gallery(label="Scored images (best score first; click one to inspect)", columns=6,
                                        height=240, object_fit="contain", allow_preview=False, visible=False,
                                        elem_id="tigas-thumbnails")
        chosen = gr.Dropdown(choices=[], label="Inspect file", elem_id="tigas-inspect")
        summary = gr.Markdown("Select a scored file to see its breakdown.", elem_id="tigas-summary")
        with gr.Row():
            branch_plot = gr.Plot(label="Branches", elem_id="tigas-branches")
            saliency_plot = gr.Plot(label="Saliency", elem_id="tigas-saliency")
        with gr.Row():
            spectrum_plot = gr.Plot(label="Spectrum", elem_id="tigas-spectrum")
            profile_plot = gr.Plot(label="Radial profile", elem_id="tigas-profile")
        with gr.Accordion("JSON API (one file): the /score and /explain endpoints", open=False, elem_id="tigas-api"):
            gr.Markdown(
                "Same as `gradio_client`: `Client(url).predict(handle_file(path), api_name=\"/score\")`."
            )
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

        result_outputs = [records_state, scored_state, table, status, chosen, csv_button, json_button, thumbnails]
        inspect_outputs = [summary, branch_plot, spectrum_plot, profile_plot, saliency_plot]
        # Every event that runs the model shares one concurrency group, so the limit is per process.
        uses_model = dict(concurrency_id="tigas", api_visibility="private")
        inspect_args = dict(fn=on_inspect, inputs=[chosen, scored_state, threshold], outputs=inspect_outputs, **uses_model)
        # Programmatic dropdown updates do not fire .input, so each path explains exactly once.
        upload.change(on_upload, [upload, threshold, records_state, scored_state], result_outputs, **uses_model).then(**inspect_args)
        threshold.change(on_threshold, [records_state, scored_state, threshold], result_outputs,
                         api_visibility="private", trigger_mode="always_last").then(**inspect_args)
        table.select(on_select_row, [table], [chosen], api_visibility="private").then(**inspect_args)
        thumbnails.select(on_select_thumbnail, [table, scored_state], [chosen], api_visibility="private").then(**inspect_args)
        chosen.input(**inspect_args)
        score_button.click(api_score, [api_file, api_threshold], api_output, api_name="score", concurrency_id="tigas")
        explain_button.click(api_explain, [api_file, api_threshold, api_maps], api_output, api_name="explain",
                             concurrency_id="tigas")
    demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.queue_size)
    return demo


# --------------------------------------------------------------------------------------------
# Entry point (Space and `tigas app`).


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


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
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", metavar="DIR", help="weights folder (config.json + model.safetensors); default: bundled weights")
    source.add_argument("--repo-id", metavar="ID", help="Hugging Face Hub repo to download weights from")
    parser.add_argument("--revision", default=None,
                        help=f"Hub revision (with --repo-id; default {DEFAULT_REVISION} for {DEFAULT_REPO_ID}, else main)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_views_argument(parser)
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", DEFAULT_HOST),
                        help=f"interface to listen on (default {DEFAULT_HOST}, or $GRADIO_SERVER_NAME as on a Space)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", DEFAULT_PORT)),
                        help=f"port (default {DEFAULT_PORT}, or $GRADIO_SERVER_PORT)")
    parser.add_argument("--share", type=_bool, default=False, metavar="{true,false}", help="create a public gradio.live link")
    parser.add_argument("--max-files", type=int, default=AppLimits.max_files, help="files scored per request")
    parser.add_argument("--max-file-mb", type=_file_mb, default=AppLimits.max_file_mb,
                        help=f"size cap per file in MiB (at most {MAX_FILE_BYTES / 2**20:g}, the cap on any file TIGAS reads)")
    parser.add_argument("--concurrency", type=int, default=AppLimits.concurrency, help="requests running at once")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: CPU cores / concurrency, so parallel requests do not oversubscribe)")
    parser.add_argument("--no-examples", action="store_true", help="skip building the example images")


def load_tigas(args: argparse.Namespace) -> TIGAS:
    """The one model of this process."""
    common = {"device": args.device, "views": args.views}
    if args.weights:
        return TIGAS(checkpoint_path=args.weights, **common)
    if args.repo_id:
        # No --revision: the pinned tag for the default repo, main for another (hub.revision_for).
        return TIGAS(auto_download=True, repo_id=args.repo_id, revision=args.revision, **common)
    return TIGAS(**common)


def example_files() -> list[str]:
    """Example images the project makes itself (skimage.data photo crops and generator-zoo samples),
    written into the temp folder at start-up."""
    from tigas_core.demo import example_images

    return [str(path) for path in example_images(Path(tempfile.gettempdir()) / "tigas_app_examples")]


def launch(args: argparse.Namespace) -> int:
    """Load the model once, build the app and serve it until interrupted."""
    import torch

    torch.set_num_threads(args.threads or max(1, (os.cpu_count() or 1) // max(1, args.concurrency)))
    try:
        tigas = load_tigas(args)
    except WeightsNotFoundError as exc:
        print(f"tigas app: {exc}", file=sys.stderr)
        return 2
    limits = AppLimits(max_files=args.max_files, max_file_mb=args.max_file_mb, concurrency=args.concurrency)
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
