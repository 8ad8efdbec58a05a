"""Shared fixtures: a small but real TIGAS model, its weights folder, and image makers.

Tests never read ../shared/data; they make their own images.
"""
from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np
import pytest
import torch
from PIL import Image

from tigas_core.config import TIGASConfig
from tigas_core.model import TIGASModel, create_tigas_model


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """One intra-op thread for the whole suite: on a 2-core machine that also runs the app, the
    dashboard and subprocesses under test, more threads spin against each other (10x slower seen)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture
def chromium():
    """``with chromium() as browser:`` a headless Debian chromium driven by playwright (never a
    downloaded browser); the test is skipped where that chromium is not installed."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright

    @contextmanager
    def launch():
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                yield browser
            finally:
                browser.close()

    return launch


SMALL = dict(img_size=64, adapter_channels=8, feature_dim=32, num_heads=2, num_prototypes=4)


@pytest.fixture(scope="session")
def small_config() -> TIGASConfig:
    return TIGASConfig(**SMALL)


@pytest.fixture(scope="session")
def small_model(small_config) -> TIGASModel:
    torch.manual_seed(0)
    return create_tigas_model(small_config).eval()


@pytest.fixture(scope="session")
def weights_dir(small_model, tmp_path_factory) -> Path:
    from tigas_core.hub import save_pretrained

    return save_pretrained(small_model, tmp_path_factory.mktemp("weights"), model_card="# test weights\n")


@pytest.fixture(scope="session")
def tigas(small_model):
    from tigas_core.api import TIGAS

    return TIGAS(model=small_model, device="cpu")


def natural_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth 1/f-ish colour image (uint8 HxWx3): low-pass filtered noise, like a blurry photo."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((height, width, 3))
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    falloff = 1.0 / np.maximum(np.sqrt(fy**2 + fx**2), 1.0 / max(height, width))
    field = np.real(np.fft.ifft2(np.fft.fft2(noise, axes=(0, 1)) * falloff[..., None], axes=(0, 1)))
    field = (field - field.min()) / (field.max() - field.min() + 1e-9)
    return (field * 255).astype(np.uint8)


@pytest.fixture
def make_image(tmp_path):
    """Write a test image and return its path: make_image("a.png", size=(w, h), mode="RGB", seed=0)."""

    def make(name: str, size: tuple[int, int] = (96, 80), mode: str = "RGB", seed: int = 0, **save_kwargs) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.fromarray(natural_like(size[1], size[0], seed))
        if mode != "RGB":
            image = image.convert(mode)
        image.save(path, **save_kwargs)
        return path

    return make


@pytest.fixture
def served_folder(tmp_path):
    """(folder, base URL): files put in ``folder`` are served over real HTTP on 127.0.0.1."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class QuietHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest's output clean
            pass

    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


README = Path(__file__).resolve().parents[1] / "README.md"


def readme_python_blocks() -> list[str]:
    """The README's ```python blocks, in order (tests/test_readme.py runs them as written)."""
    return re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)
