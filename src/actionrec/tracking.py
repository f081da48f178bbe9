"""Everything MLflow: tracking URI, experiment, runs, metrics, the logged and registered model.

- Tracking URI: ``$MLFLOW_TRACKING_URI``, else ``mlflow.tracking_uri`` in params, else
  ``sqlite:///<repo>/mlflow.db``; artifacts of new experiments under ``<repo>/mlruns``.
- One experiment per dataset/profile (``actionrec-<profile>`` unless
  ``mlflow.experiment`` names one); one run per architecture per pipeline run, named
  after the architecture and tagged with the git commit, the DVC stage, the profile.
- Metric names are the same for the five architectures (``train_loss``,
  ``val_accuracy``, ``test_macro_f1``...), so the MLflow UI's compare view lines them up.
- The model is logged as an MLflow pyfunc that wraps the ``.keras`` file (with the
  ``actionrec`` package as code, so it loads anywhere) and is registered as
  ``actionrec-<arch>``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Any

import keras
import numpy as np

MODEL_PREFIX = "actionrec-"
PACKAGE_DIR = Path(__file__).resolve().parent

#: Pinned requirements of the logged model (explicit: MLflow's inference of them
#: re-imports the model and takes ~5x longer).
PIP_REQUIREMENTS = [
    "tensorflow==2.21.0", "keras==3.15.1", "mlflow==3.17.2", "numpy", "pandas",
    "opencv-python-headless==5.0.0.93", "pydantic>=2.7,<3", "pyyaml", "tqdm",
]


def tracking_uri(configured: str | None, root: Path) -> str:
    """``$MLFLOW_TRACKING_URI`` > ``configured`` > ``sqlite:///<root>/mlflow.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or \
        f"sqlite:///{(root / 'mlflow.db').resolve()}"


def git_commit(root: Path) -> str:
    """HEAD's commit hash, or ``"unknown"`` outside a git repository."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def setup(uri: str, experiment: str, root: Path) -> str:
    """Point MLflow at ``uri`` and ``experiment`` (created with artifacts in ``root/mlruns``)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        location = (root / "mlruns").resolve().as_uri() if uri.startswith("sqlite") else None
        mlflow.create_experiment(experiment, artifact_location=location)
    mlflow.set_experiment(experiment)
    return experiment


def flatten(prefix: str, obj: Any) -> dict[str, Any]:
    """Nested dicts/lists -> ``{"a.b": value}`` with lists joined by commas (MLflow params)."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
    elif isinstance(obj, list | tuple):
        out[prefix] = ",".join(map(str, obj))
    else:
        out[prefix] = obj
    return out


@contextlib.contextmanager
def training_run(arch: str, run_id: str | None, tags: dict[str, str]):
    """Start (or resume, given ``run_id``) the architecture's run; yields the active run."""
    import mlflow

    with mlflow.start_run(run_id=run_id, run_name=None if run_id else arch, tags=tags) as run:
        yield run


class EpochMetrics(keras.callbacks.Callback):
    """Log every epoch's logs to the active MLflow run: ``loss`` -> ``train_loss``,
    ``val_loss`` -> ``val_loss``, plus the optimizer's ``learning_rate``; step = epoch."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import mlflow

        metrics = {}
        for k, v in (logs or {}).items():
            name = k if k.startswith("val_") or k == "learning_rate" else f"train_{k}"
            metrics[name] = float(v)
        metrics["learning_rate"] = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        mlflow.log_metrics(metrics, step=epoch)


def log_model(model_path: Path, meta_path: Path, example: np.ndarray, probs: np.ndarray,
              classes: list[str], registered_name: str | None) -> Any:
    """Log the ``.keras`` model as a pyfunc with a tensor signature; register it if named."""
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    signature = infer_signature(example, pd.DataFrame(probs, columns=classes))
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(PACKAGE_DIR / "mlflow_model.py"),
        artifacts={"keras_model": str(model_path), "meta": str(meta_path)},
        code_paths=[str(PACKAGE_DIR)],
        signature=signature,
        input_example=example,
        pip_requirements=PIP_REQUIREMENTS,
        registered_model_name=registered_name,
    )


def log_test_results(run_id: str, metrics: dict[str, float], artifacts: list[Path]) -> None:
    """Add the evaluation metrics and report files to the training run.

    Test-split metrics are logged as ``test_<key>``; those measured on another split
    keep their own prefix (``train_top1_accuracy``).
    """
    import mlflow

    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({k if k.startswith("train_") else f"test_{k}": float(v)
                            for k, v in metrics.items()})
        for path in artifacts:
            if path.exists():
                mlflow.log_artifact(str(path), artifact_path="evaluation")


#: The registry alias of the best tested architecture (set by the ``compare`` stage).
CHAMPION_ALIAS = "champion"


def set_champion(best: str, runs: dict[str, dict[str, Any]]) -> str | None:
    """Point the alias ``champion`` at ``best``'s registered model version.

    Each architecture has its own registered model (``actionrec-<arch>``); the alias is
    removed from the others, so that exactly one ``models:/actionrec-<arch>@champion``
    resolves, and it is the architecture that won the last comparison on the test split.

    Args:
        best: the winning architecture.
        runs: ``{arch: models/<arch>/mlflow_run.json content}`` (``registered_model``,
            ``registered_version``).

    Returns:
        The champion's model URI, or ``None`` when ``best`` was not registered
        (``mlflow.register: false``).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    info = runs.get(best, {})
    name, version = info.get("registered_model"), info.get("registered_version")
    if not name or version is None:
        return None
    client = MlflowClient()
    for arch, other in runs.items():
        if arch != best and other.get("registered_model"):
            with contextlib.suppress(MlflowException):  # a model that never had the alias
                client.delete_registered_model_alias(other["registered_model"], CHAMPION_ALIAS)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    return f"models:/{name}@{CHAMPION_ALIAS}"
