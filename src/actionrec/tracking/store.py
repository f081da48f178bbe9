"""The tracking store: which one (resolved once per command), whether it answers, the
experiment. Imports neither Keras nor TensorFlow: a stage checks its server before it
loads them."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def store_root(root: Path) -> Path:
    """Where the local store lives: ``$DVC_ROOT`` when DVC runs the stage, else ``root``.

    DVC sets ``DVC_ROOT`` for every stage command, and for ``dvc exp run --queue`` /
    ``--temp`` points it at the parent repository rather than the executor's temporary
    copy (dvc/repo/experiments/queue/base.py), so queued experiments log into the
    project's own ``mlflow.db`` instead of one that is deleted with the copy.
    """
    return Path(os.environ.get("DVC_ROOT") or root)


def tracking_uri(configured: str | None, root: Path) -> str:
    """``$MLFLOW_TRACKING_URI`` > ``configured`` > ``sqlite:///<store root>/mlflow.db``
    (:func:`store_root`)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or \
        f"sqlite:///{(store_root(root) / 'mlflow.db').resolve()}"


#: MLflow's HTTP client retries a failed request 7 times with back-off (minutes) by
#: default; a stage would sit silent that long on a server that is down. These defaults
#: (used unless the variables are set) give up after about 15 s on a refused connection
#: (mlflow.environment_variables: MLFLOW_HTTP_REQUEST_*). The per-request timeout stays
#: MLflow's 120 s: a model upload of a few hundred MB needs it on a slow link.
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}


def is_remote(uri: str) -> bool:
    """Whether ``uri`` is a tracking server (HTTP/HTTPS) rather than a local store."""
    return uri.startswith(("http://", "https://"))


def check_reachable(uri: str, timeout_s: float = 5) -> None:
    """Refuse, within seconds, a tracking server that does not answer ``/health``.

    Local stores (``sqlite:``, paths) pass. Also sets :data:`HTTP_DEFAULTS`.

    Raises:
        TrackingUnavailable: one line naming ``uri``, how to start the project's server
            and how to fall back to the local store.
    """
    if not is_remote(uri):
        return
    import requests

    from actionrec.errors import TrackingUnavailable

    for key, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    try:
        answer = requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s)
        if answer.ok:
            return
        reason = f"HTTP {answer.status_code} from /health"
    except requests.RequestException as err:
        reason = type(err).__name__
    raise TrackingUnavailable(
        f"the MLflow tracking server {uri} does not answer ({reason}): start it "
        "(`make mlflow-server` for the project's own) or log to the local store instead "
        "(unset MLFLOW_TRACKING_URI and set `mlflow.tracking_uri: null`)")


#: The experiment's kind for the MLflow 3 UI (its ``ExperimentKind`` values, mlflow/server/js):
#: model development, not GenAI. The UI reads it where its GenAI / model-training switch is
#: off; where the switch is on, the links of :func:`runs_url` and :func:`compare_url` pick
#: the model-training view (:data:`MODEL_TRAINING_VIEW`).
EXPERIMENT_KIND_TAG = ("mlflow.experimentKind", "custom_model_development")


def setup(uri: str, experiment: str, root: Path) -> str:
    """Point MLflow at ``uri`` and ``experiment`` (created with artifacts in ``root/mlruns``).

    The experiment gets :data:`EXPERIMENT_KIND_TAG` unless it already has a kind (a user's
    choice in the UI is kept). Returns the experiment's id.
    """
    import mlflow

    check_reachable(uri)
    mlflow.set_tracking_uri(uri)
    with first_contact_lock(uri):
        found = mlflow.get_experiment_by_name(experiment)
        if found is None:
            location = ((store_root(root) / "mlruns").resolve().as_uri()
                        if uri.startswith("sqlite") else None)
            experiment_id = mlflow.create_experiment(experiment, artifact_location=location,
                                                     tags=dict([EXPERIMENT_KIND_TAG]))
        else:
            experiment_id = found.experiment_id
            if EXPERIMENT_KIND_TAG[0] not in found.tags:
                mlflow.MlflowClient().set_experiment_tag(experiment_id, *EXPERIMENT_KIND_TAG)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


@contextlib.contextmanager
def first_contact_lock(uri: str):
    """Hold an exclusive ``flock`` on ``<db>.lock`` beside a SQLite store (nothing for a
    server, whose database serialises this itself).

    Two stages started together on a new store (``dvc repro`` of two architectures side by
    side, ``dvc queue start -j 2``) would otherwise both create its tables (MLflow's
    migrations are not safe to run twice at once) or both create the experiment (the
    second fails: the name is unique). Under the lock the second finds both done.
    """
    import fcntl

    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as handle:  # closing it unlocks
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
