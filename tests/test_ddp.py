"""The trainer runs unchanged under torchrun: 2 CPU processes on gloo, rank 0 writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml
from tigas_synthetic import make_dataset


def test_torchrun_two_cpu_processes_gloo(tmp_path):
    root = make_dataset(tmp_path / "data", n_real=20, fakes={"gan-a": 10}, size=36)
    out = tmp_path / "run"
    config = {
        "model": {"img_size": 32, "adapter_channels": 8, "feature_dim": 32, "num_heads": 2, "num_prototypes": 4},
        "data": {"sources": [str(root)], "samples_per_epoch": 32, "num_workers": 0, "augment_level": "light"},
        "training": {"num_epochs": 2, "batch_size": 8, "device": "cpu", "num_threads": 1, "output_dir": str(out)},
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "tigas_core.cli", "train", "--config", str(config_path)],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "training_summary.json").read_text())
    history = summary["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    # 32 samples per epoch over 2 ranks with batch 8: 2 optimizer steps per epoch on each rank
    state = json.loads((out / "checkpoints" / f"epoch-{2:04d}" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    # validation gathered from both ranks: every val image counted exactly once
    assert history[0]["val_count"] == summary["split"]["val"]
    assert (out / "final" / "model.safetensors").is_file()
    assert len(list((out / "logs").glob("events.out.tfevents.*"))) == 1  # only rank 0 writes
