"""Weights by name for every face: resolve ("assets" | folder | "owner/name@revision", with the
deprecated names and the Hub fallback), load, save, the training split beside them, push.

Layout (a Hub model repo): config.json + model.safetensors + README.md (model card). Only
safetensors are loaded; a legacy .pt checkpoint is read with ``torch.load(weights_only=True)``.
The files themselves (names, locating, writing) are `tigas_core.weights_files`'; building the
network from them is `TIGASModel.from_pretrained`.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from tigas_core.config import atomic_write_text
from tigas_core.model import TIGASModel
from tigas_core.weights_files import (  # noqa: F401  (re-exported: the names users import from here)
    BUNDLED_WEIGHTS,
    CARD_NAME,
    CONFIG_NAME,
    DEFAULT_REPO_ID,
    DEFAULT_REVISION,
    WEIGHTS_NAME,
    WeightsNotFoundError,
    bundled_weights_dir,
    is_hub_name,
    locate,
    revision_for,
)

logger = logging.getLogger("tigas")

SPLIT_NAME = "split.json"  # which files the weights were trained on, beside them
SPLIT_DIGEST_CHARS = 16  # a file_digest prefix: 64 bits tell thousands of files apart


def load_model(source: str | os.PathLike, revision: str | None = None) -> TIGASModel:
    """`TIGASModel.from_pretrained` as a function: a weights folder, a .safetensors or .pt file, or
    a Hub repo id ``owner/name[@revision]``."""
    return TIGASModel.from_pretrained(source, revision)


def save_pretrained(model: TIGASModel, directory: str | os.PathLike, model_card: str | None = None, half: bool = False) -> Path:
    """`TIGASModel.save_pretrained` as a function: config.json, model.safetensors, model card."""
    return model.save_pretrained(directory, model_card=model_card, half=half)


def resolve_weights(weights: str | os.PathLike | None = None, hub_fallback: bool = False) -> tuple[TIGASModel, str]:
    """The model that ``weights`` names, and words for it (`TIGAS.weights_source`):

    - None or ``"assets"`` (`BUNDLED_WEIGHTS`): the bundled weights (assets/, or $TIGAS_ASSETS_DIR);
    - a weights folder, ``.safetensors`` or legacy ``.pt`` file: those;
    - ``"owner/name"`` or ``"owner/name@revision"``: a Hub repo through the Hugging Face cache
      (honouring HF_HUB_OFFLINE); no revision means the pinned tag for the project's own repo and
      ``main`` for any other (`revision_for`).

    Named weights that cannot be loaded raise, except that with ``hub_fallback`` (what the
    deprecated ``auto_download=True`` did) a Hub repo out of reach falls back to the bundled
    weights with a warning that says why. Logs one line naming the weights used; never random weights.
    """
    if weights is None or os.fspath(weights) == BUNDLED_WEIGHTS:
        return _bundled()
    if Path(weights).exists() or not is_hub_name(weights):
        model = load_model(weights)
        source = f"checkpoint {weights}"
        logger.info("TIGAS weights: %s (given explicitly)", source)
        return model, source
    repo_id, _, revision = os.fspath(weights).partition("@")
    source = f"hub {repo_id}@{revision_for(repo_id, revision or None)}"
    try:
        model = load_model(weights)
    except WeightsNotFoundError as exc:  # offline, missing revision, no network
        if not hub_fallback:
            raise
        return _bundled(hub_problem=str(exc))
    logger.info("TIGAS weights: %s (from the Hugging Face cache or Hub)", source)
    return model, source


def _bundled(hub_problem: str | None = None) -> tuple[TIGASModel, str]:
    """The bundled weights; ``hub_problem`` is why the Hub weights asked for were not used (said
    as a warning: falling back must not go unnoticed)."""
    bundled = bundled_weights_dir()
    if not (bundled / WEIGHTS_NAME).is_file():
        tried = [problem for problem in (hub_problem, f"bundled weights in {bundled} (no {WEIGHTS_NAME})") if problem]
        raise WeightsNotFoundError(
            "No TIGAS weights found. Tried: " + "; ".join(tried) + ". Pass weights= a weights folder "
            "(config.json + model.safetensors) or a Hub repo 'owner/name[@revision]' (with network access or a "
            "populated Hugging Face cache), or set TIGAS_ASSETS_DIR. TIGAS never scores with random weights."
        )
    model = load_model(bundled)
    source = f"bundled {bundled}"
    if hub_problem:
        logger.warning("TIGAS weights: %s, because %s", source, hub_problem)
    else:
        logger.info("TIGAS weights: %s (default)", source)
    return model, source


def weights_from_legacy(weights: str | os.PathLike | None, checkpoint_path: str | os.PathLike | None = None,
                        auto_download: bool = False, repo_id: str | None = None,
                        revision: str | None = None) -> tuple[str | os.PathLike | None, bool]:
    """(weights, hub_fallback) for the arguments TIGAS took before ``weights=``, each with a
    DeprecationWarning: ``checkpoint_path=X`` is ``weights=X``; ``auto_download=True`` is
    ``weights="repo_id@revision"`` that falls back to the bundled weights when the Hub is out of reach."""
    import warnings

    given = [name for name, value in (("checkpoint_path", checkpoint_path), ("auto_download", auto_download),
                                       ("repo_id", repo_id), ("revision", revision)) if value]
    if not given:
        return weights, False
    warnings.warn(f"TIGAS({', '.join(given)}=...) is deprecated: name the weights with weights='assets' | "
                  "'path/to/dir' | 'owner/name@revision'", DeprecationWarning, stacklevel=3)
    if weights is not None:
        raise ValueError(f"weights= and the deprecated {given[0]}= name the weights twice; give weights= alone")
    if checkpoint_path is not None:
        named = os.fspath(checkpoint_path)
        return (f"{named}@{revision}" if revision and is_hub_name(named) and not Path(named).exists() else checkpoint_path), False
    if auto_download:
        repo_id = repo_id or DEFAULT_REPO_ID
        return f"{repo_id}@{revision_for(repo_id, revision)}", True
    return None, False  # repo_id / revision without auto_download never chose the weights


def write_training_split(directory: str | os.PathLike, paths: list[str]) -> Path:
    """Record beside exported weights which files they were trained on, by content (so a copy
    under another name is still recognised), for `trained_on`."""
    from tigas_core.io import file_digest

    digests = sorted({file_digest(p)[:SPLIT_DIGEST_CHARS] for p in paths})
    path = Path(directory) / SPLIT_NAME
    atomic_write_text(path, json.dumps({"files": len(paths), "digest": f"blake2b-160 prefix, {SPLIT_DIGEST_CHARS} hex",
                                        "train": digests}, indent=0) + "\n")
    return path


def trained_on(weights: str | os.PathLike | None) -> set[str]:
    """Digest prefixes of the files a local weights folder (None: the bundled weights) was trained
    on; empty when it records none."""
    folder = bundled_weights_dir() if weights is None or os.fspath(weights) == BUNDLED_WEIGHTS else Path(weights)
    path = (folder if folder.is_dir() else folder.parent) / SPLIT_NAME
    return set(json.loads(path.read_text())["train"]) if path.is_file() else set()


def overlap_with_training(weights: str | os.PathLike | None, paths: list[str]) -> list[str]:
    """The ``paths`` whose content the weights were trained on."""
    from tigas_core.io import file_digest

    seen = trained_on(weights)
    return [p for p in paths if seen and file_digest(p)[:SPLIT_DIGEST_CHARS] in seen]


def push_to_hub(directory: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "Upload TIGAS weights") -> str:
    """Upload an exported weights folder to a Hub model repo; returns the commit URL."""
    from huggingface_hub import HfApi

    directory = Path(directory)
    for needed in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / needed).is_file():
            raise WeightsNotFoundError(f"{directory / needed}: missing; export with `tigas hub export DIR` first")
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(directory), commit_message=commit_message,
                             allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME])
    return str(info)
