"""Export TIGAS weights as a Hugging Face repo folder (`export DIR`), upload one (`push REPO_ID`),
or build (and upload) the Gradio app as a self-contained Space folder (`space DIR [--push REPO_ID]`)."""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser("export", help="write config.json + model.safetensors + README.md to DIR")
    export.add_argument("directory", type=Path)
    export.add_argument("--weights", default=None, help="weights to export (default: the bundled assets/)")
    push = actions.add_parser("push", help="upload an exported folder to a Hub model repo (needs network and a token)")
    push.add_argument("repo_id")
    push.add_argument("--folder", type=Path, default=None, help="exported folder (default: export the bundled weights to a temp dir)")
    push.add_argument("--private", action="store_true")
    space = actions.add_parser("space", help="write a self-contained Hugging Face Space folder for the Gradio app")
    space.add_argument("directory", type=Path)
    space.add_argument("--push", metavar="REPO_ID", default=None, help="then upload it to this Space (needs network and a token)")
    space.add_argument("--private", action="store_true")


def _export(weights: str | None, directory: Path) -> Path:
    from tigas_core import hub
    from tigas_core.model import TIGASModel

    source = Path(weights) if weights else hub.bundled_weights_dir()
    card = source / hub.CARD_NAME if source.is_dir() else None
    model_card = card.read_text() if card is not None and card.is_file() else None
    TIGASModel.from_pretrained(source).save_pretrained(directory, model_card=model_card)
    return directory


def run(args: argparse.Namespace) -> int:
    from tigas_core import hub

    if args.action == "export":
        _export(args.weights, args.directory)
        print(f"exported to {args.directory}")
        return 0
    if args.action == "space":
        from tigas_core.space import build_space, push_space

        folder = build_space(args.directory)
        print(f"Space folder written to {folder}")
        if args.push:
            print(push_space(folder, args.push, private=args.private))
        return 0
    import tempfile

    folder = args.folder
    tmp = None
    if folder is None:
        tmp = Path(tempfile.mkdtemp(prefix="tigas-hub-"))
        folder = _export(None, tmp)
    try:
        print(hub.push_to_hub(folder, args.repo_id, private=args.private))
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0
