"""Recovery: a trained model's run that is not (completely) in MLflow yet.

Training writes everything the final logging needs into the model folder first
(:func:`write_pending`); :func:`finish_run` logs it, at the end of training or, after the
tracking server was away, by ``actionrec track models/<arch>``.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actionrec.tracking.lineage import log_data_inputs
from actionrec.tracking.runs import log_model, metric_name
from actionrec.tracking.store import check_reachable, setup

#: A trained model's run that is not (completely) in MLflow yet: written into the model
#: folder before the final logging, removed once :func:`finish_run` has logged it.
PENDING_FILE = "mlflow_pending.json"
EXAMPLE_FILE = "mlflow_example.npz"


def write_pending(model_dir: Path, *, uri: str, experiment: str, run_id: str | None,
                  arch: str, registered: str | None, params: dict[str, Any],
                  tags: dict[str, str], inputs: dict[str, Any] | None,
                  example: np.ndarray, probs: np.ndarray, classes: list[str]) -> None:
    """Record everything :func:`finish_run` needs to log a trained model's run.

    Args:
        example: the model's input example, ``(1, T, S, S, 3)`` uint8.
        probs: its predicted probabilities, ``(1, num_classes)`` float32.
        inputs: :func:`log_data_inputs` keyword arguments (paths as strings), or ``None``.
    """
    from actionrec.io import atomic_open, write_json

    with atomic_open(model_dir / EXAMPLE_FILE, "wb") as fh:
        np.savez(fh, example=example, probs=probs)
    write_json(model_dir / PENDING_FILE, {
        "tracking_uri": uri, "experiment": experiment, "run_id": run_id, "arch": arch,
        "registered_model": registered, "params": {k: str(v) for k, v in params.items()},
        "tags": tags, "inputs": inputs, "classes": classes})


@contextlib.contextmanager
def _run_context(run_id: str):
    """The run ``run_id`` as MLflow's active run: the one already active, else resumed."""
    import mlflow

    active = mlflow.active_run()
    if active is not None and active.info.run_id == run_id:
        yield active
    else:
        with mlflow.start_run(run_id=run_id) as run:
            yield run


def _log_what_the_run_lacks(client, run, params: dict[str, Any], history: Path) -> None:
    """Log into ``run`` the ``params`` it does not have, and each epoch of ``history``
    (``history.csv``; step = epoch) that its metric lacks: a resumed or half-logged run
    gets the rest, and nothing twice."""
    import time

    from mlflow.entities import Metric, Param

    run_id = run.info.run_id
    missing = [Param(k, v) for k, v in params.items() if k not in run.data.params]
    for i in range(0, len(missing), 100):
        client.log_batch(run_id, params=missing[i:i + 100])
    hist = pd.read_csv(history)
    now = int(time.time() * 1000)
    metrics = []
    for column in hist.columns.drop("epoch"):
        key = metric_name(column)
        have = {m.step for m in client.get_metric_history(run_id, key)}
        metrics += [Metric(key, float(v), now, int(e))
                    for e, v in zip(hist["epoch"], hist[column], strict=True)
                    if int(e) not in have and pd.notna(v)]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i:i + 1000])


def finish_run(model_dir: Path, uri: str | None = None, root: Path = Path(".")) -> dict[str, Any]:
    """Log a trained model's run from its folder; what the server already has is kept.

    Used at the end of training and by ``actionrec track models/<arch>`` after the
    tracking server was away: creates the run if it never started, logs the params and
    the epochs of ``history.csv`` that the run lacks (step = epoch), its datasets if it
    has none, the model (registered as ``actionrec-<arch>``) and ``history.csv``; marks
    the run FINISHED; writes ``mlflow_run.json`` and removes the pending record.

    Args:
        model_dir: ``models/<arch>`` holding :data:`PENDING_FILE` and :data:`EXAMPLE_FILE`.
        uri: the tracking URI (default: the one recorded at training time).

    Returns:
        The ``mlflow_run.json`` content.

    Raises:
        TrackingUnavailable: the server does not answer (nothing in ``model_dir`` is lost).
        ActionrecError: ``model_dir`` has no pending run.
    """
    import mlflow
    import requests
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from actionrec.errors import ActionrecError, TrackingUnavailable
    from actionrec.io import write_json

    model_dir = Path(model_dir)
    pending = model_dir / PENDING_FILE
    if not pending.exists():
        done = model_dir / "mlflow_run.json"
        raise ActionrecError(f"{model_dir} has no run waiting to be logged ("
                             + (f"it is logged: {done}" if done.exists() else
                                "no trained model there") + ")")
    rec = json.loads(pending.read_text())
    uri = uri or rec["tracking_uri"]
    try:
        check_reachable(uri)
    except TrackingUnavailable as err:
        raise TrackingUnavailable(f"{err}; {model_dir} is complete and nothing is lost: once "
                                  f"the server is back, `actionrec track {model_dir}` logs the "
                                  "run without training again") from None
    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    try:
        run_id = rec["run_id"]
        if run_id is None:
            experiment_id = setup(uri, rec["experiment"], root)
            run_id = client.create_run(experiment_id, tags=rec["tags"],
                                       run_name=rec["arch"]).info.run_id
        run = client.get_run(run_id)
        _log_what_the_run_lacks(client, run, rec["params"], model_dir / "history.csv")
        with np.load(model_dir / EXAMPLE_FILE) as arrays:
            example, probs = arrays["example"], arrays["probs"]
        with _run_context(run_id):
            if rec["inputs"] and not run.inputs.dataset_inputs:
                inputs = dict(rec["inputs"])
                log_data_inputs(Path(inputs.pop("manifest")), inputs.pop("splits"),
                                Path(inputs["store"]) if inputs.get("store") else None,
                                root=root)
            info = log_model(model_dir / "model.keras", model_dir / "meta.json", example, probs,
                             rec["classes"], rec["registered_model"])
            mlflow.log_artifact(str(model_dir / "history.csv"))
        client.set_terminated(run_id, "FINISHED")
    except (MlflowException, requests.RequestException) as err:
        raise TrackingUnavailable(
            f"the MLflow tracking server {uri} failed while the run was logged "
            f"({type(err).__name__}: {str(err)[:300]}); {model_dir} is complete and nothing is "
            f"lost: once the server is back, `actionrec track {model_dir}` logs the run "
            "without training again") from None
    result = {"run_id": run_id, "experiment": rec["experiment"], "model_uri": info.model_uri,
              "registered_model": rec["registered_model"],
              "registered_version": getattr(info, "registered_model_version", None)}
    write_json(model_dir / "mlflow_run.json", result)
    pending.unlink()
    (model_dir / EXAMPLE_FILE).unlink(missing_ok=True)
    return result

