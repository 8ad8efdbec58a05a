"""The wheel a user gets from `pip install .`: built for real, installed into a folder, used from a
fresh process that cannot see the source checkout."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import natural_like
from PIL import Image
from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel file, folder it is installed into with `pip install --target`)."""
    work = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["wheel", "--no-deps", "--no-build-isolation", "-w", str(work / "dist"), str(ROOT)],
                   check=True, cwd=work, capture_output=True)
    (wheel,) = (work / "dist").glob("tigas_metric-*.whl")
    subprocess.run(pip + ["install", "--no-deps", "--target", str(work / "site"), str(wheel)], check=True, capture_output=True)
    return wheel, work / "site"


@pytest.mark.slow
def test_wheel_carries_every_subpackage_the_weights_app_and_dashboard(installed_wheel):
    wheel, _ = installed_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    source_packages = find_packages(str(ROOT), include=["tigas_core*"])
    missing = [p for p in source_packages if f"{p.replace('.', '/')}/__init__.py" not in names]
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    for name in ("assets/config.json", "assets/model.safetensors", "assets/README.md", "app/app.py",
                 "dashboards/dashboard.py", "py.typed"):
        assert f"tigas_core/{name}" in names
    zoo = {Path(n).name for n in names if n.startswith("tigas_core/assets/zoo/")}
    assert zoo == {p.name for p in (ROOT / "assets" / "zoo").iterdir() if p.suffix in (".json", ".safetensors")}


@pytest.mark.slow
def test_installed_wheel_scores_with_its_bundled_weights_and_finds_its_app(installed_wheel, tmp_path):
    _, site = installed_wheel
    photo = tmp_path / "photo.png"
    Image.fromarray(natural_like(96, 80, seed=3)).save(photo)
    script = (
        "import tigas_core, json\n"
        "from tigas_core import TIGAS\n"
        "from tigas_core.commands import app, dashboard\n"
        "tigas = TIGAS(device='cpu')\n"
        f"score = tigas({str(photo)!r})\n"
        "print(json.dumps({'package': tigas_core.__file__, 'source': tigas.weights_source, 'score': score,\n"
        "                  'app': str(app.APP_FILE), 'dashboard': str(dashboard.DASHBOARD_FILE)}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    env.pop("TIGAS_ASSETS_DIR", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["package"].startswith(str(site))
    assert report["source"].startswith("bundled") and str(site) in report["source"]
    assert 0.0 <= report["score"] <= 1.0
    assert report["app"] == str(site / "tigas_core" / "app" / "app.py")
    assert report["dashboard"] == str(site / "tigas_core" / "dashboards" / "dashboard.py")
    # The CLI of the wheel loads the wheel's own app (gradio is imported: this takes a few seconds).
    help_text = subprocess.run([sys.executable, "-m", "tigas_core.cli", "app", "--help"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300)
    assert help_text.returncode == 0, help_text.stderr
    assert "--weights" in help_text.stdout


def test_torch_hub_entry_points_score_and_backpropagate():
    """hubconf.py, loaded the way torch.hub loads a downloaded repository (source="local")."""
    import torch

    scorer = torch.hub.load(str(ROOT), "tigas", source="local", device="cpu")
    assert scorer.weights_source.startswith("bundled")
    image = torch.from_numpy(natural_like(64, 64, seed=4)).permute(2, 0, 1).float().div(255)
    assert 0.0 <= scorer(image) <= 1.0
    loss_fn = torch.hub.load(str(ROOT), "tigas_loss", source="local", weight=0.5)
    batch = image[None].clone().requires_grad_(True)
    loss = loss_fn(batch)
    loss.backward()
    assert 0.0 <= float(loss.detach()) <= 0.5 and float(batch.grad.abs().sum()) > 0
