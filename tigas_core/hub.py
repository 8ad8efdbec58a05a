"""Weights on disk and on the Hugging Face Hub: save, load, resolve, push.

Layout (a Hub model repo): config.json + model.safetensors + README.md (model card). Only
safetensors are loaded; a legacy .pt checkpoint is read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tigas_core.config import TIGASConfig, atomic_write_text
from tigas_core.model import TIGASModel
from tigas_core.resources import project_path

logger = logging.getLogger("tigas")

DEFAULT_REPO_ID = "tigas-metric/tigas-base"
# Weights are pinned to a tag so that a score means the same thing next year.
DEFAULT_REVISION = "v0.1.0"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
SPLIT_NAME = "split.json"  # which files the weights were trained on, beside them
SPLIT_DIGEST_CHARS = 16  # a file_digest prefix: 64 bits tell thousands of files apart
CARD_NAME = "README.md"
# What `resolve_weights` reads as the bundled weights (the folder's name in the checkout).
BUNDLED_WEIGHTS = "assets"


class WeightsNotFoundError(FileNotFoundError):
    """No usable TIGAS weights; the message says what to do."""


def bundled_weights_dir() -> Path:
    """The bundled weights folder (assets/ of the checkout or its copy in a wheel) unless
    TIGAS_ASSETS_DIR points elsewhere."""
    return Path(os.environ.get("TIGAS_ASSETS_DIR") or project_path("assets"))


def save_pretrained(model: TIGASModel, directory: str | os.PathLike, model_card: str | None = None, half: bool = False) -> Path:
    """Write config.json, model.safetensors and (if given) a model card, each atomically.

    ``half`` stores floating-point tensors as float16 (half the file; loading casts them back to
    float32, and scores move by less than 1e-3: tests/test_hub.py)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    tmp = directory / f".{WEIGHTS_NAME}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt", "model_type": model.config.model_type})
    os.replace(tmp, directory / WEIGHTS_NAME)
    model.config.save(directory / CONFIG_NAME)
    if model_card is not None:
        atomic_write_text(directory / CARD_NAME, model_card)
    return directory


def load_model(source: str | os.PathLike, revision: str | None = None) -> TIGASModel:
    """Load from a weights folder, a .safetensors file (config.json beside it), a legacy .pt, or a
    Hub repo id ``owner/name`` (``owner/name@revision`` names the revision too)."""
    path = Path(source)
    if path.is_dir():
        return _load_files(path / CONFIG_NAME, path / WEIGHTS_NAME)
    if path.suffix == ".safetensors":
        return _load_files(path.with_name(CONFIG_NAME), path)
    if path.suffix in (".pt", ".pth", ".ckpt"):
        return _load_legacy(path)
    if path.exists():
        raise WeightsNotFoundError(f"{source}: not a TIGAS weights folder, .safetensors or .pt file")
    if not is_hub_name(source):
        raise WeightsNotFoundError(f"{source}: no such weights folder or file")
    repo_id, _, pinned = str(source).partition("@")
    return _load_from_hub(repo_id, revision or pinned or None)


def is_hub_name(source: str | os.PathLike) -> bool:
    """'owner/name' or 'owner/name@revision' with no path-like parts: what the Hub accepts as a
    model repo (a local path is tried first, so a folder of that name wins)."""
    text = os.fspath(source).partition("@")[0]
    return text.count("/") == 1 and not text.startswith((".", "/", "~")) and not text.endswith("/")


def _load_files(config_path: Path, weights_path: Path) -> TIGASModel:
    for needed in (config_path, weights_path):
        if not needed.is_file():
            raise WeightsNotFoundError(f"{needed}: missing (a TIGAS weights folder holds {CONFIG_NAME} and {WEIGHTS_NAME})")
    model = TIGASModel(TIGASConfig.load(config_path))
    _load_state(model, load_file(str(weights_path)), weights_path)
    return model


def _load_legacy(path: Path) -> TIGASModel:
    if not path.is_file():
        raise WeightsNotFoundError(f"{path}: file not found")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("model_state_dict", checkpoint.get("state_dict", checkpoint))
    config = TIGASConfig.from_dict(checkpoint.get("config", {})) if isinstance(checkpoint.get("config"), dict) else TIGASConfig()
    model = TIGASModel(config)
    _load_state(model, state, path)
    return model


def _load_state(model: TIGASModel, state: dict, origin: Path) -> None:
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # same names, other shapes: weights of a differently configured model
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc).splitlines()[0])
        raise WeightsNotFoundError(f"{origin}: weights do not match the model described by its config ({detail})"
                                   + ("; a .pt file without a 'config' entry is read with the default config"
                                      if origin.suffix != ".safetensors" else "")) from exc
    if result.missing_keys or result.unexpected_keys:
        raise WeightsNotFoundError(
            f"{origin}: weights do not match the model described by its config "
            f"(missing {result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]})"
        )


def revision_for(repo_id: str, revision: str | None) -> str:
    """``revision`` if given; otherwise the pinned tag for the project's own repo and ``main`` for
    any other (a repo made by `tigas hub push` has no such tag)."""
    if revision is not None:
        return revision
    return DEFAULT_REVISION if repo_id == DEFAULT_REPO_ID else "main"


def _load_from_hub(repo_id: str, revision: str | None) -> TIGASModel:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    revision = revision_for(repo_id, revision)
    try:
        config_path = hf_hub_download(repo_id, CONFIG_NAME, revision=revision)
        weights_path = hf_hub_download(repo_id, WEIGHTS_NAME, revision=revision)
    except (OSError, ValueError, EntryNotFoundError) as exc:  # offline and not cached, unknown repo, revision or file
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        raise WeightsNotFoundError(f"Hub {repo_id}@{revision} unavailable ({type(exc).__name__}: {first_line})") from exc
    return _load_files(Path(config_path), Path(weights_path))


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
        return _load_bundled()
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
        return _load_bundled(hub_problem=str(exc))
    logger.info("TIGAS weights: %s (from the Hugging Face cache or Hub)", source)
    return model, source


def _load_bundled(hub_problem: str | None = None) -> tuple[TIGASModel, str]:
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
