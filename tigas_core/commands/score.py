"""`tigas score`: score files and folders, print a line per image and a summary, save CSV/JSON/plot."""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
from pathlib import Path

import pandas as pd

from tigas_core.commands import add_views_argument, plot_path, positive_int, prepare_output, probability
from tigas_core.config import atomic_write_bytes, atomic_write_text
from tigas_core.io import IMAGE_EXTENSIONS, file_stamp, is_folder, is_url, list_folder


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """What to score and with which weights: shared by `tigas score` and `tigas explain`."""
    parser.add_argument("paths", nargs="+", help="image files, folders and/or http(s) URLs")
    parser.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--weights", help="weights folder, .safetensors or Hub repo id (default: bundled)")
    parser.add_argument("--auto-download", action="store_true", help="prefer the pinned Hub weights (HF cache)")
    parser.add_argument("--threshold", type=probability, help="decision threshold (default: the calibrated one)")
    add_views_argument(parser)


def load_scorer(args: argparse.Namespace, device: str | None = None):
    """The TIGAS these arguments ask for (on ``device`` if given, else --device), and the threshold to judge with."""
    from tigas_core.api import TIGAS

    tigas = TIGAS(checkpoint_path=args.weights, auto_download=args.auto_download, device=device or args.device,
                  views=args.views)
    return tigas, tigas.threshold if args.threshold is None else args.threshold


def scorer_label(tigas) -> str:
    """The weights and, unless single, the views a run scored with (the last line of its output)."""
    views = "" if tigas.views == "single" else f"; views: {tigas.views}"
    return f"[weights: {tigas.weights_source}{views}]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=16)
    parser.add_argument("--csv", type=Path, help="write all rows to this CSV")
    parser.add_argument("--json", type=Path, help="write all rows and a summary to this JSON")
    parser.add_argument("--plot", type=plot_path, help="score histogram: .html (interactive, works offline) or .png")
    parser.add_argument("--resume", action="store_true", help="with --csv: skip files already scored by an interrupted run")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-image lines")
    cluster = parser.add_argument_group("scoring on a Ray cluster (pip install \"tigas-metric[ray]\")")
    cluster.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: in this process (default); ray: Ray Data actors, rows written to --out")
    cluster.add_argument("--address", help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: start Ray here)")
    cluster.add_argument("--out", type=Path, help="Parquet file of every row; a rerun skips the files it holds")
    cluster.add_argument("--workers", type=positive_int, help="scoring actors (default: one per GPU, else one per CPU)")


def collect_paths(inputs: list[str], recursive: bool) -> list[Path | str]:
    """Folders expand to their image files; files and http(s) URLs are kept as given (even bad
    ones, to report them)."""
    paths: list[Path | str] = []
    for item in inputs:
        if is_url(item):
            paths.append(item)
            continue
        path = Path(item)
        if is_folder(item):
            found, skipped = list_folder(path, recursive=recursive)
            if not found:
                print(f"warning: {path}: folder contains no image files" + ("" if recursive else " (use --recursive for sub-folders)"), file=sys.stderr)
            if skipped:
                kinds = ", ".join(f"{ext}: {count}" for ext, count in skipped.most_common())
                print(f"warning: {path}: skipped {skipped.total()} file(s) that are not images by extension ({kinds})", file=sys.stderr)
            paths.extend(found)
        else:
            paths.append(path)
    return paths


def summarise(table: pd.DataFrame, threshold: float) -> dict:
    scored = table[table["error"] == ""]
    scores = scored["score"]
    return {
        "files": int(len(table)),
        "scored": int(len(scored)),
        "failed": int(len(table) - len(scored)),
        "mean": float(scores.mean()) if len(scores) else math.nan,
        "median": float(scores.median()) if len(scores) else math.nan,
        "std": float(scores.std(ddof=0)) if len(scores) else math.nan,
        "threshold": threshold,
        "share_real": float((scores >= threshold).mean()) if len(scores) else math.nan,
    }


def write_plot(table: pd.DataFrame, out: Path, threshold: float) -> None:
    import plotly.express as px

    scored = table[table["error"] == ""]
    fig = px.histogram(scored, x="score", nbins=40, range_x=[0, 1], hover_data=["path"], title=f"TIGAS scores ({len(scored)} images)")
    fig.add_vline(x=threshold, line_dash="dash", annotation_text="threshold")
    if out.suffix.lower() == ".png":
        os.environ.setdefault("BROWSER_PATH", "/usr/bin/chromium")
        atomic_write_bytes(out, fig.to_image(format="png"))
    else:  # plotly.js embedded: the file opens offline too
        atomic_write_text(out, fig.to_html(include_plotlyjs=True))


# Beside each row the interrupted run's partial CSV keeps the file's stamp (size, mtime, inode,
# ctime, as the score cache checks them), and beside the partial a note of the scorer (weights,
# code and views, as the score cache identifies them): a resumed run keeps only rows that those
# still match.
FILE_STATE = ("file_stamp",)


def file_state(path: str) -> dict[str, str]:
    """`io.file_stamp` of a local file, empty for a URL or a file that is gone."""
    try:
        return {"file_stamp": file_stamp(os.stat(path))}
    except (OSError, ValueError):
        return {"file_stamp": ""}


def scorer_note(partial: Path) -> Path:
    """Where a partial CSV's note of the scorer that wrote it lives."""
    return partial.with_name(partial.name + ".json")


def resumable_rows(partial: Path, scorer_id: str, wanted: set[str]) -> dict[str, dict]:
    """The rows of an interrupted run that still hold: written by the same scorer, for a file of
    this run that is unchanged since (a URL is always scored again), and complete (a row cut short
    by a kill or a full disk is dropped)."""
    from tigas_core.score_cache import SCORE_COLUMNS

    try:
        written_by = json.loads(scorer_note(partial).read_text()).get("scorer")
    except (OSError, ValueError, AttributeError):  # missing or damaged: nothing says who wrote the rows
        written_by = None
    if written_by != scorer_id:
        print(f"tigas score: {partial} was written with other weights or views (or its note is missing); scoring every file again", file=sys.stderr)
        return {}
    done: dict[str, dict] = {}
    with open(partial, newline="") as handle:
        for row in csv.DictReader(handle):
            if None in row or None in row.values() or row.get("path") not in wanted:
                continue
            state = {key: row.pop(key, "") for key in FILE_STATE}
            if not state["file_stamp"] or state != file_state(row["path"]):
                continue
            try:
                done[row["path"]] = {**row, **{c: float(row[c]) if row[c] != "" else math.nan for c in SCORE_COLUMNS}}
            except (KeyError, ValueError):  # a header cut short, or a value that is not a number
                continue
    return done


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from tigas_core.api import RESULT_COLUMNS, verdict
    from tigas_core.score_cache import scorer_identity

    if args.engine == "ray":
        return run_on_ray(args)
    for option in ("out", "address", "workers"):
        if getattr(args, option):
            raise ValueError(f"--{option} goes with --engine ray")
    if args.resume and not args.csv:
        raise ValueError("--resume needs --csv: an interrupted run's rows are kept in CSV.partial")
    paths = collect_paths(args.paths, args.recursive)
    if not paths:
        print("tigas score: no image files found in " + ", ".join(args.paths) + f" (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})", file=sys.stderr)
        return 1
    inputs = {os.path.realpath(p) for p in paths if not is_url(p)}
    for option, output in (("--csv", args.csv), ("--json", args.json), ("--plot", args.plot)):
        if output is not None and os.path.realpath(output) in inputs:
            raise ValueError(f"{output}: is one of the images to score; choose another output path")
        if output is not None:
            prepare_output(output, option)
    tigas, threshold = load_scorer(args)

    partial = args.csv.with_name(args.csv.name + ".partial") if args.csv else None
    scorer_id = scorer_identity(tigas) if partial else ""
    done: dict[str, dict] = {}
    if partial and args.resume and partial.exists():
        done = resumable_rows(partial, scorer_id, {os.fspath(p) for p in paths})
    todo = [p for p in paths if os.fspath(p) not in done]

    rows = [dict(r, verdict=verdict(r["score"], threshold)) for r in done.values()]  # this run's threshold
    sink = None
    if partial:
        partial.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(scorer_note(partial), json.dumps({"scorer": scorer_id}) + "\n")
        sink = open(partial, "w", newline="")  # the rows kept, rewritten whole: no cut-short line stays behind
        writer = csv.DictWriter(sink, fieldnames=[*RESULT_COLUMNS, *FILE_STATE])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, **file_state(row["path"])})
        sink.flush()
    try:
        progress = tqdm(tigas.iter_file_results(todo, args.batch_size), total=len(todo), unit="img", desc="TIGAS", file=sys.stderr, disable=None)
        for row in progress:
            row["verdict"] = verdict(row["score"], threshold)
            rows.append(row)
            if sink:
                writer.writerow({**row, **file_state(row["path"])})
                sink.flush()
            if not args.quiet:
                line = f"ERROR  {row['path']}: {row['error']}" if row["error"] else f"{row['score']:.4f}  {row['verdict']:<16}  {row['path']}"
                line += f"  (note: {row['note']})" if row.get("note") else ""
                try:
                    progress.write(line, file=sys.stdout)
                except BrokenPipeError:  # `| head` closed the pipe: stop printing, go on scoring and writing
                    args.quiet = True
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit too
    finally:
        if sink:
            sink.close()

    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    summary = print_summary(table, threshold, tigas)
    if args.csv:
        atomic_write_text(args.csv, table.to_csv(index=False))
        partial.unlink(missing_ok=True)
        scorer_note(partial).unlink(missing_ok=True)
    if args.json:
        payload = {"summary": summary, "weights": tigas.weights_source, "views": tigas.views, "results": json.loads(table.to_json(orient="records"))}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    if args.plot and summary["scored"]:
        write_plot(table, args.plot, threshold)
    return 0 if summary["scored"] else 1


def print_summary(table: pd.DataFrame, threshold: float, tigas) -> dict:
    """The closing line of a run (files, failures, score statistics, weights), and its numbers."""
    summary = summarise(table, threshold)
    print(
        f"\nScored {summary['scored']} of {summary['files']} images"
        + (f" ({summary['failed']} failed)" if summary["failed"] else "")
        + (f": mean {summary['mean']:.4f}, median {summary['median']:.4f}, std {summary['std']:.4f}, "
           f"{summary['share_real']:.1%} at or above threshold {threshold:.2f}" if summary["scored"] else "")
        + f"  {scorer_label(tigas)}"
    )
    return summary


def run_on_ray(args: argparse.Namespace) -> int:
    """`--engine ray`: score on a Ray cluster into --out (tigas_core.distributed); the model is
    loaded here on the CPU and shipped to the actors, which run on --device."""
    from tigas_core.distributed import score_dataset

    local_only = [option for option in ("csv", "json", "plot", "resume") if getattr(args, option)]
    if local_only:
        raise ValueError(f"--{local_only[0]} is for the local engine; --engine ray writes --out OUT.parquet (a rerun resumes it)")
    if args.out is None or args.out.suffix.lower() != ".parquet":
        raise ValueError("--engine ray needs --out OUT.parquet")
    urls = [item for item in args.paths if is_url(item)]
    if urls:
        raise ValueError(f"{urls[0]}: --engine ray reads files (on a shared filesystem), not URLs")
    prepare_output(args.out, "--out")
    tigas, threshold = load_scorer(args, device="cpu")
    tigas.threshold = threshold
    try:
        result = score_dataset(args.paths, args.out, tigas, recursive=args.recursive, address=args.address,
                               workers=args.workers, batch_size=args.batch_size, device=args.device)
    except KeyboardInterrupt:
        print(f"\ntigas score: the rows scored so far are kept beside {args.out}; run the same command to continue", file=sys.stderr)
        raise
    print(f"{args.out}: {len(result.table)} rows, {result.newly_scored} of them read and scored by this run")
    summary = print_summary(result.table, threshold, tigas)
    return 0 if summary["scored"] else 1
