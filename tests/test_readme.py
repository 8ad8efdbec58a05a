"""The README's Python examples run as written. Each ```python block is executed in a folder of
images this test makes, after defining only the names its prose assumes (a generator, a loader, a
discriminator, images in memory) and pointing its example URL at a local HTTP server; the block
that talks to a running app runs in tests/test_app.py, against one. A renamed argument, a moved
import or a changed return type fails here before a reader finds it."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import natural_like, readme_python_blocks
from PIL import Image
from torch import nn

from tigas_core import TIGAS

BLOCKS = readme_python_blocks()
OFFLINE_BLOCKS = [block for block in BLOCKS if "gradio_client" not in block]  # the app's is in test_app.py
EXAMPLE_URL = "https://example.com/a.jpg"


def test_the_readme_has_the_examples_this_file_runs():
    assert len(BLOCKS) == len(OFFLINE_BLOCKS) + 1 >= 7
    assert sum(EXAMPLE_URL in block for block in BLOCKS) == 1


@pytest.fixture
def namespace(tmp_path, monkeypatch, served_folder) -> dict:
    """The images and objects the README's prose takes for granted, in a fresh working folder."""
    for name, seed in (("photo.jpg", 0), ("a.png", 1), ("b.jpg", 2), ("folder/x.png", 3), ("folder/y.jpg", 4),
                       ("outputs/1.png", 5), ("outputs/nested/2.jpg", 6)):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(natural_like(80, 96, seed)).save(tmp_path / name)
    (tmp_path / "outputs" / "broken.png").write_bytes(b"not a png")
    served, url = served_folder
    Image.fromarray(natural_like(64, 64, 7)).save(served / "a.jpg")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    generator = nn.Sequential(nn.Linear(100, 3 * 32 * 32), nn.Sigmoid(), nn.Unflatten(1, (3, 32, 32)))
    discriminator = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 1))
    return {
        "__url__": url,
        "tigas": TIGAS(device="cpu"),
        "pil_image": Image.open(tmp_path / "photo.jpg"),
        "numpy_hwc_uint8": natural_like(64, 64, 8),
        "tensor_chw": torch.rand(3, 64, 64),
        "images": torch.rand(2, 3, 64, 64),
        "more_images": torch.rand(3, 3, 64, 64),
        "generator": generator,
        "z": torch.randn(2, 100),
        "adversarial_loss": torch.zeros(()),
        "discriminator": discriminator,
        "g_optimizer": torch.optim.Adam(generator.parameters(), lr=1e-3),
        "loader": [torch.rand(2, 3, 32, 32) for _ in range(4)],
    }


def run_block(block: str, names: dict) -> dict:
    code = block.replace(EXAMPLE_URL, names["__url__"] + "/a.jpg")
    exec(compile(code, "README.md", "exec"), names)
    return names


@pytest.mark.parametrize("block", OFFLINE_BLOCKS, ids=[b.strip().splitlines()[0][:40] for b in OFFLINE_BLOCKS])
def test_readme_python_block_runs(block, namespace):
    before = [p.detach().clone() for p in namespace["generator"].parameters()]
    names = run_block(block, namespace)
    if "compute_directory" in block:  # a folder with a bad file gives a row per file, the bad one with its reason
        table = names["table"]
        assert isinstance(table, pd.DataFrame) and len(table) == 3
        assert (table["error"] != "").sum() == 1 and table["score"].notna().sum() == 2
    if "loss.backward()" in block:  # TIGAS's gradient reached the generator
        assert names["generator"][0].weight.grad.abs().sum() > 0
    if "TIGASLoss(" in block:  # four steps: the generator moved, the term ran on steps 0 and 2, the weight ramped
        assert any(not torch.equal(b, p) for b, p in zip(before, names["generator"].parameters()))
        assert names["warmup"].current_step == 4 and 0 < names["tigas_loss"].weight < 0.1
        assert names["tigas_loss"].last_score is None  # step 3 was skipped (every 2nd step)
    if "return_features=True" in block:
        assert names["out"]["score"].shape == (2, 1) and names["out"]["branch_weights"].shape == (2, 3)
    if "TIGASMetric(" in block:
        result = names["metric"].compute()  # the running means over both batches
        assert int(names["metric"].count) == 5 and 0 < float(result["score"]) < 1 and "spectral_score" in result
    if "save_pretrained(" in block:
        assert names["model"].config == names["tigas"].model.config
