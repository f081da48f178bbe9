"""Data-parallel training on one host (parallel.py, `train.distribute`): TensorFlow's
MirroredStrategy over two logical CPU devices, and Keras' DataParallel over two JAX host
devices, each within the gate's tolerance of the single-device LRCN of the tiny run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from actionrec.config import load_params
from tests.helpers import REPO, run_cmd, stage_project


def _evaluate_within_the_gate_of_one_device(project: Path) -> None:
    """``evaluate@lrcn`` loads the saved model; every gated metric is within the CI gate's
    tolerance of the single-device LRCN of the tiny run (its committed baseline, which the
    gate holds every CI run to)."""
    run_cmd(["actionrec", "evaluate", "lrcn"], cwd=project)
    mine = json.loads((project / "reports" / "evaluate" / "lrcn" / "metrics.json").read_text())
    single = json.loads((REPO / "ci" / "baseline" / "lrcn" / "metrics.json").read_text())
    gate = load_params(project / "params.yaml").gate
    for key in gate.metrics_for("lrcn"):
        assert mine[key] >= single[key] - gate.tolerance, (key, mine[key], single[key])


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


@pytest.mark.slow
def test_data_parallel_training_under_jax_on_two_host_devices(tiny_run, tmp_path):
    pytest.importorskip("jax", reason="JAX is not installed (`pip install -e .[dev]`)")
    project, batch = _dp_project(tiny_run, tmp_path / "project")
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = run_cmd(["actionrec", "train", "lrcn"], cwd=project, env=env)
    assert (f"data-parallel, keras.distribution.DataParallel over 2 cpu devices; global batch "
            f"{batch} ({batch // 2} per device)") in proc.stdout
    assert "train@lrcn: Keras" in proc.stderr and "backend jax" in proc.stderr
    # The saved model is backend-neutral: evaluated under TensorFlow, the default.
    _evaluate_within_the_gate_of_one_device(project)
