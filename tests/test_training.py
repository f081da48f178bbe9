"""`actionrec train` (training.py) repeats itself: two runs with the same params end on
the same history and the same weights, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import run_cmd, stage_project

pytestmark = pytest.mark.slow


def _train(tiny_run: Path, run: Path) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """train@convlstm (two epochs, the tiny profile's augmentation and dropout: determinism
    shows in two) in a fresh stage project at ``run``: its history and its weights."""
    import keras

    import actionrec.models.layers  # noqa: F401  (the custom layers, for loading)

    repo = stage_project(tiny_run, run, epochs=2, uri=None, arch="convlstm", clips=4)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["mlflow"].update(register=False, experiment="determinism")
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    run_cmd(["actionrec", "train", "convlstm"], cwd=repo, timeout=900)
    model = keras.models.load_model(repo / "models" / "convlstm" / "model.keras", safe_mode=True)
    return pd.read_csv(repo / "models" / "convlstm" / "history.csv"), model.get_weights()


def test_two_runs_with_the_same_params_end_on_the_same_weights_bit_for_bit(tiny_run, tmp_path):
    """Same params, two processes: the same history (losses, metrics, learning rate) and
    the same weights, bit for bit, so the same test metrics and probabilities too
    (evaluate@ is inference on those weights). Determinism under JAX: test_backends."""
    history_a, weights_a = _train(tiny_run, tmp_path / "a")
    history_b, weights_b = _train(tiny_run, tmp_path / "b")
    pd.testing.assert_frame_equal(history_a, history_b, check_exact=True)
    assert all(np.array_equal(a, b) for a, b in zip(weights_a, weights_b, strict=True))
