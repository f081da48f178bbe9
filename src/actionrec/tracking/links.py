"""Links into the MLflow UI: the runs table and the compare view of the five runs."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from actionrec.tracking.store import is_remote


def ui_url(uri: str, configured: str) -> str:
    """The MLflow UI's address: the tracking server itself when ``uri`` is HTTP(S), else
    ``configured`` (``mlflow.ui_url``: where ``mlflow ui`` serves a local store)."""
    base = uri if is_remote(uri) else configured
    return base.rstrip("/")


#: The MLflow 3 UI shows either its GenAI pages or its model-training pages; this query
#: parameter picks model training (and the UI remembers it in the browser).
MODEL_TRAINING_VIEW = "workflowType=machine_learning"


def compare_url(base: str, experiment_ids: list[str], run_ids: list[str]) -> str:
    """The MLflow UI page that compares exactly ``run_ids`` (its ``#/compare-runs`` route:
    JSON lists of run ids and of their experiments' ids, URL-encoded)."""
    runs = json.dumps(run_ids, separators=(",", ":"))
    experiments = json.dumps(experiment_ids, separators=(",", ":"))
    return (f"{base}/#/compare-runs?runs={quote(runs)}&experiments={quote(experiments)}"
            f"&{MODEL_TRAINING_VIEW}")


def runs_url(base: str, experiment_id: str) -> str:
    """The MLflow UI's training-runs table of one experiment (model-training view)."""
    return f"{base}/#/experiments/{experiment_id}?{MODEL_TRAINING_VIEW}"


def comparison_links(uri: str, configured_ui: str,
                     runs: dict[str, dict[str, Any]]) -> dict[str, str] | None:
    """MLflow UI links for the ``compare`` stage: ``{"ui", "runs", "compare"}``.

    Args:
        uri: the tracking URI the runs were logged to.
        configured_ui: ``mlflow.ui_url`` (used unless ``uri`` is a server).
        runs: ``{arch: models/<arch>/mlflow_run.json content}`` (``run_id``, ``experiment``).

    Returns:
        The UI's base, the experiment's runs table, the compare view of exactly these
        runs, and for a local store ``serve``, the command that starts the UI; ``None``
        when the runs' experiment is not in the store (nothing to link to).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    names = {info["experiment"] for info in runs.values()}
    mlflow.set_tracking_uri(uri)
    try:
        found = [mlflow.get_experiment_by_name(name) for name in sorted(names)]
    except MlflowException:
        return None
    if not found or any(e is None for e in found):
        return None
    base = ui_url(uri, configured_ui)
    ids = [e.experiment_id for e in found]
    links = {"ui": base, "runs": runs_url(base, ids[0]),
             "compare": compare_url(base, ids, [info["run_id"] for info in runs.values()])}
    if not is_remote(uri):  # a local store: `mlflow ui` serves it
        links["serve"] = (f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui "
                          f"--backend-store-uri {uri}")
    return links
