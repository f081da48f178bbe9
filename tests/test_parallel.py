"""Data-parallel training (training.py, multihost.py, `train.distribute`): TensorFlow's
MirroredStrategy over two logical CPU devices of one host, and Keras' DataParallel under JAX
over two processes (`multihost`), each within the gate's tolerance of the single-device LRCN
of the tiny run."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import pandas as pd
import pytest
import yaml

from actionrec.config import load_params
from tests.helpers import (
    REPO,
    command_env,
    free_port,
    run_cmd,
    stage_project,
    tracking_client,
)


def _evaluate_within_the_gate_of_one_device(project: Path) -> None:
    """The evaluation of ``evaluate@lrcn`` (its function, in this TensorFlow process: the
    stage itself runs in the tiny run and in test_backends) loads the saved model; every
    gated metric is within the CI gate's tolerance of the single-device LRCN of the tiny
    run (its committed baseline, which the gate holds every CI run to)."""
    from actionrec.evaluation import evaluate_architecture

    mine = evaluate_architecture("lrcn", project / "models" / "lrcn", project / "data" / "frames",
                                 project / "data" / "features",
                                 project / "reports" / "evaluate" / "lrcn", latency_runs=1)
    single = json.loads((REPO / "ci" / "baseline" / "lrcn" / "metrics.json").read_text())
    gate = load_params(project / "params.yaml").gate
    for key in gate.metrics_for("lrcn"):
        assert mine[key] >= single[key] - gate.tolerance_for("lrcn"), (key, mine[key],
                                                                      single[key])


#: Epochs of the data-parallel runs. Each device gets half the tiny profile's batch, so the
#: global batch and the updates per epoch are those of the single-device LRCN, which
#: reaches validation accuracy 1.0 at epoch 6 of its 10 (train accuracy 0.979 with
#: augmentation and dropout on). (With the whole batch on each device, doubling the global
#: batch, it took 12 epochs.)
DP_EPOCHS = 7


def _dp_project(tiny_run: Path, dst: Path) -> tuple[Path, int]:
    """The LRCN stage project for two devices: ``DP_EPOCHS``, half the batch per device.
    Returns it and the global batch (the tiny profile's batch)."""
    project = stage_project(tiny_run, dst, epochs=DP_EPOCHS, uri=None)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    batch = raw["models"]["lrcn"]["batch_size"]
    assert batch % 2 == 0, batch
    raw["models"]["lrcn"]["batch_size"] = batch // 2
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return project, batch


#: ``actionrec`` with TensorFlow's one CPU split into two logical devices, as a machine with
#: two accelerators would present them (tf.config.set_logical_device_configuration).
TWO_DEVICES = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from actionrec.cli import main
main(sys.argv[1:])
"""


@pytest.mark.slow
def test_data_parallel_training_on_two_devices_matches_one_device(tiny_run, tmp_path):
    project, batch = _dp_project(tiny_run, tmp_path / "project")
    proc = run_cmd([sys.executable, "-c", TWO_DEVICES, "train", "lrcn"], cwd=project)
    assert (f"data-parallel, tf.distribute.MirroredStrategy over 2 CPU devices; global batch "
            f"{batch} ({batch // 2} per device)") in proc.stdout + proc.stderr
    _evaluate_within_the_gate_of_one_device(project)


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


def _start(project: Path, job: dict[str, str], process: int, log: Path,
           failpoint: str | None = None) -> subprocess.Popen:
    env = command_env({**job, "KERAS_DISTRIBUTION_PROCESS_ID": str(process),
                       **({"ACTIONREC_FAILPOINT": failpoint} if failpoint else {})})
    with open(log, "w") as out:
        return subprocess.Popen(["actionrec", "train", "lrcn"], cwd=project, env=env,
                                stdout=out, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, log: Path, timeout: float = 600) -> tuple[int, str]:
    return proc.wait(timeout=timeout), log.read_text()


@pytest.mark.slow
def test_multihost_training_on_two_processes_stops_on_a_lost_peer_and_resumes(tiny_run,
                                                                              tmp_path):
    """``train.distribute: multihost`` under JAX: two processes on 127.0.0.1, each in its
    own copy of the project (two "hosts"), one CPU device each, half the tiny profile's
    batch per device (the single-device global batch).

    Process 1 kills itself (SIGKILL, a failpoint) at the end of epoch 2, before committing
    it: process 0 stops at once with the one-line error. Both rerun: training resumes from
    process 0's last committed epoch (1 or 2: process 0 may have committed epoch 2 before
    its next step found process 1 gone), both end on
    the same weights (the digest they print is the saved model's), process 0 has the one
    MLflow run with every epoch's metrics, process 1's project is untouched, and the model
    is within the gate of the single-device LRCN. (It also covers Keras' DataParallel under
    JAX on one host: the same code, with the devices of one process.)"""
    pytest.importorskip("jax", reason="JAX is not installed (`pip install -e .[dev]`)")
    from actionrec.multihost import weights_digest

    hosts = [tmp_path / "host0", tmp_path / "host1"]
    _, batch = _dp_project(tiny_run, hosts[0])
    raw = yaml.safe_load((hosts[0] / "params.yaml").read_text())
    raw["train"].update(distribute="multihost", peer_timeout_s=30)
    (hosts[0] / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    stage_project(tiny_run, hosts[1], epochs=None, uri=None)
    shutil.copy(hosts[0] / "params.yaml", hosts[1] / "params.yaml")
    untouched = _snapshot(hosts[1])
    job = {"KERAS_BACKEND": "jax", "KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
           "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{free_port()}"}
    logs = [[tmp_path / f"run{r}.process{k}.log" for k in (0, 1)] for r in (1, 2)]

    chief = _start(hosts[0], job, 0, logs[0][0])
    peer = _start(hosts[1], job, 1, logs[0][1], failpoint="epoch_end@2")
    assert peer.wait(timeout=600) == -signal.SIGKILL, logs[0][1].read_text()[-3000:]
    killed = time.monotonic()
    code, out = _finish(chief, logs[0][0], timeout=120)
    stopped_after = time.monotonic() - killed
    assert code == 1, out
    assert ("error: train@lrcn: process 0 of 2 stopped: another process of the job failed "
            "or was lost") in out
    assert "Rerun the same command on every host" in out
    assert stopped_after < 30, stopped_after  # seconds: measured 0.4 s (the socket drops)
    history = hosts[0] / "models" / ".resume" / "lrcn" / "history.csv"
    done = len(pd.read_csv(history))
    assert done in (1, 2), done  # epoch 1 committed; epoch 2 perhaps, never epoch 3

    procs = [_start(hosts[k], job, k, logs[1][k]) for k in (0, 1)]
    (code0, out0), (code1, out1) = (_finish(p, log) for p, log in zip(procs, logs[1], strict=True))
    assert code0 == 0 and code1 == 0, out0 + out1
    assert (f"data-parallel, keras.distribution.DataParallel over 2 cpu devices in 2 "
            f"processes; global batch {batch} ({batch // 2} per device)") in out0
    assert f"resuming after epoch {done} " in out0 and f"Epoch {done + 1}/" in out0
    assert "Epoch 1/" not in out0 and "not resuming" not in out0
    digests = [re.search(r"process \d of 2: the weights are the same in all 2 processes "
                         r"\(sha256 ([0-9a-f]{16})\)", out).group(1) for out in (out0, out1)]
    assert digests[0] == digests[1]
    import actionrec.models.layers  # noqa: F401  (the custom layers, for loading)

    saved = keras.models.load_model(hosts[0] / "models" / "lrcn" / "model.keras")
    assert weights_digest(saved.get_weights()).startswith(digests[0])
    assert "the model and its MLflow run are process 0's" in out1
    assert _snapshot(hosts[1]) == untouched  # process 1 wrote nothing in its workspace

    client = tracking_client(hosts[0])
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.params["processes"] == "2" and runs[0].data.params["replicas"] == "2"
    steps = {m.step for m in client.get_metric_history(runs[0].info.run_id, "val_loss")}
    assert steps == set(range(DP_EPOCHS))  # one run, resumed, no epoch lost
    _evaluate_within_the_gate_of_one_device(hosts[0])
