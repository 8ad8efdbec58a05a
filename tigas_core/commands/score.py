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

from tigas_core.commands import add_scorer_arguments, load_scorer, plot_path, positive_int, prepare_output
from tigas_core.config import atomic_write_text
from tigas_core.io import IMAGE_EXTENSIONS, file_stamp, is_folder, is_url, list_folder
from tigas_core.results import RESULT_COLUMNS, SCORE_COLUMNS, summarise, verdict
from tigas_core.score_cache import scorer_identity


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """What to score and with which scorer: shared by `tigas score` and `tigas explain`."""
    parser.add_argument("paths", nargs="+", help="image files, folders and/or http(s) URLs")
    parser.add_argument("-r", "--recursive", action="store_true", help="descend into sub-folders")
    add_scorer_arguments(parser)


def scorer_label(tigas) -> str:
    """The weights and, unless the defaults, the views and precision a run scored with (the last line of its output)."""
    views = "" if tigas.views == "single" else f"; views: {tigas.views}"
    precision = "" if tigas.precision == "fp32" else f"; precision: {tigas.precision}"
    return f"[weights: {tigas.weights_source}{views}{precision}]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
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
                print(f"warning: {path}: folder contains no image files" + ("" if recursive else " (use --recursive for sub-folders)"),
                      file=sys.stderr)
            if skipped:
                kinds = ", ".join(f"{ext}: {count}" for ext, count in skipped.most_common())
                print(f"warning: {path}: skipped {skipped.total()} file(s) that are not images by extension ({kinds})", file=sys.stderr)
            paths.extend(found)
        else:
            paths.append(path)
    return paths


# Beside each row the interrupted run's partial CSV keeps the file's stamp (size, mtime, inode,
# ctime, as the score cache checks them), and beside the partial a note of the scorer (weights,
# code, views and precision, as the score cache identifies them): a resumed run keeps only rows that those
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
    try:
        written_by = json.loads(scorer_note(partial).read_text()).get("scorer")
    except (OSError, ValueError, AttributeError):  # missing or damaged: nothing says who wrote the rows
        written_by = None
    if written_by != scorer_id:
        print(f"tigas score: {partial} was written with other weights, views or precision (or its note is missing); "
              "scoring every file again", file=sys.stderr)
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
    if args.engine == "ray":
        return run_on_ray(args)
    for option in ("out", "address", "workers"):
        if getattr(args, option):
            raise ValueError(f"--{option} goes with --engine ray")
    if args.resume and not args.csv:
        raise ValueError("--resume needs --csv: an interrupted run's rows are kept in CSV.partial")
    paths = collect_paths(args.paths, args.recursive)
    if not paths:
        print("tigas score: no image files found in " + ", ".join(args.paths) + f" (extensions: {', '.join(sorted(IMAGE_EXTENSIONS))})",
              file=sys.stderr)
        return 1
    check_outputs(args, paths)
    tigas = load_scorer(args)
    rows = score_into(tigas, paths, args)
    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    summary = print_summary(table, tigas)
    write_outputs(table, summary, tigas, args)
    return 0 if summary["scored"] else 1


def check_outputs(args: argparse.Namespace, paths: list[Path | str]) -> None:
    """Every output can be written, and none of them is one of the images to score."""
    inputs = {os.path.realpath(p) for p in paths if not is_url(p)}
    for option, output in (("--csv", args.csv), ("--json", args.json), ("--plot", args.plot)):
        if output is not None and os.path.realpath(output) in inputs:
            raise ValueError(f"{output}: is one of the images to score; choose another output path")
        if output is not None:
            prepare_output(output, option)


def score_into(tigas, paths: list[Path | str], args: argparse.Namespace) -> list[dict]:
    """Every path's row, in order: those an interrupted run kept (--resume), then the rest as they
    are scored, each printed (unless --quiet) and appended to CSV.partial (with --csv)."""
    from tqdm.auto import tqdm

    partial = args.csv.with_name(args.csv.name + ".partial") if args.csv else None
    scorer_id = scorer_identity(tigas) if partial else ""
    done: dict[str, dict] = {}
    if partial and args.resume and partial.exists():
        done = resumable_rows(partial, scorer_id, {os.fspath(p) for p in paths})
    rows = [dict(r, verdict=verdict(r["score"], tigas.threshold)) for r in done.values()]  # this run's threshold
    todo = [p for p in paths if os.fspath(p) not in done]
    with PartialCsv(partial, scorer_id, rows) as sink:
        progress = tqdm(tigas.iter_file_results(todo, args.batch_size), total=len(todo), unit="img", desc="TIGAS",
                        file=sys.stderr, disable=None)
        for row in progress:
            rows.append(row)
            sink.append(row)
            if not args.quiet:
                args.quiet = not print_row(row, progress)
    return rows


def print_row(row: dict, progress) -> bool:
    """One image's line above the progress bar; False once the reader has gone (`| head` closed the
    pipe): then the run goes on scoring and writing, silently."""
    line = f"ERROR  {row['path']}: {row['error']}" if row["error"] else f"{row['score']:.4f}  {row['verdict']:<16}  {row['path']}"
    line += f"  (note: {row['note']})" if row.get("note") else ""
    try:
        progress.write(line, file=sys.stdout)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit too
        return False
    return True


class PartialCsv:
    """CSV.partial of a run with --csv (nothing without): the rows kept from an interrupted run,
    rewritten whole (no cut-short line stays behind), then each new row as it is scored, flushed,
    beside a note of the scorer that wrote them."""

    def __init__(self, path: Path | None, scorer_id: str, kept: list[dict]) -> None:
        self.path, self.scorer_id, self.kept = path, scorer_id, kept
        self.handle = None

    def __enter__(self) -> PartialCsv:
        if self.path:
            atomic_write_text(scorer_note(self.path), json.dumps({"scorer": self.scorer_id}) + "\n")
            self.handle = open(self.path, "w", newline="")
            self.writer = csv.DictWriter(self.handle, fieldnames=[*RESULT_COLUMNS, *FILE_STATE])
            self.writer.writeheader()
            for row in self.kept:
                self.append(row)
        return self

    def append(self, row: dict) -> None:
        if self.handle:
            self.writer.writerow({**row, **file_state(row["path"])})
            self.handle.flush()

    def __exit__(self, *exc_info) -> None:
        if self.handle:
            self.handle.close()


def write_outputs(table: pd.DataFrame, summary: dict, tigas, args: argparse.Namespace) -> None:
    """The final CSV (replacing CSV.partial), JSON and plot, each written atomically."""
    if args.csv:
        atomic_write_text(args.csv, table.to_csv(index=False))
        partial = args.csv.with_name(args.csv.name + ".partial")
        partial.unlink(missing_ok=True)
        scorer_note(partial).unlink(missing_ok=True)
    if args.json:
        payload = {"summary": summary, "weights": tigas.weights_source, "views": tigas.views, "precision": tigas.precision,
                   "results": json.loads(table.to_json(orient="records"))}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")
    if args.plot and summary["scored"]:
        from tigas_core.figures import score_histogram, write_figure

        write_figure(score_histogram(table, tigas.threshold), args.plot)


def print_summary(table: pd.DataFrame, tigas) -> dict:
    """The closing line of a run (files, failures, score statistics, weights), and its numbers."""
    threshold = tigas.threshold
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
    tigas = load_scorer(args, device="cpu")
    try:
        result = score_dataset(args.paths, args.out, tigas, recursive=args.recursive, address=args.address,
                               workers=args.workers, batch_size=args.batch_size, device=args.device)
    except KeyboardInterrupt:
        print(f"\ntigas score: the rows scored so far are kept beside {args.out}; run the same command to continue", file=sys.stderr)
        raise
    print(f"{args.out}: {len(result.table)} rows, {result.newly_scored} of them read and scored by this run")
    summary = print_summary(result.table, tigas)
    return 0 if summary["scored"] else 1
