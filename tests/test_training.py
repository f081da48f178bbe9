"""`actionrec train` (training.py) repeats itself: two runs with the same params end on
the same test metrics and probabilities, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.helpers import run_cmd, stage_project

pytestmark = pytest.mark.slow


def _train_eval(tiny_run: Path, run: Path) -> dict:
    """train@convlstm (two epochs: determinism shows in two; saves CI time) and
    evaluate@convlstm in a fresh stage project at ``run``: test metrics and probabilities."""
    repo = stage_project(tiny_run, run, epochs=2, uri=None, arch="convlstm", clips=4)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["mlflow"].update(register=False, experiment="determinism")
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    run_cmd(["actionrec", "train", "convlstm"], cwd=repo, timeout=900)
    run_cmd(["actionrec", "evaluate", "convlstm"], cwd=repo, timeout=900)
    report = repo / "reports" / "evaluate" / "convlstm"
    metrics = json.loads((report / "metrics.json").read_text())
    metrics.pop("latency_ms")
    probs = pd.read_csv(report / "predictions.csv")
    return {"metrics": metrics, "probs": probs.drop(columns=["video", "actual"]).to_numpy()}


def test_two_runs_with_the_same_params_give_identical_test_metrics(tiny_run, tmp_path):
    a = _train_eval(tiny_run, tmp_path / "a")
    b = _train_eval(tiny_run, tmp_path / "b")
    assert a["metrics"] == b["metrics"]
    assert np.array_equal(a["probs"], b["probs"])
