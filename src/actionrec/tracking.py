"""Everything MLflow: tracking URI, experiment, runs, metrics, the logged and registered model.

- Tracking URI: ``$MLFLOW_TRACKING_URI``, else ``mlflow.tracking_uri`` in params, else
  ``sqlite:///<repo>/mlflow.db``; artifacts of new experiments under ``<repo>/mlruns``.
- One experiment per dataset/profile (``actionrec-<profile>`` unless
  ``mlflow.experiment`` names one); one run per architecture per pipeline run, named
  after the architecture and tagged with the git commit, the DVC stage, the profile.
- Metric names are the same for the five architectures (``train_loss``,
  ``val_accuracy``, ``test_macro_f1``...), so the MLflow UI's compare view lines them up.
- Each run logs its data as MLflow datasets (the Dataset column of the runs table): the
  manifest rows of every split it used (context = the split) and the frame or feature
  store, each with DVC's hash from ``dvc.lock`` as the digest; and, while it trains,
  MLflow's system metrics (CPU, memory, GPU where there is one).
- Experiments are tagged as model development, and the UI links this module makes open
  MLflow 3's model-training view (the runs table, not the GenAI overview of traces);
  :func:`compare_url` opens the compare view of the five runs.
- The model is logged as an MLflow pyfunc that wraps the ``.keras`` file (with the
  ``actionrec`` package as code, so it loads anywhere) and is registered as
  ``actionrec-<arch>``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import warnings
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import keras
import numpy as np
import pandas as pd
import yaml

MODEL_PREFIX = "actionrec-"
PACKAGE_DIR = Path(__file__).resolve().parent

#: Pinned requirements of the logged model (explicit: MLflow's inference of them
#: re-imports the model and takes ~5x longer).
PIP_REQUIREMENTS = [
    "tensorflow==2.21.0", "keras==3.15.1", "mlflow==3.17.2", "numpy", "pandas",
    "opencv-python-headless==5.0.0.93", "pydantic>=2.7,<3", "pyyaml", "tqdm",
]


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


def git_commit(root: Path) -> str:
    """HEAD's commit hash, or ``"unknown"`` outside a git repository."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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


def ui_url(uri: str, configured: str) -> str:
    """The MLflow UI's address: the tracking server itself when ``uri`` is HTTP(S), else
    ``configured`` (``mlflow.ui_url``: where ``mlflow ui`` serves a local store)."""
    base = uri if uri.startswith(("http://", "https://")) else configured
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
    if not uri.startswith(("http://", "https://")):  # a local store: `mlflow ui` serves it
        links["serve"] = (f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui "
                          f"--backend-store-uri {uri}")
    return links


def dvc_hash(path: Path, root: Path = Path(".")) -> str | None:
    """DVC's hash of ``path`` (or of the DVC output that holds it) as ``root/dvc.lock`` has it.

    Every stage's ``outs`` and ``deps`` are searched; a folder's hash is DVC's ``<md5>.dir``
    (36 characters, MLflow's limit for a dataset digest). Returns ``None`` when the path is
    in no stage of ``dvc.lock`` (or there is none: a stage run by hand).
    """
    lock = root / "dvc.lock"
    if not lock.is_file():
        return None
    try:
        rel = PurePosixPath(Path(os.path.relpath(Path(path).resolve(), root.resolve())).as_posix())
        stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    except (OSError, ValueError, yaml.YAMLError):
        return None
    found: dict[PurePosixPath, str] = {}
    for stage in stages.values():
        for entry in [*stage.get("outs", []), *stage.get("deps", [])]:
            out = PurePosixPath(entry.get("path", ""))
            if entry.get("md5") and (rel == out or out in rel.parents):
                found[out] = entry["md5"]
    return found[max(found, key=lambda p: len(p.parts))] if found else None


def log_data_inputs(manifest: Path, splits: list[str], store: Path | None = None,
                    store_context: str = "train", root: Path = Path(".")) -> None:
    """Log the run's data as MLflow datasets (``mlflow.log_input``) into the active run.

    Args:
        manifest: ``data/manifest.csv``; for each of ``splits`` its rows are logged as the
            dataset ``manifest:<split>`` with ``context=<split>`` (the Dataset column of the
            MLflow runs table), digest = DVC's hash of the manifest (its MD5 without DVC).
        store: the frame or feature store the model read (``data/frames/<size>``,
            ``data/features/<arch>``), logged as metadata (``mlflow.data.meta_dataset``),
            named by its path, digest = DVC's hash of the output that holds it.
        root: the folder of ``dvc.lock`` (the repository root).
    """
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    rows = pd.read_csv(manifest)
    digest = dvc_hash(manifest, root)
    if digest is None:  # no dvc.lock entry: the file's MD5, which is what DVC 3 records
        with open(manifest, "rb") as fh:
            digest = hashlib.file_digest(fh, "md5").hexdigest()
    source = str(Path(manifest).resolve())
    with warnings.catch_warnings():
        # MLflow's hints that don't apply here: a local path matches both of its local
        # source classes (same type), and integer columns are fine in a dataset record.
        warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer")
        for split in splits:
            part = rows[rows["split"] == split].reset_index(drop=True)
            dataset = mlflow.data.from_pandas(part, source=source, targets="label",
                                              name=f"manifest:{split}", digest=digest)
            mlflow.log_input(dataset, context=split, tags={"clips": str(len(part))})
        if store is not None:
            name = Path(os.path.relpath(Path(store).resolve(), root.resolve())).as_posix()
            dataset = MetaDataset(resolve_dataset_source(str(Path(store).resolve())),
                                  name=name, digest=dvc_hash(store, root))
            mlflow.log_input(dataset, context=store_context)


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


class EpochMetrics(keras.callbacks.Callback):
    """Log every epoch's logs to the active MLflow run: ``loss`` -> ``train_loss``,
    ``val_loss`` -> ``val_loss``, plus the optimizer's ``learning_rate``; step = epoch.

    Best effort: when the tracking server stops answering, training goes on; one line says
    so, later epochs are not sent, and :func:`finish_run` logs them from ``history.csv``.
    """

    def __init__(self, uri: str = "") -> None:
        super().__init__()
        self.uri = uri
        self.lost: Exception | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        import sys

        import mlflow

        if self.lost is not None:
            return
        metrics = {metric_name(k): float(v) for k, v in (logs or {}).items()}
        metrics["learning_rate"] = float(keras.ops.convert_to_numpy(
            self.model.optimizer.learning_rate))
        try:
            mlflow.log_metrics(metrics, step=epoch)
        except Exception as err:  # noqa: BLE001 (any failure of the tracking call)
            self.lost = err
            print(f"warning: the MLflow tracking server {self.uri} stopped answering at epoch "
                  f"{epoch + 1} ({type(err).__name__}); training goes on and its epochs are "
                  "logged when the run is finished", file=sys.stderr, flush=True)


def log_model(model_path: Path, meta_path: Path, example: np.ndarray, probs: np.ndarray,
              classes: list[str], registered_name: str | None) -> Any:
    """Log the ``.keras`` model as a pyfunc with a tensor signature; register it if named."""
    import mlflow
    from mlflow.models import infer_signature

    signature = infer_signature(example, pd.DataFrame(probs, columns=classes))
    with _quiet_logger("mlflow.pyfunc"):
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


#: The registry alias of the best tested architecture (set by the ``compare`` stage).
CHAMPION_ALIAS = "champion"


def set_champion(uri: str, best: str, runs: dict[str, dict[str, Any]]) -> str | None:
    """Point the alias ``champion`` at ``best``'s registered model version.

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
    return f"models:/{name}@{CHAMPION_ALIAS}"


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
    import time

    import mlflow
    import requests
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param
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
        params = [Param(k, v) for k, v in rec["params"].items() if k not in run.data.params]
        for i in range(0, len(params), 100):
            client.log_batch(run_id, params=params[i:i + 100])
        hist = pd.read_csv(model_dir / "history.csv")
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
