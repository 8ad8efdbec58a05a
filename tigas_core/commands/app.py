"""Launch the Gradio app.

The app lives in app/app.py at the repository root (it is also the Hugging Face Space entry
point), outside the tigas_core package (a wheel carries a copy inside it; see
tigas_core.resources), so it is loaded from there by file path. Its imports (gradio) are paid
only when this command runs.
"""
from __future__ import annotations

import argparse
import functools
import importlib.util
import sys
from types import ModuleType

from tigas_core.resources import project_path

APP_FILE = project_path("app", "app.py")


@functools.lru_cache(maxsize=1)
def _load_app_module() -> ModuleType:
    if not APP_FILE.is_file():
        raise SystemExit(f"tigas app: {APP_FILE} not found; the app ships with the source checkout and the wheel; reinstall TIGAS")
    spec = importlib.util.spec_from_file_location("tigas_gradio_app", APP_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _load_app_module().add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return _load_app_module().launch(args)
