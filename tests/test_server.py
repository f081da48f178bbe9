"""The team MLflow server (server.py): a real `mlflow server` on a real PostgreSQL (initdb +
pg_ctl on free 127.0.0.1 ports in a temporary folder). Runs, models and the registry
alias survive restarts; the password is on no command line; backup and restore; a server
lost mid-training keeps the model, and `actionrec track` logs it later. Skipped, with the
reason, where PostgreSQL's programs are absent."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import command_env, free_port, run_cmd, stage_project, wait_until_paused


def _train(project: Path, **kw) -> subprocess.CompletedProcess:
    return run_cmd(["actionrec", "train", "lrcn"], cwd=project, **kw)


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


#: Epochs of the lost-server test, on 4 clips per class and split (2 steps an epoch): one
#: before the pause, two with the server gone.
EPOCHS = 3


@pytest.mark.slow
def test_team_server_keeps_runs_models_and_alias_across_restarts(team_server, tiny_run,
                                                                 tmp_path):
    from actionrec.tracking import runs

    uri = team_server.tracking_uri
    project = stage_project(tiny_run, tmp_path / "project", epochs=3, uri=uri, clips=4)
    _train(project)
    run_cmd(["actionrec", "evaluate", "lrcn"], cwd=project)  # test metrics into the same run
    run_info = json.loads((project / "models" / "lrcn" / "mlflow_run.json").read_text())
    test_top1 = json.loads(
        (project / "reports" / "evaluate" / "lrcn" / "metrics.json").read_text())["top1_accuracy"]
    history = (project / "models" / "lrcn" / "history.csv").read_text().splitlines()

    assert runs.set_champion(uri, "lrcn", {"lrcn": run_info}) == \
        "models:/actionrec-lrcn@champion"

    def read_back() -> None:
        client = _client(uri)
        run = client.get_run(run_info["run_id"])
        assert run.info.status == "FINISHED"
        assert run.data.params["architecture"] == "lrcn"
        assert run.data.tags["keras_backend"] == "tensorflow" and run.data.tags["devices"]
        assert run.data.metrics["test_top1_accuracy"] == pytest.approx(test_top1)
        assert "evaluation/metrics.json" in {
            f.path for f in client.list_artifacts(run.info.run_id, "evaluation")}
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == \
            len(history) - 1
        assert {d.dataset.name for d in run.inputs.dataset_inputs} >= {"manifest:train"}
        version = client.get_model_version_by_alias("actionrec-lrcn", "champion")
        assert version.version == str(run_info["registered_version"])
        assert version.run_id == run.info.run_id

    read_back()
    team_server.stop()
    assert not team_server.healthy() and not team_server.postgres_running()
    team_server.start()
    read_back()
    # The registry alias resolves through the server, artifacts included.
    proc = run_cmd(["actionrec", "predict", str(next((tiny_run / "data" / "raw").rglob("*.avi"))),
                    "--model", "models:/actionrec-lrcn@champion", "--json",
                    "--tracking-uri", uri], cwd=project)
    answer = json.loads(proc.stdout)
    assert answer["architecture"] == "lrcn" and answer["results"][0]["ok"]


def _cmdlines() -> dict[int, str]:
    out = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                    errors="replace")
            except OSError:
                continue
    return out


def _zombie_children() -> list[str]:
    """This process's children that have exited and wait to be reaped (``<defunct>``)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, rest = stat.read_text().rsplit(")", 1)
        except (FileNotFoundError, ProcessLookupError):
            continue
        state, ppid = rest.split()[:2]
        if state == "Z" and int(ppid) == os.getpid():
            out.append(name.split("(", 1)[1])
    return out


@pytest.mark.slow
def test_the_password_is_on_no_command_line_and_stop_ends_orphaned_workers(team_server):
    """`ps` shows the database password to nobody; with the main process killed and its
    workers left, `status` says unhealthy (a worker may still answer), and `stop` ends the
    whole process group and reaps the postmaster: no `[postgres] <defunct>` is left."""
    password = team_server._password()
    lines = _cmdlines()
    group = team_server.group_processes()
    assert len(group) >= 2 and any("mlflow" in lines.get(p, "") for p in group)
    assert any("postgres" in line for line in lines.values())
    assert not [pid for pid, line in lines.items() if password in line]
    assert "PGPASSFILE=" in (Path("/proc") / str(group[0]) / "environ").read_bytes().decode(
        errors="replace")
    status = team_server.status()
    assert status["healthy"] and status["api_status"] == 200 and status["main_process"]

    main = team_server.mlflow_pid()
    os.kill(main, signal.SIGKILL)
    team_server._proc.wait()  # reaped: only the workers of its group may be left
    left = team_server.status()
    assert left["main_process"] is False and left["healthy"] is False  # workers may answer
    postmaster = int((team_server.pgdata / "postmaster.pid").read_text().split()[0])
    team_server.stop()
    assert team_server.group_processes() == [] and team_server.api_status(timeout=2) is None
    assert team_server.status()["healthy"] is False
    # reaped by stop: gone, not a zombie (one whose parent is an init that reaps nothing, as
    # here, would stay `[postgres] <defunct>`); and no other child of this one left defunct
    assert not Path(f"/proc/{postmaster}").exists() and _zombie_children() == []
    team_server.start()  # the other tests of this module use it
    assert team_server.status()["healthy"]


@pytest.mark.slow
def test_backup_and_restore_bring_the_runs_back(team_server, tmp_path):
    from actionrec.server import TeamServer

    client = _client(team_server.tracking_uri)
    experiment = client.create_experiment(f"backup-{time.time_ns()}")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "m", 0.5)
    team_server.backup(tmp_path / "backup")
    assert (tmp_path / "backup" / "mlflow.pgdump").stat().st_size > 0
    # A second, empty server restores the backup.
    root = Path(tempfile.mkdtemp(prefix="actionrec-restore-"))
    root.chmod(0o755)
    other = TeamServer(root / "state", port=free_port(), pg_port=free_port())
    try:
        other.start()
        other.restore(tmp_path / "backup")
        restored = _client(other.tracking_uri).get_run(run.info.run_id)
        assert restored.data.metrics["m"] == 0.5
    finally:
        other.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_server_lost_mid_training_keeps_the_model_and_track_logs_it_later(team_server,
                                                                          tiny_run, tmp_path):
    """The training pauses itself (SIGSTOP, a failpoint) once its first epoch is
    committed, the server is stopped, and the training goes on (SIGCONT): every later
    epoch finds the server gone, however fast or loaded the machine. Then `actionrec track`
    logs the run. (MLflow's HTTP retries are off in the training: with the default 3, 1 s
    back-off, each call to the gone server waits 7 s, twice.)"""
    uri = team_server.tracking_uri
    project = stage_project(tiny_run, tmp_path / "project", epochs=EPOCHS, uri=uri, clips=4)
    env = command_env({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                       "ACTIONREC_FAILPOINT": "pruned@1:stop"})
    log = open(tmp_path / "train.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(["actionrec", "train", "lrcn"], cwd=project, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    work = project / "models" / ".resume" / "lrcn"
    history = work / "history.csv"
    try:
        wait_until_paused(proc, timeout=600)
        run_id = (work / "mlflow_run_id").read_text().strip()
        assert len(history.read_text().splitlines()) - 1 == 1  # header + epoch 1
        team_server.stop()
        os.killpg(proc.pid, signal.SIGCONT)
        assert proc.wait(timeout=900) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    out = (tmp_path / "train.log").read_text()
    assert "stopped answering at epoch" in out
    last = [line for line in out.splitlines() if line.startswith("error:")][-1]
    assert uri in last and "actionrec track models/lrcn" in last
    model_dir = project / "models" / "lrcn"
    for name in ("model.keras", "history.csv", "meta.json", "mlflow_pending.json"):
        assert (model_dir / name).is_file(), name
    assert not (model_dir / "mlflow_run.json").exists()
    epochs = len((model_dir / "history.csv").read_text().splitlines()) - 1
    assert epochs == EPOCHS

    team_server.start()
    done = run_cmd(["actionrec", "track", "models/lrcn"], cwd=project)
    assert f"logged as run {run_id}" in done.stdout and "dvc commit train@lrcn" in done.stdout
    run = _client(uri).get_run(run_id)
    assert run.info.status == "FINISHED"
    steps = [m.step for m in _client(uri).get_metric_history(run_id, "train_loss")]
    assert sorted(steps) == list(range(epochs))  # every epoch once, none repeated
    # the learning rate too: history.csv keeps it per epoch, and track logs it from there
    assert "learning_rate" in (model_dir / "history.csv").read_text().splitlines()[0]
    lr_steps = [m.step for m in _client(uri).get_metric_history(run_id, "learning_rate")]
    assert sorted(lr_steps) == list(range(epochs))
    info = json.loads((model_dir / "mlflow_run.json").read_text())
    assert info["run_id"] == run_id and info["registered_version"] is not None
    assert not (model_dir / "mlflow_pending.json").exists()
    again = run_cmd(["actionrec", "track", "models/lrcn"], cwd=project, check=False)
    assert again.returncode == 1 and "it is logged" in again.stderr
