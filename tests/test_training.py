"""Training: the loss falls, checkpoints resume (also after SIGKILL), calibration keeps the ranking."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score
from tigas_synthetic import make_dataset

from tigas_core.data import scan_folder
from tigas_core.model import create_tigas_model
from tigas_core.training import LossWeights, TrainConfig, Trainer, cosine_with_warmup, fit_platt, margin_ranking, tigas_training_loss

TINY_MODEL = dict(img_size=32, adapter_channels=8, feature_dim=32, num_heads=2, num_prototypes=4)
REPO = Path(__file__).resolve().parents[1]




@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("train-data"), n_real=30, fakes={"gan-a": 14, "gan-b": 10})


def tiny_config(output_dir: Path, data: Path, **training) -> TrainConfig:
    config = TrainConfig()
    for key, value in TINY_MODEL.items():
        config.set(f"model.{key}", value)
    config.data.sources = [str(data)]
    config.data.samples_per_epoch = 32
    config.data.num_workers = 0
    config.data.augment_level = "light"
    settings = dict(batch_size=16, num_epochs=2, learning_rate=2e-3, warmup_epochs=0.5, output_dir=str(output_dir),
                    num_threads=1, log_images_every=1)
    settings.update(training)
    for key, value in settings.items():
        config.set(f"training.{key}", value)
    return config


def test_default_yaml_has_readme_defaults_and_overrides():
    config = TrainConfig.from_yaml(REPO / "configs" / "default.yaml")
    assert (config.model.img_size, config.model.backbone, config.model.feature_dim) == (224, "efficientnet_lite1", 128)
    assert (config.training.num_epochs, config.training.batch_size, config.training.learning_rate) == (100, 32, 1e-4)
    assert (config.data.train_split, config.data.augment_level) == (0.8, "native")
    config.set("training.learning_rate", "3e-4")
    config.set("data.holdout_generators", "a,b")
    config.set("training.amp", "false")
    assert config.training.learning_rate == 3e-4 and config.data.holdout_generators == ["a", "b"] and config.training.amp is False
    with pytest.raises(ValueError, match="unknown config key"):
        config.set("training.nope", 1)


def test_loss_parts_and_ranking_margin():
    logit = torch.tensor([3.0, 2.5, -1.0, 2.8])
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0])
    # pairs (real - fake): 4, 0.2, 3.5, -0.3 -> hinge(1 - d): 0, 0.8, 0, 1.3
    assert margin_ranking(logit, labels, 1.0).item() == pytest.approx((0.8 + 1.3) / 4)
    assert margin_ranking(logit, torch.ones(4), 1.0).item() == 0.0
    assert cosine_with_warmup(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert cosine_with_warmup(10, 10, 100, 0.1) == pytest.approx(1.0)
    assert cosine_with_warmup(100, 10, 100, 0.1) == pytest.approx(0.1)


def test_a_few_steps_make_the_loss_fall(dataset_root):
    torch.manual_seed(0)
    from tigas_core.data import ImageDataset

    records = scan_folder(dataset_root)
    batch = [ImageDataset(records, 32)[i] for i in range(0, len(records), 2)]
    images, labels = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
    model = create_tigas_model(**TINY_MODEL).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss, parts = tigas_training_loss(model(images), labels, LossWeights())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert set(parts) == {"regression", "classification", "ranking", "components"}
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses


def test_trainer_checkpoints_resume_and_final_weights(dataset_root, tmp_path):
    from tigas_core.api import TIGAS

    out = tmp_path / "run"
    first = Trainer(tiny_config(out, dataset_root, num_epochs=2))
    first.fit()
    pointer = json.loads((out / "checkpoints" / "latest.json").read_text())
    assert pointer["epoch"] == 2
    state = json.loads((out / "checkpoints" / pointer["folder"] / "trainer_state.json").read_text())
    assert state["global_step"] == 4 and len(state["history"]) == 2
    assert {"val_auroc", "train_total", "train_img_per_s"} <= set(state["history"][0])
    assert list((out / "logs").glob("events.out.tfevents.*"))

    resumed = Trainer(tiny_config(out, dataset_root, num_epochs=3))
    resumed.fit(resume=True)
    assert resumed.state["epoch"] == 3 and resumed.state["global_step"] == 6
    assert [h["epoch"] for h in resumed.state["history"]] == [1, 2, 3]

    summary = json.loads((out / "training_summary.json").read_text())
    tigas = TIGAS(checkpoint_path=out / "final", device="cpu")
    assert tigas.config.calibration_temperature == pytest.approx(summary["calibration_temperature"])
    assert tigas.config.greyscale_calibration == pytest.approx(tuple(summary["greyscale_calibration"]))
    assert tigas.config.img_size == 32 and summary["reference_images"] > 0
    assert not torch.allclose(tigas.model.reference_profile, create_tigas_model(**TINY_MODEL).reference_profile)
    assert 0.0 <= tigas(str(next(dataset_root.glob("real/*/*.jpg")))) <= 1.0

    from tigas_core.cli import main

    (out / "final" / "README.md").write_text("# card\n")
    assert main(["hub", "export", str(tmp_path / "hf"), "--weights", str(out / "final")]) == 0
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert main(["hub", "export", str(tmp_path / "hf2"), "--weights", str(tmp_path / "missing")]) == 2


def test_sigkill_mid_epoch_resumes_from_last_checkpoint(dataset_root, tmp_path):
    out = tmp_path / "killed"
    config = tiny_config(out, dataset_root, num_epochs=50)
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config.to_dict()))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "tigas_core.cli", "train", "--config", str(config_path)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pointer = out / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if pointer.is_file() and json.loads(pointer.read_text())["epoch"] >= 2:
                break
            time.sleep(0.2)
        assert process.poll() is None, "training ended before it could be killed"
        assert pointer.is_file(), "no checkpoint within 90 s"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done = json.loads(pointer.read_text())["epoch"]
    resumed = Trainer(tiny_config(out, dataset_root, num_epochs=done + 1))
    assert resumed.resume()
    assert resumed.state["epoch"] == done and len(resumed.state["history"]) == done
    resumed.fit()
    assert resumed.state["epoch"] == done + 1 and (out / "final" / "model.safetensors").is_file()


def test_calibration_preserves_ranking_and_centres_even_odds():
    rng = np.random.default_rng(0)
    logits = np.concatenate([rng.normal(4.0, 2.0, 300), rng.normal(1.0, 2.0, 30)])  # raw logits biased towards "real"
    labels = np.concatenate([np.ones(300), np.zeros(30)])
    temperature, bias = fit_platt(logits, labels)
    assert temperature > 0
    calibrated = 1 / (1 + np.exp(-(logits - bias) / temperature))
    assert np.array_equal(np.argsort(calibrated, kind="stable"), np.argsort(logits, kind="stable"))
    assert roc_auc_score(labels, calibrated) == pytest.approx(roc_auc_score(labels, logits))
    assert 1.5 < bias < 3.5  # the midpoint of the two classes, not the real-heavy prior
    balanced_acc = 0.5 * ((calibrated[labels == 1] >= 0.5).mean() + (calibrated[labels == 0] < 0.5).mean())
    assert balanced_acc > 0.7
    assert fit_platt(logits[:10], labels[:10]) == (1.0, 0.0)
