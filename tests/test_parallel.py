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


#: Epochs of the data-parallel runs: the tiny profile's single-device LRCN reaches
#: validation accuracy 1.0 by epoch 5 of its 10; with the global batch doubled an epoch
#: has half the steps, so 12 epochs make the updates of 6, past the 5 it needed.
DP_EPOCHS = 12


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
    project = stage_project(tiny_run, tmp_path / "project", epochs=DP_EPOCHS, uri=None)
    proc = run_cmd([sys.executable, "-c", TWO_DEVICES, "train", "lrcn"], cwd=project)
    raw = yaml.safe_load((project / "params.yaml").read_text())
    batch = raw["models"]["lrcn"]["batch_size"]
    assert (f"data-parallel, tf.distribute.MirroredStrategy over 2 CPU devices; global batch "
            f"{2 * batch} ({batch} per device)") in proc.stdout + proc.stderr
    _evaluate_within_the_gate_of_one_device(project)


@pytest.mark.slow
def test_data_parallel_training_under_jax_on_two_host_devices(tiny_run, tmp_path):
    pytest.importorskip("jax", reason="JAX is not installed (`pip install -e .[dev]`)")
    project = stage_project(tiny_run, tmp_path / "project", epochs=DP_EPOCHS, uri=None)
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    proc = run_cmd(["actionrec", "train", "lrcn"], cwd=project, env=env)
    assert "data-parallel, keras.distribution.DataParallel over 2 cpu devices" in proc.stdout
    assert "train@lrcn: Keras" in proc.stderr and "backend jax" in proc.stderr
    # The saved model is backend-neutral: evaluated under TensorFlow, the default.
    _evaluate_within_the_gate_of_one_device(project)
