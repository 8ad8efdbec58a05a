"""Evaluation: metrics against sklearn and hand computation, and a full report with every field."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from tigas_synthetic import make_dataset

from tigas_core.data import scan_folder, split_records
from tigas_core.metrics.evaluation import CONDITIONS, binary_metrics, evaluate, expected_calibration_error, render_markdown


def test_binary_metrics_match_sklearn_and_hand_computation():
    scores = np.array([0.9, 0.5, 0.6, 0.3, 0.8, 0.2])
    labels = np.array([1, 1, 0, 0, 1, 0])
    m = binary_metrics(scores, labels, threshold=0.55)
    # real/fake pairs: reals 0.9, 0.5, 0.8 vs fakes 0.6, 0.3, 0.2 -> 8 of 9 ordered correctly
    assert m["auroc"] == pytest.approx(8 / 9) == pytest.approx(roc_auc_score(labels, scores))
    assert m["ap"] == pytest.approx(average_precision_score(1 - labels, 1 - scores))
    # at 0.55: reals 2/3 correct, fakes 2/3 correct
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert (m["n_real"], m["n_fake"]) == (3, 3)
    assert math.isnan(binary_metrics(scores[:2], labels[:2])["auroc"])


def test_ece_zero_when_calibrated_and_hand_value_otherwise():
    labels = np.array([1] * 7 + [0] * 3 + [1] * 2 + [0] * 8)
    scores = np.array([0.7] * 10 + [0.2] * 10)  # 70% real at 0.7, 20% real at 0.2
    assert expected_calibration_error(scores, labels, balanced=False) == pytest.approx(0.0, abs=1e-12)
    overconfident = np.array([0.95] * 10 + [0.05] * 10)
    # |0.7 - 0.95| and |0.2 - 0.05|, each on half the mass
    assert expected_calibration_error(overconfident, labels, balanced=False) == pytest.approx(0.5 * 0.25 + 0.5 * 0.15)
    assert 0 <= expected_calibration_error(overconfident, labels) <= 1


def test_full_report_has_every_field(tigas, tmp_path, weights_dir):
    root = make_dataset(tmp_path / "data", n_real=24, fakes={"gan-a": 10, "gan-b": 6}, size=40)
    (root / "fake" / "gan-a" / "broken.png").write_bytes(b"\x89PNG broken")
    splits = split_records(scan_folder(root), seed=0, train_split=0.6, val_split=0.1, holdout_generators=["gan-b"])
    report = evaluate(tigas, splits, holdout_generators=["gan-b"], batch_size=16, progress=False)
    assert report["conditions"] == list(CONDITIONS)
    assert len(report["test_errors"]) + sum(r["n_fake"] for r in report["generators"]) >= 6
    groups = {r["generator"]: r["group"] for r in report["generators"]}
    assert groups["gan-b"] == "held-out" and groups.get("gan-a", "seen") == "seen"
    for row in report["generators"]:
        assert set(row["metrics"]) == {"tigas", "spectrum_baseline", "format_size_baseline"}
        assert set(row["metrics"]["tigas"]) == set(CONDITIONS)
        assert set(row["metrics"]["format_size_baseline"]) == {"clean", "common_format_jpeg_q90"}
        for metrics in row["metrics"]["tigas"].values():
            assert set(metrics) == {"auroc", "ap", "accuracy", "ece", "n_real", "n_fake"}
            assert 0 <= metrics["auroc"] <= 1 and 0 <= metrics["ece"] <= 1
    # on this synthetic set the file format alone separates the classes (JPEG reals, PNG fakes) ...
    assert report["pooled"]["format_size_baseline"]["clean"]["auroc"] > 0.95
    # ... and TIGAS's numbers match sklearn on the scores it produced
    scores = report["pooled"]["tigas"]["clean"]
    assert scores["n_real"] + scores["n_fake"] == len(splits["test"]) - len(report["test_errors"])
    assert "held-out" in report["summary"] and "tigas_auroc_drop_jpeg_q75" in report["summary"]["held-out"]
    markdown = render_markdown(report, "tigas evaluate --data DIR")
    assert "## held-out generators" in markdown and "gan-b" in markdown and "format/size" in markdown
    json.dumps(report)  # JSON-able


def test_evaluate_cli_writes_json_and_markdown(tmp_path, weights_dir):
    from tigas_core.cli import main

    root = make_dataset(tmp_path / "data", n_real=12, fakes={"gan-a": 6}, size=36)
    out = tmp_path / "report.json"
    assert main(["evaluate", "--data", str(root), "--weights", str(weights_dir), "--out", str(out), "--train-split", "0.5",
                 "--no-progress", "--threads", "1", "--max-per-generator", "4"]) == 0
    report = json.loads(out.read_text())
    assert report["generators"][0]["generator"] == "gan-a"
    assert report["scored_test_images"] <= 8 and report["generators"][0]["n_real"] <= 4
    assert out.with_suffix(".md").read_text().startswith("# TIGAS evaluation")


def test_evaluate_refuses_a_test_split_the_weights_were_trained_on(tmp_path, weights_dir, capsys):
    import shutil

    from tigas_core.cli import main
    from tigas_core.data import load_records
    from tigas_core.hub import write_training_split

    root = make_dataset(tmp_path / "data", n_real=12, fakes={"gan-a": 6}, size=36)
    weights = shutil.copytree(weights_dir, tmp_path / "weights")
    write_training_split(weights, [r.path for r in load_records([root])])  # as if trained on all of it
    args = ["evaluate", "--data", str(root), "--weights", str(weights), "--out", str(tmp_path / "r.json"), "--no-progress"]
    assert main(args) == 2
    assert "were used to train these weights" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()
