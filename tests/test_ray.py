"""Scoring on Ray (tigas_core.distributed, `tigas score --engine ray`) with a real Ray, no mocks.

A local Ray (2 CPUs) scores a folder of generated images with a few bad files and must match
compute_directory row for row; a two-node cluster on loopback (two `ray start` processes) is
scored through the real `tigas` CLI and must show rows from both nodes; the dashboard opens the
Parquet file a run writes. The model is a small, freshly initialised TIGAS, so this takes seconds
of scoring; most of the time is Ray starting.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray = pytest.importorskip("ray")

from conftest import natural_like  # noqa: E402

from tigas_core.api import TIGAS  # noqa: E402
from tigas_core.distributed import ScoredDataset, score_dataset  # noqa: E402
from tigas_core.hub import save_pretrained  # noqa: E402
from tigas_core.io import file_digest  # noqa: E402
from tigas_core.local_server import LocalServer, free_port  # noqa: E402
from tigas_core.model import create_tigas_model  # noqa: E402
from tigas_core.score_cache import SCORE_COLUMNS  # noqa: E402

TIGAS_CLI = str(Path(sys.executable).with_name("tigas"))
BAD = {"fake/gan/empty.png": "empty file (0 bytes)", "fake/gan/cut.jpg": "corrupt or truncated image",
       "fake/gan/notes.jpg": "not an image (unrecognised format)"}
OBJECT_STORE_BYTES = 100 * 2**20


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """100 images in the training layout (real/ + fake/gan/, some nested) and three bad files."""
    root = tmp_path_factory.mktemp("ray_images")
    for i in range(100):
        folder = root / ("real" if i < 50 else f"fake/gan/{'epoch2/' if i % 4 == 0 else ''}")
        folder.mkdir(parents=True, exist_ok=True)
        size = (72 + i % 5 * 8, 64 + i % 3 * 8)
        Image.fromarray(natural_like(size[1], size[0], seed=i)).save(folder / f"{i:03d}.{'png' if i % 2 else 'jpg'}")
    (root / "fake/gan/empty.png").write_bytes(b"")
    whole = (root / "real/000.jpg").read_bytes()
    (root / "fake/gan/cut.jpg").write_bytes(whole[: len(whole) // 2])
    (root / "fake/gan/notes.jpg").write_text("a text file with an image's name\n")
    return root


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_pretrained(create_tigas_model(img_size=64, adapter_channels=8, feature_dim=32), tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def tigas(weights) -> TIGAS:
    return TIGAS(str(weights), device="cpu")


@pytest.fixture(scope="module")
def local_ray():
    """A Ray of this process (2 CPUs, a small object store, no dashboard), in its own temp dir
    so the test can tell that none of its processes outlives it."""
    temp_dir = tempfile.mkdtemp(prefix="tigas-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES, _temp_dir=temp_dir)
    yield
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)
    assert_no_process_mentions(temp_dir)


@pytest.fixture(scope="module")
def scored(images, tigas, local_ray, tmp_path_factory) -> ScoredDataset:
    return score_dataset(images, tmp_path_factory.mktemp("ray_out") / "scores.parquet", tigas)


def assert_no_process_mentions(text: str, wait_s: float = 30.0) -> None:
    """No process left whose command line names ``text`` (a Ray temp dir), within ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and text.encode() in (proc / "cmdline").read_bytes():
                    left.append(proc.name)
            except OSError:  # exited while we looked
                continue
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not left, f"Ray processes outlived the test: {left}"


def test_every_file_gets_compute_directorys_row(images, tigas, scored):
    expected = tigas.compute_directory(images, progress=False)
    table = pd.read_parquet(scored.out)
    assert sorted(table["path"]) == sorted(expected["path"])  # every file, bad ones too, once
    assert scored.newly_scored == len(table) == 103
    merged = expected.merge(table, on="path", suffixes=("", "_ray"))
    for column in SCORE_COLUMNS:
        np.testing.assert_allclose(merged[f"{column}_ray"], merged[column], atol=1e-5, err_msg=column)  # NaN == NaN
    assert (merged["verdict_ray"] == merged["verdict"]).all()
    assert (merged["error_ray"] == merged["error"]).all()
    errors = table.set_index("path")["error"]
    for name, reason in BAD.items():
        assert errors[str(images / name)].startswith(reason), name
    assert (errors == "").sum() == 100
    good = table[table["error"] == ""]
    assert all(digest == file_digest(path) for path, digest in zip(good["path"], good["digest"]))
    assert table["node_id"].str.len().eq(56).all()  # Ray node ids: 28 bytes in hex


def test_rerun_scores_only_files_whose_digest_is_new(images, weights, tigas, local_ray, tmp_path):
    folder = tmp_path / "images"
    shutil.copytree(images, folder)
    out = tmp_path / "scores.parquet"
    first = sorted(p.name for p in (folder / "real").iterdir())[:30]
    pd.DataFrame({"path": first}).to_csv(folder / "real/index.csv", index=False)  # an index with relative paths
    assert score_dataset(folder / "real/index.csv", out, tigas).newly_scored == 30

    shutil.copy(folder / "real/001.png", folder / "real/copy_of_001.png")  # content already scored
    rerun = score_dataset(folder, out, tigas)
    table = rerun.table.set_index("path")
    assert len(table) == 104 and not out.with_name(out.name + ".parts").exists()
    assert rerun.newly_scored == 104 - 30 - 1  # neither the 30 nor the copy were scored again
    copy, original = table.loc[str(folder / "real/copy_of_001.png")], table.loc[str(folder / "real/001.png")]
    assert copy["digest"] == original["digest"] and copy["score"] == original["score"]
    assert rerun.table.equals(pd.read_parquet(out))

    with pytest.raises(ValueError, match="another model"):
        score_dataset(folder, out, TIGAS(str(weights), device="cpu", views="mirror"))


def test_cli_refuses_an_unreachable_cluster_in_one_line(images, weights, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.run([TIGAS_CLI, "score", str(images), "-r", "--engine", "ray", "--address", address, "--weights", str(weights),
                           "--out", str(tmp_path / "x.parquet")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert f"cannot reach the Ray cluster at {address}" in proc.stderr and "Traceback" not in proc.stderr


def test_without_ray_installed_the_error_says_how_to_install_it(images, weights, tmp_path):
    blocked = "import sys; sys.modules['ray'] = None; from tigas_core.cli import main; sys.exit(main())"  # as if absent
    proc = subprocess.run([sys.executable, "-c", blocked, "score", str(images), "-r", "--engine", "ray", "--weights", str(weights),
                           "--out", str(tmp_path / "x.parquet")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'pip install "tigas-metric[ray]"' in proc.stderr


def test_two_node_cluster_scores_on_both_nodes_through_the_cli(images, weights, tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="tigas-cluster-", dir="/tmp")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16),
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0",  # a token of this test's own; stop without draining
               RAY_DATA_DEFAULT_WAIT_FOR_MIN_ACTORS_S="120")  # both actors up before any work: rows from both nodes
    port = free_port()
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(start_node(["--head", f"--port={port}", "--include-dashboard=false"], Path(temp_dir) / "head", env))
        wait_for(nodes[-1], Path(temp_dir) / "head.log")
        nodes.append(start_node([f"--address=127.0.0.1:{port}"], Path(temp_dir) / "worker", env))
        wait_for(nodes[-1], Path(temp_dir) / "worker.log")
        out = tmp_path / "cluster.parquet"
        proc = subprocess.run([TIGAS_CLI, "score", str(images), "--recursive", "--engine", "ray", "--address", f"127.0.0.1:{port}",
                               "--workers", "2", "--batch-size", "4", "--weights", str(weights), "--out", str(out)],
                              capture_output=True, text=True, timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Scored 100 of 103 images (3 failed)" in proc.stdout
        table = pd.read_parquet(out)
        assert len(table) == 103
        assert table.loc[table["error"] == "", "node_id"].nunique() == 2  # each node's actor scored some
    finally:
        for node in reversed(nodes):  # SIGTERM: `ray start --block` stops every process it started
            node.send_signal(signal.SIGTERM)
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert_no_process_mentions(temp_dir)


def start_node(options: list[str], temp_dir: Path, env: dict) -> subprocess.Popen:
    """One Ray node (1 CPU, a small object store, its own temp dir) as a `ray start --block` process."""
    command = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--num-cpus=1", "--node-ip-address=127.0.0.1",
               f"--object-store-memory={OBJECT_STORE_BYTES}", f"--temp-dir={temp_dir}", "--disable-usage-stats", *options]
    with open(temp_dir.with_suffix(".log"), "w") as log:  # the node keeps its own copy of the handle
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_for(node: subprocess.Popen, log: Path, timeout_s: float = 90.0) -> None:
    """Until the node says it runs; a node that exits first fails the test with its log."""
    deadline = time.monotonic() + timeout_s
    while "Ray runtime started" not in log.read_text():
        assert node.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


def test_dashboard_opens_a_scores_file_without_scoring(scored, weights, tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TIGAS_DASHBOARD_ROOT", str(scored.out))
    monkeypatch.setenv("TIGAS_WEIGHTS", str(weights))
    monkeypatch.setenv("TIGAS_CACHE_DIR", str(tmp_path / "cache"))
    st.cache_data.clear()
    st.cache_resource.clear()
    app = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "dashboards" / "dashboard.py"), default_timeout=120).run()
    assert not app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["images"] == "103" and metrics["newly scored"] == "0" and metrics["unreadable"] == "3"
    summary = app.dataframe[0].value.set_index("generator")
    assert summary["n"].to_dict() == {"real": 50, "gan": 50} and summary["failed"].to_dict() == {"real": 0, "gan": 3}
    table = pd.read_parquet(scored.out)
    real = table[table["path"].str.contains("/real/")]
    assert summary.loc["real", "mean"] == pytest.approx(real["score"].mean())


def test_one_file_one_score_through_every_face(images, weights, tigas, scored, tmp_path):
    """The same files through the Python API, the CLI, the dashboard's score cache, Ray and the
    app's HTTP API: one default view policy, so one score each (the app is another process,
    whose float order through the trunk differs in the last digits)."""
    from gradio_client import Client, handle_file

    from tigas_core.score_cache import ScoreCache

    api = tigas.compute_directory(images, recursive=True, progress=False).set_index("path")["score"].dropna()
    out = tmp_path / "cli.csv"
    done = subprocess.run([TIGAS_CLI, "score", str(images), "-r", "--weights", str(weights), "--csv", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    faces = {"cli": pd.read_csv(out).set_index("path")["score"],
             "dashboard": ScoreCache(tigas, tmp_path / "cache").score(list(api.index)).table.set_index("path")["score"],
             "ray": pd.read_parquet(scored.out).set_index("path")["score"]}
    for face, scores in faces.items():
        assert np.allclose(scores.reindex(api.index).to_numpy(), api.to_numpy(), atol=1e-5), face
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [TIGAS_CLI, "app", "--weights", str(weights), "--port", str(port), "--share", "false"]
    with LocalServer(command, f"http://127.0.0.1:{port}/config", tmp_path / "app.log", env, 300):
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for path in api.index[::20]:
            assert client.predict(handle_file(path), api_name="/score")["score"] == pytest.approx(api[path], abs=5e-3), path
