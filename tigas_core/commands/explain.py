"""Explain scores: one offline HTML report per image (branches, spectrum, radial profile, saliency).

    tigas explain photo.jpg outputs/ --out reports/
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlparse

from tigas_core.commands import load_scorer
from tigas_core.commands.score import add_input_arguments, collect_paths, scorer_label
from tigas_core.io import is_url, path_text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="folder for the reports (<image>.html, plotly.min.js, explanations.json)")


def display_name(source: Path | str) -> str:
    """The file name of a path, or of a URL's path (``https://x/a/b.jpg?s=1`` -> ``b.jpg``)."""
    if is_url(source):
        return Path(urlparse(source).path).name or "download"
    return Path(path_text(source)).name


def report_names(paths: list[Path | str]) -> list[str]:
    """``<stem>.html`` per image; a name taken before gets ``_2``, ``_3``... so no report overwrites
    another (also when an image is itself called ``a_2``: a.jpg, a.png, a_2.png -> a, a_2, a_2_2)."""
    taken: set[str] = set()
    names = []
    for path in paths:
        stem = Path(display_name(path)).stem
        name, count = f"{stem}.html", 1
        while name in taken:
            count += 1
            name = f"{stem}_{count}.html"
        taken.add(name)
        names.append(name)
    return names


def run(args: argparse.Namespace) -> int:
    from tigas_core.config import atomic_write_text
    from tigas_core.io import TIGASInputError

    paths = collect_paths(args.paths, args.recursive)
    if not paths:
        print("tigas explain: no image files found in " + ", ".join(args.paths), file=sys.stderr)
        return 1
    tigas = load_scorer(args)
    results = []
    try:
        for path, name in zip(paths, report_names(paths)):
            try:
                explanation = tigas.explain(path)
                report = explanation.save_html(args.out / name, title=display_name(path))
            except Exception as exc:  # one bad file is reported and skipped, never the end of the run
                reason = exc.reason if isinstance(exc, TIGASInputError) else f"{type(exc).__name__}: {exc}"
                print(f"ERROR  {path}: {reason}")
                results.append({"path": path_text(path), "error": reason})
                continue
            print(f"{explanation.score:.4f}  {explanation.verdict:<16}  {path}  ->  {report}")
            results.append({"path": path_text(path), "report": name, "error": "", **explanation.to_dict()})
    finally:  # also after Ctrl-C: the reports written so far stay listed
        atomic_write_text(args.out / "explanations.json",
                          json.dumps({"weights": tigas.weights_source, "threshold": tigas.threshold, "results": results}, indent=2) + "\n")
    explained = sum(1 for row in results if not row["error"])
    print(f"\nExplained {explained} of {len(results)} images; reports in {args.out}  {scorer_label(tigas)}")
    return 0 if explained else 1
