"""Where TIGAS weights live and how their files are written: names of the files, the bundled
folder, a Hub repo's snapshot in the Hugging Face cache. No network building here: building the
network from the files is `TIGASModel.from_pretrained`'s job, and `tigas_core.hub` (resolution
with fallbacks, training splits, push) builds on both.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from tigas_core.config import TIGASConfig, atomic_write_text, make_readable
from tigas_core.resources import project_path

DEFAULT_REPO_ID = "tigas-metric/tigas-base"
# Weights are pinned to a tag so that a score means the same thing next year.
DEFAULT_REVISION = "v0.1.0"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
# What `resolve_weights` reads as the bundled weights (the folder's name in the checkout).
BUNDLED_WEIGHTS = "assets"
HALF_MIN_ELEMENTS = 4096  # `write_weights(half=True)` keeps smaller tensors in float32


def stored_in_half(tensor: torch.Tensor) -> bool:
    """Whether `write_weights(half=True)` stores ``tensor`` as float16: floating point, at least
    `HALF_MIN_ELEMENTS` elements, and not a vector (two or more dimensions longer than 1)."""
    return tensor.is_floating_point() and tensor.numel() >= HALF_MIN_ELEMENTS and sum(d > 1 for d in tensor.shape) >= 2


class WeightsNotFoundError(FileNotFoundError):
    """No usable TIGAS weights; the message says what to do."""


def bundled_weights_dir() -> Path:
    """The bundled weights folder (assets/ of the checkout or its copy in a wheel) unless
    TIGAS_ASSETS_DIR points elsewhere."""
    return Path(os.environ.get("TIGAS_ASSETS_DIR") or project_path("assets"))


def write_weights(state: dict[str, torch.Tensor], config: TIGASConfig, directory: str | os.PathLike,
                  model_card: str | None = None, half: bool = False) -> Path:
    """Write config.json, model.safetensors and (if given) a model card, each atomically.

    ``half`` stores the large floating-point matrices and kernels as float16 (half the file; loading
    casts them back to float32, and scores move by less than 1e-3: tests/test_hub.py). Tensors under
    `HALF_MIN_ELEMENTS` and vectors stay float32: they cost little, and the read-out's logit sums
    thousands of products (its weights and standardisation are vectors) whose float16 rounding would add up."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and stored_in_half(v) else v).detach().cpu().contiguous() for k, v in state.items()}
    tmp = directory / f".{WEIGHTS_NAME}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt", "model_type": config.model_type})
    make_readable(tmp)  # safetensors writes 0600
    os.replace(tmp, directory / WEIGHTS_NAME)
    config.save(directory / CONFIG_NAME)
    if model_card is not None:
        atomic_write_text(directory / CARD_NAME, model_card)
    return directory


def locate(source: str | os.PathLike, revision: str | None = None) -> Path:
    """The local weights that ``source`` names: a weights folder, a .safetensors file (config.json
    beside it) or a legacy .pt file as given, or for a Hub repo id ``owner/name``
    (``owner/name@revision`` names the revision too) the Hugging Face cache's snapshot folder,
    downloading config.json and model.safetensors into it when online."""
    path = Path(source)
    if path.is_dir() or path.suffix in (".safetensors", ".pt", ".pth", ".ckpt"):
        return path
    if path.exists():
        raise WeightsNotFoundError(f"{source}: not a TIGAS weights folder, .safetensors or .pt file")
    if not is_hub_name(source):
        raise WeightsNotFoundError(f"{source}: no such weights folder or file")
    repo_id, _, pinned = str(source).partition("@")
    return _download(repo_id, revision or pinned or None)


def is_hub_name(source: str | os.PathLike) -> bool:
    """'owner/name' or 'owner/name@revision' with no path-like parts: what the Hub accepts as a
    model repo (a local path is tried first, so a folder of that name wins)."""
    text = os.fspath(source).partition("@")[0]
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not text.endswith("/")


def revision_for(repo_id: str, revision: str | None) -> str:
    """``revision`` if given; otherwise the pinned tag for the project's own repo and ``main`` for
    any other (a repo made by `tigas hub push` has no such tag)."""
    if revision is not None:
        return revision
    return DEFAULT_REVISION if repo_id == DEFAULT_REPO_ID else "main"


def _download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    revision = revision_for(repo_id, revision)
    try:
        hf_hub_download(repo_id, CONFIG_NAME, revision=revision)
        weights_path = hf_hub_download(repo_id, WEIGHTS_NAME, revision=revision)
    except (OSError, ValueError, EntryNotFoundError) as exc:  # offline and not cached, unknown repo, revision or file
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise WeightsNotFoundError(f"Hub {repo_id}@{revision} unavailable ({type(exc).__name__}: {first_line})") from exc
    return Path(weights_path).parent  # the snapshot folder holds both files
