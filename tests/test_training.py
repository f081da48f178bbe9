"""training.py's resume step on its own (:func:`actionrec.training.claim_state`), on a real
MLflow SQLite store. The whole recipe runs in the stages: test_resume (kills and resumes),
test_checkpoint (the commit points), test_parallel (devices and hosts), test_sweep (a
sweep's hooks)."""

from __future__ import annotations

from pathlib import Path

from actionrec import multihost, resume
from actionrec.training import claim_state


def _state(work: Path, fp: dict, run_id: str) -> None:
    """A work folder as an interrupted training leaves it: its fingerprint, its run id,
    an epoch's state."""
    resume.claim(work, fp)
    (work / "mlflow_run_id").write_text(run_id)
    (work / "state" / "epoch-2").mkdir(parents=True)


def test_the_same_run_is_resumed_and_another_starts_afresh(tmp_path, capsys):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run_id = client.create_run(client.create_experiment("e")).info.run_id
    work = tmp_path / "work"
    fp = resume.fingerprint({"models.lrcn.learning_rate": 0.001}, [], modules=[])
    _state(work, fp, run_id)

    assert claim_state(work, fp, multihost.SINGLE, "lrcn", uri) == (run_id, work)
    assert (work / "state" / "epoch-2").is_dir()  # kept: the same run resumes it

    changed = resume.fingerprint({"models.lrcn.learning_rate": 0.0002}, [], modules=[])
    assert claim_state(work, changed, multihost.SINGLE, "lrcn", uri) == (None, work)
    assert not (work / "state").exists()  # emptied: its epochs were another run's
    assert "changed: models.lrcn.learning_rate 0.001 -> 0.0002" in capsys.readouterr().out
    assert client.get_run(run_id).info.status == "KILLED"  # never left RUNNING
