"""The stages under Keras' JAX backend (CPU): each kind of model stage runs, names its
backend, tags its MLflow run, and repeats itself exactly. (The model, augmentation and
predict tests run under JAX too: `make test`'s second pass.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import lrcn_project, run_cmd

pytestmark = pytest.mark.slow

JAX = {"KERAS_BACKEND": "jax"}


def _tags(project: Path, arch: str) -> dict[str, str]:
    from mlflow import MlflowClient

    run_id = json.loads((project / "models" / arch / "meta.json").read_text())["mlflow_run_id"]
    client = MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")
    return client.get_run(run_id).data.tags


def _report(project: Path, arch: str) -> tuple[dict, np.ndarray]:
    report = project / "reports" / "evaluate" / arch
    metrics = json.loads((report / "metrics.json").read_text())
    metrics.pop("latency_ms")
    probs = pd.read_csv(report / "predictions.csv").drop(columns=["video", "actual"])
    return metrics, probs.to_numpy()


def test_lrcn_trains_and_evaluates_under_jax_and_two_runs_agree_exactly(tiny_run, tmp_path):
    """train@lrcn (2 epochs, the tiny profile's augmentation and dropout) and evaluate@lrcn
    twice under JAX: the stage prints the backend, MLflow has it as a tag, and the two runs
    give the same metrics and the same probabilities, bit for bit."""
    pytest.importorskip("jax", reason="JAX is not installed (`pip install -e .[dev]`)")
    reports = []
    for name in ("a", "b"):
        project = lrcn_project(tiny_run, tmp_path / name, epochs=2, uri=None)
        train = run_cmd(["actionrec", "train", "lrcn"], cwd=project, env=JAX)
        assert "train@lrcn: Keras" in train.stderr and "backend jax" in train.stderr
        evaluate = run_cmd(["actionrec", "evaluate", "lrcn"], cwd=project, env=JAX)
        assert "evaluate@lrcn: Keras" in evaluate.stderr and "backend jax" in evaluate.stderr
        assert _tags(project, "lrcn")["keras_backend"] == "jax"
        reports.append(_report(project, "lrcn"))
    (metrics_a, probs_a), (metrics_b, probs_b) = reports
    assert metrics_a == metrics_b
    assert np.array_equal(probs_a, probs_b)


def test_a_backbone_extracts_features_and_its_head_trains_under_jax(tiny_run, tmp_path):
    """extract_features@inceptionv3_gru (random weights, 75 px), train@ on the features and
    evaluate@ of the whole network on frames, all under JAX, on the tiny run's frames."""
    pytest.importorskip("jax", reason="JAX is not installed (`pip install -e .[dev]`)")
    arch = "inceptionv3_gru"
    project = tmp_path / "project"
    (project / "data" / "frames").mkdir(parents=True)
    for name in ("classes.json", "manifest.csv"):
        shutil.copy(tiny_run / "data" / name, project / "data" / name)
    raw = yaml.safe_load((tiny_run / "params.yaml").read_text())
    raw["models"][arch].update(epochs=2)
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    size = str(raw["models"][arch]["image_size"])
    shutil.copytree(tiny_run / "data" / "frames" / size, project / "data" / "frames" / size)

    extract = run_cmd(["actionrec", "extract-features", arch, "--frames", "data/frames",
                       "--out", f"data/features/{arch}"], cwd=project, env=JAX)
    assert "backend jax" in extract.stderr
    store = project / "data" / "features" / arch
    ours = np.load(store / "train.npy")
    assert ours.shape == np.load(tiny_run / "data" / "features" / arch / "train.npy").shape
    assert np.isfinite(ours).all() and np.abs(ours).max() > 0
    run_cmd(["actionrec", "train", arch], cwd=project, env=JAX)
    run_cmd(["actionrec", "evaluate", arch], cwd=project, env=JAX)
    assert _tags(project, arch)["keras_backend"] == "jax"
    metrics, probs = _report(project, arch)
    assert metrics["n_test"] == len(probs) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
