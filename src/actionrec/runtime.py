"""Which Keras backend, version and devices this process runs on.

Each stage that runs a model prints :func:`runtime_line` once, and every training run
carries :func:`runtime_info` as MLflow tags, so a figure or a run can always be traced
to its backend (``KERAS_BACKEND``: ``tensorflow``, the default, or ``jax``) and devices.
"""

from __future__ import annotations

import importlib
import sys

#: The Python module whose ``__version__`` is each Keras backend's version.
BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def runtime_info() -> dict[str, str]:
    """``keras_version``, ``keras_backend``, ``keras_backend_version`` and ``devices``
    (``keras.distribution.list_devices()``, comma-separated, e.g. ``cpu:0`` or
    ``cuda:0,cuda:1``), all strings (MLflow tag values)."""
    import keras  # here: importing this module must not start a backend

    backend = keras.backend.backend()
    module = importlib.import_module(BACKEND_MODULES.get(backend, backend))
    return {"keras_version": keras.__version__, "keras_backend": backend,
            "keras_backend_version": getattr(module, "__version__", "unknown"),
            "devices": ",".join(keras.distribution.list_devices())}


def runtime_line(stage: str) -> str:
    """One line naming them, e.g. ``train@lrcn: Keras 3.15.1, backend tensorflow 2.21.0,
    devices cpu:0``."""
    info = runtime_info()
    return (f"{stage}: Keras {info['keras_version']}, backend {info['keras_backend']} "
            f"{info['keras_backend_version']}, devices {info['devices']}")


def print_runtime(stage: str) -> None:
    """Print :func:`runtime_line` to stderr (stdout may carry JSON, as ``predict --json``)."""
    print(runtime_line(stage), file=sys.stderr, flush=True)
