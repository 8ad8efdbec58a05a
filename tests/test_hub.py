"""Weights: safetensors round trip, the real huggingface_hub code against a local HF cache, resolution order."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tigas_core import TIGAS
from tigas_core.hub import (
    CONFIG_NAME,
    DEFAULT_REPO_ID,
    DEFAULT_REVISION,
    WEIGHTS_NAME,
    WeightsNotFoundError,
    load_model,
    resolve_weights,
    revision_for,
    save_pretrained,
)

REPO_ID = "tigas-test/tiny"
REVISION = "v0.1.0"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def outputs(model, images):
    with torch.no_grad():
        return model.eval()(images)["score"]


def test_save_and_load_round_trip(small_model, tmp_path):
    from safetensors.torch import load_file

    from tigas_core.model import TIGASModel

    folder = save_pretrained(small_model, tmp_path / "w", model_card="# card\n")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", CONFIG_NAME, WEIGHTS_NAME]
    assert json.loads((folder / CONFIG_NAME).read_text())["feature_dim"] == small_model.config.feature_dim
    again = small_model.save_pretrained(tmp_path / "w2")  # the method and the function write the same tensors
    first, second = load_file(str(folder / WEIGHTS_NAME)), load_file(str(again / WEIGHTS_NAME))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    images = torch.rand(3, 3, 64, 64)
    for loaded in (load_model(folder), load_model(folder / WEIGHTS_NAME), TIGASModel.from_pretrained(again)):
        reference = small_model.state_dict()
        assert all(torch.equal(value, reference[key]) for key, value in loaded.state_dict().items())
        # allclose, not equal: another test may have put the shared model in channels_last layout
        assert torch.allclose(outputs(loaded, images), outputs(small_model, images), atol=1e-6)


def test_half_precision_weights_halve_the_file_and_keep_scores_within_1e_3(small_model, tmp_path):
    from safetensors.torch import load_file

    full = save_pretrained(small_model, tmp_path / "fp32")
    half = save_pretrained(small_model, tmp_path / "fp16", half=True)
    stored = load_file(str(half / WEIGHTS_NAME))
    expected = {k: torch.float16 if v.numel() >= 4096 and sum(d > 1 for d in v.shape) >= 2 else torch.float32
                for k, v in small_model.state_dict().items() if v.is_floating_point()}
    assert {k: t.dtype for k, t in stored.items() if t.is_floating_point()} == expected  # vectors (the read-out's) stay float32
    assert (half / WEIGHTS_NAME).stat().st_size < 0.6 * (full / WEIGHTS_NAME).stat().st_size
    loaded = load_model(half)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())  # computes in float32 as before
    images = torch.rand(4, 3, 64, 64)
    assert torch.allclose(outputs(loaded, images), outputs(small_model, images), atol=1e-3)


def test_training_split_is_recorded_by_content_and_found_again(tmp_path, make_image):
    from tigas_core.hub import overlap_with_training, trained_on, write_training_split

    trained, unseen = make_image("a.png", seed=1), make_image("b.png", seed=2)
    copy = tmp_path / "copy_of_a.png"
    copy.write_bytes(trained.read_bytes())
    write_training_split(tmp_path / "w", [str(trained)])
    assert len(trained_on(tmp_path / "w")) == 1
    assert overlap_with_training(tmp_path / "w", [str(unseen), str(copy)]) == [str(copy)]  # a renamed copy is still seen
    assert overlap_with_training(tmp_path / "nothing-recorded", [str(copy)]) == []


def test_legacy_pt_loads_only_plain_tensors(small_model, tmp_path):
    torch.save({"config": small_model.config.to_dict(), "model_state_dict": small_model.state_dict()}, tmp_path / "old.pt")
    images = torch.rand(2, 3, 64, 64)
    assert torch.allclose(outputs(load_model(tmp_path / "old.pt"), images), outputs(small_model, images), atol=1e-6)
    torch.save({"config": small_model.config.to_dict(), "evil": Path("x")}, tmp_path / "pickled.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unsupported"):
        load_model(tmp_path / "pickled.pt")


def test_bare_state_dict_pt_of_another_config_is_a_clear_error(small_model, tmp_path):
    """A .pt without its config is read with the default config; other shapes must say so, not raise torch's error."""
    torch.save(small_model.state_dict(), tmp_path / "bare.pt")
    with pytest.raises(WeightsNotFoundError, match=r"bare\.pt: weights do not match.*size mismatch.*without a 'config'"):
        load_model(tmp_path / "bare.pt")


def test_pinned_revision_is_the_default_repos_only():
    assert revision_for(DEFAULT_REPO_ID, None) == DEFAULT_REVISION
    assert revision_for("someone/their-tigas", None) == "main"  # `tigas hub push` makes no tag
    assert revision_for("someone/their-tigas", "v2") == "v2"


def test_mismatched_weights_are_refused(small_model, tmp_path):
    folder = save_pretrained(small_model, tmp_path / "w")
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["feature_dim"] = 48
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(WeightsNotFoundError, match="do not match.*size mismatch"):
        load_model(folder)


def populate_hf_cache(cache: Path, weights: Path) -> Path:
    """The layout huggingface_hub itself writes: blobs, snapshots/<commit>/, refs/<revision>."""
    repo = cache / f"models--{REPO_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        blob = repo / "blobs" / f"blob-{name}"
        shutil.copy(weights / name, blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    (repo / "refs").mkdir()
    (repo / "refs" / REVISION).write_text(COMMIT)
    return repo


RESOLVE_SCRIPT = """
import logging, sys, torch
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
from tigas_core import TIGAS
t = TIGAS(auto_download=True, repo_id=sys.argv[1], revision=sys.argv[2], device="cpu")
torch.manual_seed(0)
print("SCORE", float(t(torch.rand(3, 64, 64))))
print("SOURCE", t.weights_source)
"""


def run_offline(cache: Path, assets: Path, *args: str, script: str = RESOLVE_SCRIPT) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(cache.parent / "hf_home"),
           "TIGAS_ASSETS_DIR": str(assets)}
    return subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=120)


def test_auto_download_resolves_through_the_offline_hf_cache(small_model, weights_dir, tmp_path):
    populate_hf_cache(tmp_path / "hub", weights_dir)
    proc = run_offline(tmp_path / "hub", tmp_path / "no_assets", REPO_ID, REVISION)
    assert proc.returncode == 0, proc.stderr
    assert f"SOURCE hub {REPO_ID}@{REVISION}" in proc.stdout
    assert "from the Hugging Face cache or Hub" in proc.stdout
    torch.manual_seed(0)
    expected = float(outputs(small_model, __import__("tigas_core.io", fromlist=["preprocess"]).preprocess(torch.rand(1, 3, 64, 64), 64)))
    score = float(proc.stdout.split("SCORE ")[1].split()[0])
    assert abs(score - expected) < 1e-5


def test_hub_miss_falls_back_to_bundled_and_says_why(weights_dir, tmp_path):
    populate_hf_cache(tmp_path / "hub", weights_dir)
    proc = run_offline(tmp_path / "hub", weights_dir, REPO_ID, "v9.9.9")  # revision not in the cache
    assert proc.returncode == 0, proc.stderr
    assert f"SOURCE bundled {weights_dir}" in proc.stdout
    assert f"Hub {REPO_ID}@v9.9.9 unavailable" in proc.stdout
    # Without any logging set up (plain Python), the fallback still reaches the user's terminal.
    plain = run_offline(tmp_path / "hub", weights_dir, REPO_ID, "v9.9.9", script=(
        "import sys; from tigas_core import TIGAS; TIGAS(auto_download=True, repo_id=sys.argv[1], revision=sys.argv[2])"))
    assert plain.returncode == 0, plain.stderr
    assert f"bundled {weights_dir}, because Hub {REPO_ID}@v9.9.9 unavailable" in plain.stderr


def test_nothing_found_is_a_clear_error_never_random_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TIGAS_ASSETS_DIR", str(tmp_path / "empty"))
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights()
    message = str(info.value)
    assert "No TIGAS weights found" in message and "never scores with random weights" in message
    assert "weights=" in message
    proc = run_offline(tmp_path / "hub", tmp_path / "empty", REPO_ID, REVISION)
    assert proc.returncode != 0 and "WeightsNotFoundError" in proc.stderr and f"Hub {REPO_ID}@{REVISION}" in proc.stderr


def test_explicit_checkpoint_wins_over_everything(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TIGAS_ASSETS_DIR", str(tmp_path / "empty"))
    model, source = resolve_weights(weights_dir, hub_fallback=True)
    assert source == f"checkpoint {weights_dir}"
    with pytest.raises(WeightsNotFoundError, match="no such weights"):
        resolve_weights(tmp_path / "nope")
    with pytest.warns(DeprecationWarning, match="checkpoint_path, auto_download"):  # the old names still choose the same
        legacy = TIGAS(checkpoint_path=weights_dir, auto_download=True, device="cpu")
    assert legacy.weights_source == source


def test_one_name_for_weights_bundled_folder_or_hub(small_model, weights_dir, tmp_path, monkeypatch):
    """weights= 'assets' | a folder | 'owner/name@revision', and TIGAS.from_pretrained the same."""
    monkeypatch.setenv("TIGAS_ASSETS_DIR", str(weights_dir))
    assert TIGAS("assets", device="cpu").weights_source == f"bundled {weights_dir}"
    assert TIGAS.from_pretrained(weights_dir, device="cpu").weights_source == f"checkpoint {weights_dir}"
    populate_hf_cache(tmp_path / "hub", weights_dir)
    script = ("import sys; from tigas_core import TIGAS\n"
              "print('SOURCE', TIGAS.from_pretrained(sys.argv[1], device='cpu').weights_source)")
    proc = run_offline(tmp_path / "hub", tmp_path / "no_assets", f"{REPO_ID}@{REVISION}", script=script)
    assert proc.returncode == 0 and f"SOURCE hub {REPO_ID}@{REVISION}" in proc.stdout, proc.stderr
    missing = run_offline(tmp_path / "hub", weights_dir, f"{REPO_ID}@v9.9.9", script=script)  # named: no silent fallback
    assert missing.returncode != 0 and f"Hub {REPO_ID}@v9.9.9 unavailable" in missing.stderr


def test_space_folder_installs_without_the_checkout_and_runs_its_own_copy(tmp_path):
    """A Space installs requirements.txt alone, then starts app/app.py from the folder."""
    from tigas_core.cli import main as cli_main

    space = tmp_path / "space"
    assert cli_main(["hub", "space", str(space)]) == 0
    requirements = (space / "requirements.txt").read_text().splitlines()
    assert "torch==2.14.1" in requirements and "gradio==6.31.0" in requirements
    assert not any(line.startswith(("-e", "pytest", "playwright")) for line in requirements)
    assert requirements[0].startswith("#") and not any(line.startswith("#") for line in requirements[1:])
    readme = (space / "README.md").read_text()
    assert readme.startswith("---\n") and "app_file: app/app.py" in readme and "sdk: gradio" in readme
    assert (space / "assets" / WEIGHTS_NAME).is_file() and not list(space.rglob("__pycache__"))
    probe = "import runpy, sys; runpy.run_path('app/app.py', run_name='space_app'); print(sys.modules['tigas_core'].__file__)"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=space, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).resolve().is_relative_to(space.resolve())  # the Space's copy, not the checkout's


def test_repo_id_missing_from_the_offline_cache_is_a_weights_error(tmp_path, monkeypatch):
    """An explicit repo id that cannot be fetched names the repo and revision tried, as WeightsNotFoundError."""
    script = ("import sys\nfrom tigas_core.hub import WeightsNotFoundError, load_model\n"
              "try:\n    load_model('someone/not-cached')\nexcept WeightsNotFoundError as exc:\n    print('ERROR', exc)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "hf_home")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert "ERROR Hub someone/not-cached@main unavailable (" in proc.stdout, proc.stdout + proc.stderr
