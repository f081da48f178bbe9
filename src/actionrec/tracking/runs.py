"""Runs: a training run per architecture, its epochs, params, model, test results, the
``champion`` alias, and loading a logged model back."""

from __future__ import annotations

import contextlib
import logging
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actionrec.tracking.lineage import log_data_inputs

MODEL_PREFIX = "actionrec-"
#: The ``actionrec`` package folder: logged as the model's code, with mlflow_model.py.
PACKAGE_DIR = Path(__file__).resolve().parents[1]

#: Pinned requirements of the logged model (explicit: MLflow's inference of them
#: re-imports the model and takes ~5x longer).
PIP_REQUIREMENTS = [
    "tensorflow==2.21.0", "keras==3.15.1", "mlflow==3.17.2", "numpy", "pandas",
    "opencv-python-headless==5.0.0.93", "pydantic>=2.7,<3", "pyyaml", "tqdm",
]


def git_commit(root: Path) -> str:
    """HEAD's commit hash, or ``"unknown"`` outside a git repository."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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


def log_params(params: dict[str, Any]) -> None:
    """Log ``params`` (flat ``{name: value}``, :func:`flatten`) into the active run."""
    import mlflow

    mlflow.log_params(params)


def end_run(uri: str, run_id: str, status: str = "KILLED") -> bool:
    """Mark run ``run_id`` of the store ``uri`` as ended with ``status`` (``KILLED`` for
    the run of an interrupted training that will not be resumed). Best effort: returns
    False when the store cannot be reached or has no such run."""
    from mlflow import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).set_terminated(run_id, status)
    except Exception:  # noqa: BLE001 (any failure of the tracking call: best effort)
        return False
    return True


@contextlib.contextmanager
def training_run(arch: str, run_id: str | None, tags: dict[str, str],
                 system_metrics_interval_s: float = 0):
    """Start (or resume, given ``run_id``) the architecture's run; yields the active run.

    With ``system_metrics_interval_s`` > 0, MLflow's system-metrics monitor samples CPU,
    memory, disk, network and (with ``nvidia-ml-py`` and an NVIDIA GPU) GPU utilisation
    every that many seconds while the run is open (``system/...`` metrics in the UI).
    """
    import mlflow

    if system_metrics_interval_s > 0:
        from mlflow.system_metrics import set_system_metrics_sampling_interval

        set_system_metrics_sampling_interval(system_metrics_interval_s)
    with _quiet_logger("mlflow.system_metrics"):
        run = mlflow.start_run(run_id=run_id, run_name=None if run_id else arch, tags=tags,
                               log_system_metrics=system_metrics_interval_s > 0)
        status = "FAILED"
        try:
            yield run
            status = "FINISHED"
        finally:
            # With the server gone, ending the run fails too; the run is finished later
            # by `actionrec track` (finish_run), so that failure is not the one to report.
            # (end_run leaves the active run before it calls the server.)
            with contextlib.suppress(Exception):
                mlflow.end_run(status)


def metric_name(key: str) -> str:
    """Keras' log key -> the metric name in MLflow: ``loss`` -> ``train_loss``,
    ``val_loss`` and ``learning_rate`` unchanged."""
    return key if key.startswith("val_") or key == "learning_rate" else f"train_{key}"


def log_model(model_path: Path, meta_path: Path, example: np.ndarray, probs: np.ndarray,
              classes: list[str], registered_name: str | None) -> Any:
    """Log the ``.keras`` model as a pyfunc with a tensor signature; register it if named.

    The signature (input ``(-1, T, S, S, 3)`` uint8, one probability column per class) is
    inferred from ``example`` and ``probs``, the model's own output for it, computed by
    training just before. The example itself is not logged: with one, MLflow loads the
    logged pyfunc once more and predicts it again to check the serving input (and only
    warns when that fails), a second load of the model in every training (train@lrcn on
    4 clips per class: 10.7-12.7 s with it, 10.3-10.4 s without; more for the
    64 M-parameter EfficientNetB7, whose load alone takes 8 s); and a full-size
    clip is megabytes of JSON (20 x 600 x 600 x 3 numbers for EfficientNetB7). That the
    logged model loads and serves is tested (tests/test_mlflow_model.py, `mlflow models
    serve`, predict).
    """
    import warnings

    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(example, pd.DataFrame(probs, columns=classes))
    with _quiet_logger("mlflow.pyfunc"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*input example was not provided")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PACKAGE_DIR / "mlflow_model.py"),
            artifacts={"keras_model": str(model_path), "meta": str(meta_path)},
            code_paths=[str(PACKAGE_DIR)],
            signature=signature,
            pip_requirements=PIP_REQUIREMENTS,
            registered_model_name=registered_name,
        )


@contextlib.contextmanager
def _quiet_logger(name: str):
    """Raise a library logger to WARNING inside the block (its INFO lines are not ours)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def log_test_results(run_id: str, metrics: dict[str, float], artifacts: list[Path],
                     manifest: Path | None = None) -> None:
    """Add the evaluation metrics and report files to the training run.

    Test-split metrics are logged as ``test_<key>``; those measured on another split
    keep their own prefix (``train_top1_accuracy``). With ``manifest``, its test rows are
    logged as the run's ``test`` dataset (:func:`log_data_inputs`).
    """
    import mlflow

    with mlflow.start_run(run_id=run_id):
        if manifest is not None:
            log_data_inputs(manifest, ["test"])
        mlflow.log_metrics({k if k.startswith("train_") else f"test_{k}": float(v)
                            for k, v in metrics.items()})
        for path in artifacts:
            if path.exists():
                mlflow.log_artifact(str(path), artifact_path="evaluation")


def log_comparison(params: dict[str, Any], tags: dict[str, str], artifacts: list[Path]) -> str:
    """One MLflow run named ``compare`` in the active experiment (:func:`store.setup
    <actionrec.tracking.store.setup>` first): the rule's ``params``, ``tags`` (the champion
    and why; ``dvc_stage`` is ``compare``) and ``artifacts`` (``comparison.md``, ``.png``).
    Returns its run id."""
    import mlflow

    with mlflow.start_run(run_name="compare", tags={"dvc_stage": "compare", **tags}) as run:
        mlflow.log_params(params)
        for path in artifacts:
            mlflow.log_artifact(str(path))
    return run.info.run_id


#: The registry alias of the best tested architecture (set by the ``compare`` stage).
CHAMPION_ALIAS = "champion"


def set_champion(uri: str, best: str, runs: dict[str, dict[str, Any]],
                 tags: dict[str, str] | None = None) -> str | None:
    """Point the alias ``champion`` at ``best``'s registered model version, with ``tags``
    (the rule and its evidence) on that version.

    Each architecture has its own registered model (``actionrec-<arch>``); the alias is
    removed from the others, so that exactly one ``models:/actionrec-<arch>@champion``
    resolves, and it is the architecture that won the last comparison on the test split.

    Args:
        uri: the tracking URI (:func:`tracking_uri`); its model registry is used.
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
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for arch, other in runs.items():
        if arch != best and other.get("registered_model"):
            with contextlib.suppress(MlflowException):  # a model that never had the alias
                client.delete_registered_model_alias(other["registered_model"], CHAMPION_ALIAS)
    client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, str(version), key, value)
    return f"models:/{name}@{CHAMPION_ALIAS}"


class ModelNotFound(LookupError):
    """An MLflow model URI that the store cannot load (the message says why)."""


def load_python_model(ref: str, uri: str) -> Any:
    """Load the MLflow model ``ref`` (``runs:/<id>/model``, ``models:/<name>@<alias>``...)
    from the store ``uri`` and return its Python model (the
    :class:`~actionrec.mlflow_model.VideoClassifier` that ``.model`` and ``.meta`` hold).

    Raises:
        ModelNotFound: the store has no such model, or it cannot be read; the message
            names the store and how to look for the model.
    """
    import os
    import warnings

    import mlflow
    from mlflow.exceptions import MlflowException

    # MLflow 3's set_tracking_uri also exports $MLFLOW_TRACKING_URI, which every later
    # child process would inherit (and prefer to its params): put both back afterwards.
    previous, env = mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        # MLflow advises type hints on PythonModel.predict (for logging; this model has a
        # signature) and resets the warning filters to say so: record, drop that one.
        with warnings.catch_warnings(record=True) as caught:
            wrapped = mlflow.pyfunc.load_model(ref).unwrap_python_model()
        for w in caught:
            if "type hints" not in str(w.message):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    except (MlflowException, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelNotFound(
            f"cannot load {ref!r} from MLflow (tracking URI {uri}): {first}. Check the name "
            "and alias or version (`mlflow ui`, Models tab), or point --tracking-uri / "
            "$MLFLOW_TRACKING_URI at the store the pipeline used.") from None
    finally:
        mlflow.set_tracking_uri(previous)
        if env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env
    return wrapped
