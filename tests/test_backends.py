"""The stages under Keras' JAX backend (CPU): each kind of model stage runs, names its
backend and tags its MLflow run, and a killed and resumed training ends as an unbroken one.
(The model, augmentation and predict tests marked `backends` run under JAX too: `make
test`'s second pass.) Both train on a subset of the tiny run's frames: LRCN on 10 clips per
class and split (7 batches an epoch: more than the 4 the reading threads queue, or the
resume check would mean nothing), the backbone on 4."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import run_cmd, run_to_failpoint, stage_project, tracking_client

pytestmark = pytest.mark.slow

JAX = {"KERAS_BACKEND": "jax"}


def _tags(project: Path, arch: str) -> dict[str, str]:
    run_id = json.loads((project / "models" / arch / "meta.json").read_text())["mlflow_run_id"]
    return tracking_client(project).get_run(run_id).data.tags


def _report(project: Path, arch: str) -> tuple[dict, np.ndarray]:
    report = project / "reports" / "evaluate" / arch
    metrics = json.loads((report / "metrics.json").read_text())
    probs = pd.read_csv(report / "predictions.csv").drop(columns=["video", "group", "actual"])
    return metrics, probs.to_numpy()


def test_lrcn_under_jax_killed_and_resumed_ends_as_an_unbroken_run(tiny_run, tmp_path):
    """train@lrcn (3 epochs, the tiny profile's augmentation, dropout and reading threads)
    under JAX, once unbroken and once killed while writing epoch 3's random-number states
    (resumed after epoch 2):
    the stage prints the backend, MLflow has it as a tag, and both end on the same history
    and the same weights, bit for bit (which also shows that training repeats itself);
    evaluate@lrcn runs under JAX too. (Keras' JAX trainer once served the resumed epoch
    batches read ahead in epoch 0's order: training.build_before_fit.)"""
    pytest.importorskip("jax", reason="JAX is not installed (`pip install -e .[dev]`)")
    import keras

    import actionrec.models.layers  # noqa: F401  (registers the custom layers for loading)

    runs = []
    for name in ("unbroken", "resumed"):
        project = stage_project(tiny_run, tmp_path / name, epochs=3, uri=None, clips=10)
        if name == "resumed":
            killed = run_to_failpoint(["actionrec", "train", "lrcn"], project, "random~@3",
                                      env=JAX)
            assert "Epoch 3/3" in killed, killed[-2000:]
        train = run_cmd(["actionrec", "train", "lrcn"], cwd=project, env=JAX)
        assert "train@lrcn: Keras" in train.stderr and "backend jax" in train.stderr
        assert ("Epoch 1/3" in train.stdout) == (name == "unbroken"), train.stdout[-2000:]
        assert ("resuming after epoch 2 " in train.stdout) == (name == "resumed")
        assert _tags(project, "lrcn")["keras_backend"] == "jax"
        model = keras.models.load_model(project / "models" / "lrcn" / "model.keras")
        runs.append((pd.read_csv(project / "models" / "lrcn" / "history.csv"),
                     model.get_weights()))
    (history_a, weights_a), (history_b, weights_b) = runs
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)
    assert all(np.array_equal(a, b) for a, b in zip(weights_a, weights_b, strict=True))
    evaluate = run_cmd(["actionrec", "evaluate", "lrcn"], cwd=project, env=JAX)
    assert "evaluate@lrcn: Keras" in evaluate.stderr and "backend jax" in evaluate.stderr
    metrics, probs = _report(project, "lrcn")
    assert metrics["n_test"] == len(probs) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)


def test_a_backbone_extracts_features_and_its_head_trains_under_jax(tiny_run, tmp_path):
    """extract_features@vgg16_bilstm (random weights, 32 px) and train@ on the features,
    under JAX, on the tiny profile's frames. (The whole network on frames under JAX, what
    evaluate@ runs, is test_models' backbone-and-head test in `make test`'s JAX pass.)
    VGG16: the same code of ours as the other backbones, and the cheapest to compile
    (InceptionV3 at 75 px made this test 64 s)."""
    pytest.importorskip("jax", reason="JAX is not installed (`pip install -e .[dev]`)")
    arch = "vgg16_bilstm"
    project = stage_project(tiny_run, tmp_path / "project", epochs=2, uri=None, arch=arch,
                            clips=4)

    extract = run_cmd(["actionrec", "extract-features", arch, "--frames", "data/frames",
                       "--out", f"data/features/{arch}"], cwd=project, env=JAX)
    assert "backend jax" in extract.stderr
    store = project / "data" / "features" / arch
    ours = np.concatenate([np.load(p) for p in sorted((store / "shards").glob("train-*.npy"))])
    manifest = pd.read_csv(project / "data" / "manifest.csv")
    length = yaml.safe_load((project / "params.yaml").read_text())["frames"]["sequence_length"]
    assert ours.shape == ((manifest["split"] == "train").sum(), length, 512)  # VGG16's
    assert np.isfinite(ours).all() and np.abs(ours).max() > 0
    train = run_cmd(["actionrec", "train", arch], cwd=project, env=JAX)
    assert "backend jax" in train.stderr
    assert _tags(project, arch)["keras_backend"] == "jax"
    assert (project / "models" / arch / "model.keras").stat().st_size > 0
