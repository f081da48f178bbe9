"""`actionrec sweep` (sweep.py): Optuna studies that several worker processes share, on the
local SQLite store and on the team server's PostgreSQL. Trials are MLflow child runs of the
sweep's run; a bad trial is pruned from its epoch metric; a killed worker's trial is failed
and run again by the other; the best trial's `dvc exp run -S ...` reproduces its test
metrics through the pipeline. LRCN, a few epochs per trial: on the tiny run (DVC), and on
24 synthetic clips for the killed worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from actionrec import sweep
from actionrec.config import load_params
from actionrec.errors import ConfigError
from tests.helpers import (
    REPO,
    command_env,
    copy_project,
    run_cmd,
    synth_stage_project,
    tracking_client,
)


def _set_sweep(project: Path, epochs: int, **sweep) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["models"]["lrcn"]["epochs"] = epochs
    raw["models"]["lrcn"]["early_stopping_patience"] = epochs
    raw["sweep"] = {**raw.get("sweep", {}), **sweep}
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _worker(project: Path, log: Path, *args: str, env: dict[str, str] | None = None,
            ) -> subprocess.Popen:
    """Start `actionrec sweep lrcn ...` in its own process group, output to ``log``."""
    return subprocess.Popen(["actionrec", "sweep", "lrcn", *args], cwd=project,
                            env=command_env(env),
                            stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _study(storage: str, name: str):
    import optuna

    # the test reads the storage while worker A may be creating it: open it as workers do
    return optuna.load_study(study_name=name, storage=sweep.open_storage(storage))


def _wait_for(predicate, procs: list[subprocess.Popen], logs: list[Path], what: str,
              timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc, log in zip(procs, logs, strict=True):
            assert proc.poll() is None, f"worker ended before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} in {timeout:.0f} s"
        time.sleep(0.5)


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 900) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = log.read_text()
    assert proc.returncode == 0, out[-4000:]
    return out


def _by_slot(study) -> dict[int, list]:
    """Each slot's trials that finished (COMPLETE or PRUNED)."""
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    slots: dict[int, list] = {}
    for t in study.get_trials(states=done):
        slots.setdefault(t.user_attrs["actionrec_slot"], []).append(t)
    return slots


@pytest.mark.slow
def test_two_workers_share_a_study_prune_a_bad_trial_and_the_best_reproduces_through_dvc(
        tiny_run, tmp_path):
    """Local SQLite store. Worker A creates the study (4 slots: the tiny profile's learning
    rate first, then 1e-9, which learns nothing, then two drawn); worker B starts once the
    first trial is done and joins. The 1e-9 trial is pruned at its first epoch (below the
    median of the finished one); every slot ends exactly once, both workers ran trials, all
    are child runs of the sweep's MLflow run. The printed `dvc exp run -S ...` retrains the
    best trial through the pipeline: its test metrics are the trial's, within the gate's
    tolerance."""
    import optuna

    repo = copy_project(tiny_run, tmp_path / "repo")
    base_lr = yaml.safe_load((repo / "params.yaml").read_text())["models"]["lrcn"][
        "learning_rate"]
    _set_sweep(repo, epochs=2, space={"learning_rate": {"low": 1e-9, "high": 3e-3, "log": True}},
               enqueue=[{"learning_rate": base_lr}, {"learning_rate": 1e-9}],
               pruner_startup_trials=1, pruner_warmup_epochs=0, heartbeat_s=5)
    run_cmd(["git", "commit", "-qam", "sweep settings"], cwd=repo)
    storage = f"sqlite:///{repo / 'sweeps' / 'optuna.db'}"
    name = "actionrec-lrcn-tiny"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = _worker(repo, logs[0], "--trials", "4")

    def first_done() -> bool:
        if not (repo / "sweeps" / "optuna.db").exists():
            return False
        try:
            return bool(_study(storage, name).get_trials(
                states=(optuna.trial.TrialState.COMPLETE,)))
        except KeyError:  # the study is not created yet
            return False

    _wait_for(first_done, [a], logs[:1], "finished trial")
    b = _worker(repo, logs[1], "--trials", "4")
    out_a, out_b = _finish(a, logs[0]), _finish(b, logs[1])
    assert "created study" in out_a and "joined study" in out_b, out_b[-2000:]

    study = _study(storage, name)
    slots = _by_slot(study)
    assert sorted(slots) == [0, 1, 2, 3] and all(len(v) == 1 for v in slots.values()), slots
    assert slots[1][0].state == optuna.trial.TrialState.PRUNED
    assert slots[1][0].params["learning_rate"] == pytest.approx(1e-9)
    assert slots[0][0].state == optuna.trial.TrialState.COMPLETE
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,
                                        optuna.trial.TrialState.WAITING))
    assert len({t[0].user_attrs["worker"] for t in slots.values()}) == 2  # both ran trials

    client = tracking_client(repo)
    parent = study.user_attrs["mlflow_parent_run_id"]
    run = client.get_run(parent)
    assert run.info.status == "FINISHED"
    command = run.data.tags["sweep.best_command"]
    assert command in out_a + out_b and command.startswith("dvc exp run -S ")
    for trial in (t[0] for t in slots.values()):
        child = client.get_run(trial.user_attrs["mlflow_run_id"])
        assert child.data.tags["mlflow.parentRunId"] == parent
        assert float(child.data.params["model.learning_rate"]) == pytest.approx(
            trial.params["learning_rate"])
        assert child.data.tags["sweep.state"] == trial.state.name

    best = study.best_trial
    run = run_cmd(["bash", "-c", command], cwd=repo, timeout=1200)
    assert "Running stage 'train@lrcn'" in run.stdout
    reproduced = json.loads((repo / "reports" / "evaluate" / "lrcn" / "metrics.json")
                            .read_text())
    gate = load_params(repo / "params.yaml").gate
    for key, value in best.user_attrs["test_metrics"].items():
        assert abs(reproduced[key] - value) <= gate.tolerance_for("lrcn"), (
            key, reproduced[key], value)
    # On one machine the pipeline's stage, a fresh process, retrains the trial bit for bit
    # (history and weights), whatever trials ran before it in the worker's process: the
    # training's determinism across processes (augmentation and dropout on, as the tiny
    # profile has them).
    import keras

    import actionrec.models.layers  # noqa: F401  (the custom layers, for loading)

    trial_model = repo / "sweeps" / name / f"trial-{best.number}" / "model"
    pairs = zip(*(keras.models.load_model(d / "model.keras", safe_mode=True).get_weights()
                  for d in (trial_model, repo / "models" / "lrcn")), strict=True)
    assert all(np.array_equal(a, b) for a, b in pairs)
    assert (trial_model / "history.csv").read_text() == (
        repo / "models" / "lrcn" / "history.csv").read_text()


@pytest.mark.slow
def test_a_killed_workers_trial_fails_and_the_other_worker_runs_it_again_on_postgresql(
        team_server, synth_dir, tmp_path, monkeypatch):
    """The team server's PostgreSQL as the storage, two workers started together (one
    creates the study, the other joins it), two slots. Worker A kills itself (SIGKILL, a
    failpoint) in the middle of its first trial, once epoch 2 is committed: that trial ends
    FAILED (heartbeats stop; its MLflow run KILLED), not RUNNING forever; worker B, done
    with its own, runs it again with the same settings and completes the study: both slots,
    each finished once."""
    import optuna
    from mlflow import MlflowClient
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    uri = team_server.tracking_uri
    # the 24 synthetic clips; worker A's failpoint ends it after epoch 2 of its first trial
    project = synth_stage_project(synth_dir, tmp_path / "project", uri=uri)
    _set_sweep(project, epochs=4, pruner="none", heartbeat_s=4,
               space={"learning_rate": {"low": 5e-4, "high": 3e-3, "log": True}})
    env = {"PGPASSFILE": str(team_server.pgpass_file)}
    monkeypatch.setenv("PGPASSFILE", env["PGPASSFILE"])  # this process reads the study too
    storage = team_server.optuna_storage
    name = "killed-worker"
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a = _worker(project, logs[0], "--trials", "2", "--storage", storage, "--study", name,
                env={**env, "ACTIONREC_FAILPOINT": "committed@2"})
    b = _worker(project, logs[1], "--trials", "2", "--storage", storage, "--study", name,
                env=env)
    mine = f":{a.pid}"
    assert a.wait(timeout=600) == -signal.SIGKILL, logs[0].read_text()[-3000:]
    assert "failpoint committed@2: killing this process" in logs[0].read_text()
    out_b = _finish(b, logs[1])

    study = _study(storage, name)
    killed = [t for t in study.get_trials(states=(optuna.trial.TrialState.FAIL,))
              if t.user_attrs.get("worker", "").endswith(mine)]
    assert len(killed) == 1, study.trials
    retried = [t for t in study.trials
               if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed[0].number]
    assert len(retried) == 1 and retried[0].state == optuna.trial.TrialState.COMPLETE
    assert retried[0].params == killed[0].params
    assert retried[0].user_attrs["actionrec_slot"] == killed[0].user_attrs["actionrec_slot"]
    slots = _by_slot(study)
    assert sorted(slots) == [0, 1] and all(len(v) == 1 for v in slots.values()), slots
    assert "stopped sending heartbeats" in out_b and "best trial" in out_b
    client = MlflowClient(uri)
    assert client.get_run(killed[0].user_attrs["mlflow_run_id"]).info.status == "KILLED"
    assert client.get_run(study.user_attrs["mlflow_parent_run_id"]).info.status == "FINISHED"


def test_a_bad_search_space_is_refused_before_any_trial(tmp_path):
    """A key that is not a setting of the architecture, one that would change the stored
    frames, and a bound params.yaml refuses: one error each, naming it; nothing created."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text((REPO / "params.yaml").read_text())
    for space, message in (
            ({"filterz": {"low": 1, "high": 4}}, "sweep.space.filterz: not a setting of "
                                                 "models.lrcn"),
            ({"image_size": {"choices": [32, 48]}}, "changes the frames or features"),
            ({"dropout": {"low": 0.1, "high": 1.5}}, "sweep.space.dropout = 1.5")):
        _set_sweep(project, epochs=2, space=space)
        proc = run_cmd(["actionrec", "sweep", "lrcn", "--trials", "2"], cwd=project,
                       check=False)
        assert proc.returncode == 1 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (project / "sweeps").exists()
    with pytest.raises(ConfigError, match="give low and high"):
        _set_sweep(project, epochs=2, space={"dropout": {"low": 0.1}})
        load_params(project / "params.yaml")


def _open_each(urls: list[str], barrier, results) -> None:
    """A worker process: open each new storage at the same moment as the others."""
    import optuna  # noqa: F401 - imported before the first barrier, so all start at once

    for url in urls:
        barrier.wait()
        try:
            sweep.open_storage(url)
            results.put((url, "opened"))
        except Exception as e:  # noqa: BLE001 - the test reports what failed
            results.put((url, f"{type(e).__name__}: {str(e).splitlines()[0]}"))


def test_workers_that_open_a_new_storage_at_the_same_moment_all_open_it(tmp_path):
    """Four processes open one new SQLite storage at once, three times. Plain
    ``optuna.storages.RDBStorage`` failed in 8 of 10 such rounds here (``table studies already
    exists``, ``UNIQUE constraint failed: alembic_version.version_num``); CI lost a sweep test
    to it. (Spawned, not forked: this test process may run TensorFlow's threads.)"""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    urls = [f"sqlite:///{tmp_path / f'optuna-{k}.db'}" for k in range(3)]
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_open_each, args=(urls, barrier, results)) for _ in range(4)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in range(len(urls) * len(procs))]
    for proc in procs:
        proc.join(timeout=60)
    assert sorted(outcomes) == sorted((url, "opened") for url in urls for _ in procs), outcomes
    for url in urls:
        assert sweep.open_storage(url).get_all_studies() == []


def test_a_storage_that_cannot_be_opened_fails_at_once(tmp_path):
    """Only the creation race is retried: a database that cannot be opened fails on the first
    attempt."""
    import sqlalchemy.exc

    started = time.monotonic()
    with pytest.raises(sqlalchemy.exc.OperationalError, match="unable to open database"):
        sweep.open_storage(f"sqlite:///{tmp_path / 'no-such-dir' / 'optuna.db'}")
    assert time.monotonic() - started < 1.5
