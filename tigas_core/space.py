"""Build (and optionally upload) a self-contained Hugging Face Space folder for the Gradio app.

A Space installs ``requirements.txt`` with only that file present (the repository is copied in
afterwards), so the checkout's own ``-e .`` line cannot work there. The Space folder therefore
carries the package source next to ``app/app.py`` (which puts its folder on ``sys.path``) and a
requirements file with the same pins minus the editable install and the test tools.

    tigas hub space build/space                      # inspect, then
    tigas hub space build/space --push user/tigas    # needs network and a token
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
TEST_ONLY = {"pytest", "pytest-timeout", "hypothesis", "playwright"}
COPIED = ("app", "tigas_core", "assets", "LICENSE")


def space_requirements(requirements: str) -> str:
    """The checkout's pins without comments, ``-e`` lines and test-only packages."""
    kept = ["# The pins of TIGAS's requirements.txt, without the editable install and the test tools."]
    for line in requirements.splitlines():
        stripped = line.strip()
        name = re.split(r"[=<>!~\[ ;]", stripped, maxsplit=1)[0].lower()
        if not stripped or stripped.startswith(("#", "-e")) or name in TEST_ONLY:
            continue
        kept.append(stripped)
    return "\n".join(kept) + "\n"


def space_readme(readme: str) -> str:
    """The checkout README's Space front matter and a short pointer to the project."""
    match = re.match(r"---\n.*?\n---\n", readme, flags=re.DOTALL)
    if match is None:
        raise ValueError("README.md has no Space front matter (--- ... ---) to copy")
    return (match.group(0) + "\n# TIGAS realism score\n\nDrop images to get a differentiable, no-reference "
            "realism score in [0, 1] with per-branch breakdowns, spectra and saliency. Built by "
            "`tigas hub space` from the TIGAS source; endpoints `/score` and `/explain` work with "
            "`gradio_client`.\n")


def build_space(out: str | os.PathLike, checkout: Path = CHECKOUT) -> Path:
    """Write the Space folder ``out`` (replaced if it exists) and return it."""
    if not (checkout / "app" / "app.py").is_file():
        raise FileNotFoundError(f"{checkout / 'app' / 'app.py'}: the Space is built from a source checkout of TIGAS")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in COPIED:
        source = checkout / name
        if source.is_dir():
            shutil.copytree(source, out / name, ignore=ignore)
        elif source.is_file():
            shutil.copy2(source, out / name)
    (out / "requirements.txt").write_text(space_requirements((checkout / "requirements.txt").read_text()))
    (out / "README.md").write_text(space_readme((checkout / "README.md").read_text()))
    return out


def push_space(folder: str | os.PathLike, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Upload a built Space folder to ``repo_id`` (a Gradio Space); returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    return str(api.upload_folder(repo_id=repo_id, repo_type="space", folder_path=str(folder),
                                 commit_message="Update the TIGAS Space"))
