"""One module per `tigas` subcommand (see tigas_core/cli.py), and the argument types they share:
argparse rejects a bad value with the option's name before any model or data is loaded."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path


def positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes, counts, threads, limits)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1] (a score threshold), checked as the app's API checks it."""
    from tigas_core.io import TIGASInputError, check_threshold

    try:
        return check_threshold(text)
    except TIGASInputError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def prepare_output(path: Path, option: str) -> None:
    """Make sure an output file can be written before any work starts: a missing folder is created
    (and said so on stderr, so a mistyped folder shows at once); a folder that cannot be created
    or written ends the command with a message that names the user's path and option."""
    folder = path.parent
    if not folder.exists():
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise OSError(f"{option} {path}: cannot create folder {folder} ({exc.strerror})") from None
        print(f"note: {option} {path}: created folder {folder}", file=sys.stderr)
    if not folder.is_dir():
        raise ValueError(f"{option} {path}: {folder} is not a folder")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as exc:
        raise OSError(f"{option} {path}: cannot write in {folder} ({exc.strerror})") from None
    if os.path.isdir(path):
        raise ValueError(f"{option} {path}: is a folder; give a file name")


def add_views_argument(parser: argparse.ArgumentParser) -> None:
    """--views: what each score averages over (tigas_core.io.model_views); every face defaults to
    io.DEFAULT_VIEWS, so one file gets one score wherever it is scored."""
    from tigas_core.io import DEFAULT_VIEWS as default, VIEW_MODES

    parser.add_argument("--views", choices=VIEW_MODES, default=default,
                        help=f"single, mirror (image and its mirror, 2x the cost) or jitter (18 shifted and mirrored "
                             f"views, 18x): steadier scores on high-resolution photos (default: {default})")


def plot_path(text: str) -> Path:
    """Where a plot goes: .html (interactive, self-contained) or .png."""
    path = Path(text)
    if path.suffix.lower() not in (".html", ".png"):
        raise argparse.ArgumentTypeError(f"{text}: a plot is written as .html or .png, not {path.suffix or 'a file without extension'}")
    return path
