"""`tigas` command line: one subcommand per module in tigas_core.commands, imported lazily.

Each module defines ``add_arguments(parser)`` and ``run(args) -> int`` and its docstring's first
line is the help text, so `tigas --help` stays fast and a subcommand's heavy imports (gradio,
streamlit, training) are paid only when it runs. Errors that mean bad input (ValueError, which
TIGASInputError is, and OSError: missing files, missing weights, an unreachable Hub) end a command
here with one line and exit status 2; ``-v`` shows their traceback.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from tigas_core import __version__

COMMANDS = {
    "score": "Score images or folders and print/save the results.",
    "explain": "Write an offline HTML report per image: branches, spectrum, radial profile, saliency.",
    "train": "Train a TIGAS model from a YAML config.",
    "evaluate": "Evaluate weights per generator (AUROC, AP, ECE, robustness) with baselines.",
    "generate": "Sample images from a trained generator-zoo checkpoint.",
    "zoo": "Train the generator zoo (DCGAN, WGAN-GP, cGAN, VAE, DDPM, StyleGAN).",
    "fid": "Frechet distance (and KID) between two image folders.",
    "ppl": "Perceptual Path Length of a generator-zoo checkpoint (smoothness of its latent space).",
    "style-transfer": "Neural style transfer (Gatys) on ImageNet Lite0 features; prints the result's TIGAS score.",
    "hub": "Export TIGAS weights as a Hugging Face repo folder or push them; build the Gradio Space folder.",
    "app": "Launch the Gradio app.",
    "dashboard": "Launch the Streamlit dashboard.",
}


def command_module(name: str):
    """The module of subcommand ``name`` (``style-transfer`` lives in ``style_transfer.py``)."""
    return importlib.import_module(f"tigas_core.commands.{name.replace('-', '_')}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tigas", description="TIGAS: a differentiable realism score for images.")
    parser.add_argument("--version", action="version", version=f"tigas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = next((arg for arg in argv if arg in COMMANDS), None)
    for name, help_text in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # only the command that runs pays for its imports
            command_module(name).add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    # Our own messages (which weights were used, and why) at INFO; third-party chatter only when it matters.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("tigas").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not args.command:
        parser.print_help()
        return 2
    command = command_module(args.command)
    show_input_warnings_as_lines()
    try:
        return int(command.run(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C: what was written stays (atomic files, partial CSVs, checkpoints)
        hint = " (rerun with --resume to continue)" if getattr(args, "csv", None) or args.command == "train" else ""
        print(f"\ntigas {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:  # bad input, missing files or weights, Hub unreachable: say why in one line
        if args.verbose:
            raise
        logging.getLogger("tigas").error("tigas %s: %s (tigas -v %s ... shows the traceback)", args.command, exc, args.command)
        return 2


def show_input_warnings_as_lines() -> None:
    """A TIGASInputWarning (an animation scored on its first frame) reads "warning: FILE: note" on
    stderr, not Python's default with our source file and line number."""
    from tigas_core.io import TIGASInputWarning

    python_format = warnings.formatwarning

    def format_warning(message, category, *rest, **options) -> str:
        if issubclass(category, TIGASInputWarning):
            return f"warning: {message}\n"
        return python_format(message, category, *rest, **options)

    warnings.formatwarning = format_warning


if __name__ == "__main__":
    sys.exit(main())
