"""benchmarks/gpu_session.py, the one prepared command a session runs when it is lent a GPU, run
end to end on the CPU with tiny budgets: each model it trains leaves a checkpoint and an export,
the judge and the TIGAS trainer run, and the archive holds their results but no data."""
from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_session_trains_judges_and_packs_on_cpu(tmp_path, make_image):
    data = tmp_path / "cifar10"
    for label in range(10):  # the judge is a 10-class CIFAR classifier
        for i in range(10):
            make_image(f"cifar10/class_{label}/{i}.jpg", size=(32, 32), seed=10 * label + i)
    out = tmp_path / "out"
    command = [sys.executable, "benchmarks/gpu_session.py", "run", "--device", "cpu", "--data", str(data), "--out", str(out),
               "--work", str(tmp_path / "work"), "--runs", "dcgan", "vae", "--minutes", "2", "--steps", "3",
               "--judge-n", "20", "--fakes", "20", "--tigas-minutes", "0.05", "--tigas-set", "data.samples_per_epoch=64"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=500)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    summary = (out / "summary.md").read_text()
    for model in ("dcgan", "vae"):
        assert f"| {model} | 0 | {{'step': 3," in summary  # each stopped at the step budget, exit code 0
        assert f"| {model} |" in summary.split("## Judge (exit code 0)")[1]  # and was judged
    assert "## TIGAS trainer on cpu (exit code 0)" in summary
    with tarfile.open(out / "gpu_session.tar.gz") as archive:
        names = set(archive.getnames())
    for name in ("export/dcgan.safetensors", "export/vae.json", "runs/dcgan/checkpoint.safetensors", "runs/vae/samples/final.png",
                 "runs/dcgan/samples/quality_sorted.png",
                 "judge/zoo_recognisability.json", "judge/zoo_samples.png", "logs/tigas_train.log", "summary.md"):
        assert f"gpu_session/{name}" in names
    assert not [n for n in names if "tigas_data" in n or "/tb" in n]  # no copy of the data, no TensorBoard logs
