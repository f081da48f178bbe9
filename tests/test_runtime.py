"""The backend line each stage prints, under both Keras backends."""

from __future__ import annotations

import subprocess
import sys

import keras
import pytest

from actionrec.runtime import runtime_info, runtime_line


def test_runtime_names_keras_the_backend_its_version_and_the_devices():
    import tensorflow as tf

    info = runtime_info()
    assert info == {"keras_version": keras.__version__, "keras_backend": "tensorflow",
                    "keras_backend_version": tf.__version__,
                    "devices": ",".join(keras.distribution.list_devices())}
    assert runtime_line("train@lrcn") == (
        f"train@lrcn: Keras {keras.__version__}, backend tensorflow {tf.__version__}, "
        f"devices {info['devices']}")


def test_under_jax_the_line_names_jax_and_its_host_devices():
    jax = pytest.importorskip("jax", reason="JAX is not installed (`pip install -e .[dev]`)")
    proc = subprocess.run(
        [sys.executable, "-c", "from actionrec.runtime import runtime_line; "
                               "print(runtime_line('evaluate@lrcn'))"],
        env={"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
             "PATH": ""}, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == (f"evaluate@lrcn: Keras {keras.__version__}, backend jax "
                                   f"{jax.__version__}, devices cpu:0,cpu:1")


def test_the_gpu_install_pins_the_versions_of_the_cpu_install():
    import tomllib
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
    pins = dict(d.replace("[cpu]", "").split("==") for d in
                project["dependencies"] + project["optional-dependencies"]["dev"] if "==" in d)
    boot = (repo / "scripts" / "bootstrap.sh").read_text()
    assert f'TF_CUDA="tensorflow[and-cuda]=={pins["tensorflow"]}"' in boot
    assert f'JAX_CUDA="jax[cuda12]=={pins["jax"]}"' in boot
