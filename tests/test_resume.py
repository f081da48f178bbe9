"""An interrupted training (SIGKILL) resumes from its last epoch as one MLflow run, and
only the run that made the state resumes it (resume.py): a changed learning rate starts
afresh; killed and resumed, it ends on the weights of an unbroken run. (Every point of an
epoch's commit where a kill can land, under both backends: test_checkpoint.py.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from actionrec import resume
from tests.helpers import run_cmd, run_to_failpoint, stage_project, tracking_client

pytestmark = pytest.mark.slow

#: Clips per class and split (40 training clips: 5 steps an epoch, under a second), and
#: epochs (the kills are failpoints: no epochs to spare are needed for a loaded machine).
CLIPS, EPOCHS = 10, 4


def _resume_project(tiny_run: Path, path: Path, epochs: int, experiment: str,
                    learning_rate: float | None = None) -> tuple[Path, list[str], Path, Path]:
    """An LRCN stage project: ``(project, train command, work folder, model folder)``."""
    repo = stage_project(tiny_run, path, epochs=epochs, uri=None, clips=CLIPS)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["mlflow"].update(register=False, experiment=experiment)
    if learning_rate is not None:
        params["models"]["lrcn"]["learning_rate"] = learning_rate
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    work, out = path / "work", path / "model"
    cmd = [str(Path(sys.executable).parent / "actionrec"), "train", "lrcn", "--out", str(out),
           "--work", str(work)]
    return repo, cmd, work, out


def test_a_killed_training_resumes_only_the_run_that_made_its_state(tiny_run, tmp_path):
    """LRCN, 4 epochs, killed (SIGKILL) once epoch 2 is committed; the learning rate
    changed, it is killed again while writing epoch 3's state: resume belongs to the run
    that made the state, so the second start discards it (one line says why) and the first
    MLflow run ends KILLED. The third start resumes the second after its last whole epoch
    (2), as one MLflow run with every epoch, removes the state, and ends on the weights of
    an unbroken run with the new learning rate, bit for bit."""
    repo, cmd, work, out = _resume_project(tiny_run, tmp_path / "a", EPOCHS, "resume")
    run_to_failpoint(cmd, repo, "committed@2")
    assert not (out / "model.keras").exists()
    old_run = (work / "lrcn" / "mlflow_run_id").read_text().strip()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"]["lrcn"]["learning_rate"] = 0.0005
    (repo / "params.yaml").write_text(yaml.safe_dump(params))

    second = run_to_failpoint(cmd, repo, "weights~@3")
    assert "train@lrcn: not resuming the interrupted run" in second
    assert "models.lrcn.learning_rate 0.001 -> 0.0005" in second
    assert f"Epoch 1/{EPOCHS}" in second and f"Epoch 3/{EPOCHS}" in second
    done = 2  # epoch 3's state was cut off while written
    client = tracking_client(repo)
    assert client.get_run(old_run).info.status == "KILLED"

    third = run_cmd(cmd, cwd=repo, timeout=900)
    assert f"Epoch 1/{EPOCHS}" not in third.stdout and "not resuming" not in third.stdout
    assert "discarding the unfinished state of epoch 3" in third.stdout
    assert f"resuming after epoch {done} " in third.stdout
    assert f"Epoch {done + 1}/{EPOCHS}" in third.stdout
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == list(range(EPOCHS))
    assert not resume.has_state(work / "lrcn")  # resumable state removed after success
    new_run = json.loads((out / "meta.json").read_text())["mlflow_run_id"]
    assert new_run != old_run and client.get_run(new_run).info.status == "FINISHED"
    assert client.get_run(new_run).data.params["model.learning_rate"] == "0.0005"
    steps = {m.step for m in client.get_metric_history(new_run, "train_loss")}
    assert steps == set(range(EPOCHS))  # one run, resumed, no epoch lost

    ref_repo, ref_cmd, _, ref_out = _resume_project(tiny_run, tmp_path / "b", EPOCHS,
                                                    "resume-unbroken", learning_rate=0.0005)
    run_cmd(ref_cmd, cwd=ref_repo, timeout=900)
    import actionrec.models.layers  # noqa: F401  (the custom layers, for loading)

    got = keras.models.load_model(out / "model.keras", safe_mode=True).get_weights()
    want = keras.models.load_model(ref_out / "model.keras", safe_mode=True).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
