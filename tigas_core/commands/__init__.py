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


SCORER_OPTIONS = ("weights", "device", "views", "precision", "threshold", "batch_size", "threads")


# Old names of --weights (and --tigas-weights), kept working but out of --help.
LEGACY_WEIGHTS_OPTIONS = {"": ("--checkpoint", "--repo-id"), "tigas-": ("--tigas-checkpoint",)}


class DeprecatedAlias(argparse.Action):
    """An old option name kept working, out of --help: it stores into the new option (``const``
    when it takes no value) and says so on stderr (a DeprecationWarning would stay silent in a
    command line)."""

    def __init__(self, option_strings: list[str], dest: str, replacement: str, nargs: int | None = None,
                 const: object = None, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=nargs, const=const, help=argparse.SUPPRESS, **kwargs)
        self.replacement = replacement

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values, option_string=None) -> None:
        print(f"warning: {option_string} is deprecated; use {self.replacement}", file=sys.stderr)
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)


def add_scorer_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, options: tuple[str, ...] = SCORER_OPTIONS,
                         batch_size: int = 16, prefix: str = "") -> None:
    """The options that build a TIGAS scorer (`load_scorer`), one wording for every command that
    scores: --weights --device --views --precision --threshold --batch-size --threads, or the named ``options``.
    ``prefix`` tells them from a command's own (`tigas zoo train --tigas-weights`). The old names of
    --weights stay as hidden aliases. Bad values are refused by argparse, naming the option."""
    from tigas_core.hub import DEFAULT_REPO_ID
    from tigas_core.io import DEFAULT_VIEWS, VIEW_MODES
    from tigas_core.precision import PRECISIONS

    def option(name: str) -> str:
        return f"--{prefix}{name.replace('_', '-')}"

    declared = {
        "weights": dict(metavar="WEIGHTS", help="'assets' (the bundled weights, default), a weights folder or .safetensors, "
                                                 "or a Hub repo owner/name[@revision]"),
        "device": dict(default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ..."),
        "views": dict(choices=VIEW_MODES, default=DEFAULT_VIEWS,
                      help=f"single, mirror (image and its mirror, 2x the cost), jitter (18 shifted and mirrored views, "
                           f"18x) or grid (4 views reading up to 448 px, 4x; the most accurate): steadier scores on "
                           f"high-resolution photos (default: {DEFAULT_VIEWS})"),
        "precision": dict(choices=PRECISIONS, default="fp32",
                          help="fp32 (default: the same scores on every machine), bf16 (the trunk in bfloat16: about 1.4x "
                               "faster on CPUs with AVX512-BF16/AMX, scores within ~0.004 on average) or auto (bf16 where native)"),
        "threshold": dict(type=probability, help="decision threshold (default: the calibrated one)"),
        "batch_size": dict(type=positive_int, default=batch_size, help="images per forward pass (default: %(default)s)"),
        "threads": dict(type=positive_int, help="torch CPU threads (default: torch's choice; 1 on a busy shared CPU)"),
    }
    for name in options:
        parser.add_argument(option(name), **declared[name])
    if "weights" not in options:
        return
    weights_dest = f"{prefix}weights".replace("-", "_")
    for alias in LEGACY_WEIGHTS_OPTIONS[prefix]:
        parser.add_argument(alias, dest=weights_dest, action=DeprecatedAlias, replacement=option("weights"))
    if not prefix:  # --repo-id ID --revision REV and --auto-download: the Hub weights, now ID@REV
        parser.add_argument("--revision", action=DeprecatedAlias, replacement="--weights OWNER/NAME@REVISION")
        parser.add_argument("--auto-download", dest="weights", action=DeprecatedAlias, nargs=0, const=DEFAULT_REPO_ID,
                            replacement=f"--weights {DEFAULT_REPO_ID}")


def add_views_argument(parser: argparse.ArgumentParser) -> None:
    """--views alone, for a command whose scorer is built elsewhere."""
    add_scorer_arguments(parser, options=("views",))


def scorer_weights(args: argparse.Namespace) -> str | None:
    """--weights, with the revision of the deprecated ``--repo-id ID --revision REV`` joined on (ID@REV)."""
    from tigas_core.hub import is_hub_name

    revision = getattr(args, "revision", None)
    return f"{args.weights}@{revision}" if revision and args.weights and is_hub_name(args.weights) else args.weights


def set_threads(args: argparse.Namespace) -> None:
    """--threads, when given: torch's CPU threads for this process."""
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def load_scorer(args: argparse.Namespace, device: str | None = None):
    """The TIGAS that `add_scorer_arguments`' options ask for (on ``device`` if given, else
    --device), with --threads applied and --threshold (when given) as its threshold."""
    from tigas_core.api import TIGAS
    from tigas_core.io import DEFAULT_VIEWS

    set_threads(args)
    tigas = TIGAS(scorer_weights(args), device=device or args.device, views=getattr(args, "views", DEFAULT_VIEWS),
                  precision=getattr(args, "precision", "fp32"))
    if getattr(args, "threshold", None) is not None:
        tigas.threshold = args.threshold
    return tigas


def plot_path(text: str) -> Path:
    """Where a plot goes: .html (interactive, self-contained) or .png."""
    path = Path(text)
    if path.suffix.lower() not in (".html", ".png"):
        raise argparse.ArgumentTypeError(f"{text}: a plot is written as .html or .png, not {path.suffix or 'a file without extension'}")
    return path
