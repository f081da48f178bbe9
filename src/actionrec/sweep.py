"""``actionrec sweep ARCH --trials N``: a hyper-parameter search that any number of
processes and machines join, on Optuna.

Every worker runs the same command against the same Optuna storage (``sweep.storage``: the
team server's PostgreSQL, or SQLite for the processes of one machine). The first one creates
the study, enqueues its ``N`` trials (one *slot* each) and an MLflow parent run; the others
join it. A worker takes the next waiting trial, draws its settings from ``sweep.space`` (TPE
with the constant liar, so that concurrent trials spread: Optuna docs, "Distributed
optimization"), trains it in this process with the pipeline's own
:func:`~actionrec.training.train_architecture` (an MLflow child run of the sweep's run),
reports the validation metric of every epoch to Optuna's median pruner (a trial below the
median of earlier trials at the same epoch stops there), and evaluates a finished trial on
the test split with ``evaluate@ARCH``'s own function. A worker's heartbeats mark its trial
alive: when they stop (a killed worker, a lost host) a remaining worker marks the trial
failed and runs it again (Optuna's ``RetryHeartbeatStaleTrialCallback``). A worker ends
when no trial waits and none runs.

At the end the best trial is printed, and logged on the parent run, as one
``dvc exp run -S ...`` command: the pipeline retrains that trial (same params, same seed,
same code) and gets its test metrics.

Outputs: ``sweeps/<study>/trial-<n>/`` (``params.yaml`` the trial ran with, ``model/``,
``report/``), and the SQLite storage ``sweeps/optuna.db`` by default. No stage reads any of
it; ``dvc.yaml`` does not list this module.
"""

from __future__ import annotations

import collections
import json
import os
import shlex
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from actionrec.config import (
    Params,
    SearchDimension,
    deep_merge,
    parse_params,
    read_raw,
)
from actionrec.errors import ActionrecError, ConfigError
from actionrec.io import write_text

#: The study's user attributes: a trial's slot (0..N-1; a retried trial keeps its slot),
#: the MLflow parent run (set last by the study's creator: the study is ready), N.
SLOT_ATTR = "actionrec_slot"
PARENT_ATTR = "mlflow_parent_run_id"
TRIALS_ATTR = "n_trials"
#: Settings a trial cannot change: they select the stored frames or cached features that
#: every trial reads as they are (sweep those with `dvc exp run --queue`, docs/scaling.md).
NOT_SWEPT = ("image_size", "backbone")
#: Default storage: SQLite beside the trials (the processes of one machine).
DEFAULT_STORAGE = "sqlite:///sweeps/optuna.db"


@dataclass(frozen=True)
class Dimension:
    """One swept setting: ``key`` in ``sweep.space``, ``path`` in params.yaml."""

    key: str  # e.g. "learning_rate"
    path: str  # e.g. "models.lrcn.learning_rate"
    spec: SearchDimension

    def extremes(self) -> list[Any]:
        """The values that bound the dimension: ``low`` and ``high``, or every choice."""
        return list(self.spec.choices) if self.spec.choices is not None else [
            self.spec.low, self.spec.high]


def _nested(path: str, value: Any) -> dict[str, Any]:
    """``"models.lrcn.dropout", 0.3`` -> ``{"models": {"lrcn": {"dropout": 0.3}}}``."""
    out: dict[str, Any] = value
    for part in reversed(path.split(".")):
        out = {part: out}
    return out


def with_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``raw`` params with dotted ``overrides`` applied (as ``dvc exp run -S`` does)."""
    for path, value in overrides.items():
        raw = deep_merge(raw, _nested(path, value))
    return raw


def search_space(raw: dict[str, Any], params: Params, arch: str) -> list[Dimension]:
    """The dimensions of ``sweep.space`` for ``arch``, each checked at its bounds.

    Raises:
        ConfigError: a key that is not a setting of ``models.<arch>``, one that changes the
            stored frames or features (:data:`NOT_SWEPT`), or a bound (``low``, ``high``,
            a choice) that params.yaml would refuse. Nothing has run.
    """
    fields = type(params.models.get(arch)).model_fields
    dims = []
    for key, spec in params.sweep.space.items():
        if key in NOT_SWEPT:
            raise ConfigError(
                f"sweep.space.{key}: changes the frames or features every trial reads; sweep "
                f"it with `dvc exp run --queue -S models.{arch}.{key}=...` (docs/scaling.md, "
                "\"Queued experiments\")")
        if key not in fields:
            raise ConfigError(f"sweep.space.{key}: not a setting of models.{arch} (those "
                              f"are: {', '.join(sorted(set(fields) - set(NOT_SWEPT)))})")
        dims.append(Dimension(key, f"models.{arch}.{key}", spec))
    for dim in dims:
        for value in dim.extremes():
            parse_params(with_overrides(raw, {dim.path: value}),
                         source=f"params.yaml with sweep.space.{dim.key} = {value!r}")
    by_key = {d.key: d for d in dims}
    for i, point in enumerate(params.sweep.enqueue):
        unknown = set(point) - set(by_key)
        if unknown:
            raise ConfigError(f"sweep.enqueue[{i}]: {', '.join(sorted(unknown))} not in "
                              f"sweep.space ({', '.join(by_key)})")
        parse_params(with_overrides(raw, {by_key[k].path: v for k, v in point.items()}),
                     source=f"params.yaml with sweep.enqueue[{i}]")
    return dims


def _coded(dim: Dimension, value: Any) -> Any:
    """A value as Optuna stores it: a list or mapping choice by its JSON text."""
    return json.dumps(value) if dim.spec.choices is not None and isinstance(
        value, list | dict) else value


def suggest(trial: Any, dims: list[Dimension]) -> dict[str, Any]:
    """Draw each dimension from an Optuna trial; returns ``{params path: value}``.

    Choices that Optuna cannot store as they are (lists, mappings) are drawn by their JSON
    text and given back as the value itself."""
    values: dict[str, Any] = {}
    for dim in dims:
        s = dim.spec
        if s.choices is not None:
            coded = {_coded(dim, c): c for c in s.choices}
            values[dim.path] = coded[trial.suggest_categorical(dim.key, list(coded))]
        elif s.whole_numbers:
            values[dim.path] = trial.suggest_int(dim.key, s.low, s.high, step=s.step or 1,
                                                 log=s.log)
        else:
            values[dim.path] = trial.suggest_float(dim.key, s.low, s.high, step=s.step,
                                                   log=s.log)
    return values


def _yaml_value(value: Any) -> str:
    """``value`` as YAML that PyYAML and DVC read back as the same value (a float always
    has a dot, as YAML 1.1 needs: ``1e-05`` would be read as a string)."""
    if isinstance(value, float):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        return text if not e or "." in mantissa else f"{mantissa}.0e{exponent}"
    return json.dumps(value)


def exp_run_command(overrides: dict[str, Any]) -> str:
    """The ``dvc exp run`` command that trains these settings through the pipeline."""
    return "dvc exp run " + " ".join(
        f"-S {shlex.quote(f'{path}={_yaml_value(value)}')}" for path, value in overrides.items())


def kept_epoch_value(history: Path, metric: str) -> float:
    """``metric`` at the epoch whose weights training kept: the lowest ``val_loss`` (the
    recipe's checkpoint and early stopping monitor it)."""
    import pandas as pd

    hist = pd.read_csv(history)
    return float(hist.loc[hist["val_loss"].idxmin(), metric])


def redact(url: str) -> str:
    """A storage URL without its password (for logs and MLflow)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class _RetryStale:
    """Optuna's stale-trial callback (``RetryHeartbeatStaleTrialCallback``, one retry),
    which also ends the stale trial's MLflow run as KILLED."""

    def __init__(self, uri: str) -> None:
        import optuna

        self.uri = uri
        self.retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)

    def __call__(self, study: Any, trial: Any) -> None:
        from actionrec.tracking import runs

        print(f"sweep: trial {trial.number}'s worker stopped sending heartbeats: the trial "
              "failed; it is queued again", flush=True)
        self.retry(study, trial)
        run_id = trial.user_attrs.get("mlflow_run_id")
        if run_id:
            runs.end_run(self.uri, run_id, "KILLED")


class _NoSlotLeft(Exception):
    """Raised in a trial that Optuna created because another worker took the last waiting
    one first: recorded as failed, it runs nothing."""


def _prune_callback(trial: Any, metric: str) -> Any:
    """A Keras callback: reports ``metric`` of each epoch to ``trial`` and stops training
    when Optuna's pruner says so (``pruned_at``: that epoch)."""
    import keras

    class PruneOnEpoch(keras.callbacks.Callback):
        pruned_at: int | None = None

        def on_train_begin(self, logs: dict | None = None) -> None:
            import mlflow

            # known before any epoch: a trial whose worker dies is ended KILLED in MLflow
            trial.set_user_attr("mlflow_run_id", mlflow.active_run().info.run_id)

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            if metric not in logs:
                raise ConfigError(f"sweep.metric {metric!r} is not an epoch metric of this "
                                  f"training (it has: {', '.join(sorted(logs))})")
            trial.report(float(logs[metric]), epoch)
            if trial.should_prune():
                self.pruned_at = epoch
                self.model.stop_training = True

    return PruneOnEpoch()


@dataclass
class Worker:
    """One worker of a sweep: what every trial of this process shares."""

    arch: str
    raw: dict[str, Any]
    params: Params
    dims: list[Dimension]
    classes: list[str]
    frames: Path
    features: Path
    manifest: Path
    out: Path  # sweeps/<study>
    uri: str

    def objective(self, trial: Any) -> float:
        """Train (and evaluate) one trial; its value is the validation metric."""
        import gc

        import keras
        import optuna
        from mlflow import MlflowClient

        from actionrec.pipeline.evaluate import evaluate
        from actionrec.training import RunHooks, TrainPaths, train_architecture

        if SLOT_ATTR not in trial.user_attrs:
            raise _NoSlotLeft(f"trial {trial.number}: every slot of the study was taken")
        overrides = suggest(trial, self.dims)
        trial.set_user_attr("overrides", overrides)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial_dir = self.out / f"trial-{trial.number}"
        trial_dir.mkdir(parents=True, exist_ok=True)
        raw = with_overrides(self.raw, {**overrides, "mlflow.register": False})
        trial_params = trial_dir / "params.yaml"
        write_text(trial_params, yaml.safe_dump(raw, sort_keys=False))
        cfg = parse_params(raw, source=str(trial_params))
        s = self.params.sweep
        shown = ", ".join(f"{d.key}={overrides[d.path]:.4g}" if isinstance(
            overrides[d.path], float) else f"{d.key}={overrides[d.path]}" for d in self.dims)
        print(f"sweep: trial {trial.number} (slot {trial.user_attrs[SLOT_ATTR]}): {shown}",
              flush=True)
        prune = _prune_callback(trial, s.metric)
        parent = trial.study.user_attrs[PARENT_ATTR]
        try:
            meta = train_architecture(
                self.arch, cfg, self.classes,
                TrainPaths(self.frames, self.features, trial_dir / "model", trial_dir / "work",
                           manifest=self.manifest),
                uri=self.uri,
                hooks=RunHooks(callbacks=[prune], name=f"trial {trial.number}",
                               tags={"mlflow.parentRunId": parent,
                                     "sweep.study": trial.study.study_name,
                                     "sweep.trial": str(trial.number)}))
            run_id = meta["mlflow_run_id"]
            trial.set_user_attr("mlflow_run_id", run_id)
            client = MlflowClient(self.uri)
            value = kept_epoch_value(trial_dir / "model" / "history.csv", s.metric)
            client.log_metric(run_id, f"sweep_{s.metric}", value)
            client.set_tag(run_id, "sweep.state",
                           "PRUNED" if prune.pruned_at is not None else "COMPLETE")
            if prune.pruned_at is not None:
                print(f"sweep: trial {trial.number} pruned after epoch {prune.pruned_at + 1}",
                      flush=True)
                raise optuna.TrialPruned(f"{s.metric} below the median at epoch "
                                         f"{prune.pruned_at + 1}")
            # evaluate@ARCH's own function: the same metrics, plots and MLflow logging
            metrics = evaluate(str(trial_params), self.arch, str(trial_dir / "model"),
                               str(self.frames), str(self.features), str(trial_dir / "report"),
                               manifest=str(self.manifest))
        finally:
            keras.backend.clear_session()
            gc.collect()
        trial.set_user_attr("test_metrics", {  # what the CI gate compares
            k: metrics[k] for k in cfg.gate.metrics_for(self.arch)})
        print(f"sweep: trial {trial.number}: {s.metric} {value:.4f}, test top-1 "
              f"{metrics['top1_accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}", flush=True)
        return value


#: What a database says when another worker created the same table or schema stamp a moment
#: earlier (SQLite, PostgreSQL, MySQL wordings), or held SQLite's write lock past its timeout.
_CREATION_RACE = ("already exists", "unique constraint failed", "duplicate key",
                  "database is locked")


def open_storage(url: str, attempts: int = 5, **kwargs: Any) -> Any:
    """Optuna's ``RDBStorage`` on ``url``, safe when several workers open a new storage at once.

    ``RDBStorage`` creates the tables and stamps the schema version when it finds none. Two
    workers that open a new storage at the same moment both try; the slower one fails with
    ``table studies already exists`` or ``UNIQUE constraint failed:
    alembic_version.version_num`` (Optuna issues #1092, #4621: the maintainers advise creating
    the storage first, from one process). The other worker's schema is complete once its
    transaction ends, so this opens again, up to ``attempts`` times, 0.2 s, 0.4 s, ... apart.

    Args:
        url: SQLAlchemy database URL (``sqlite:///sweeps/optuna.db``,
            ``postgresql+psycopg2://...``).
        attempts: openings tried before the error is raised.
        **kwargs: passed to ``optuna.storages.RDBStorage``.

    Raises:
        sqlalchemy.exc.DBAPIError: any other database error (an unreachable server, bad
            credentials) at once, or the creation race on the last attempt.
    """
    import optuna
    import sqlalchemy.exc

    for attempt in range(1, attempts):
        try:
            return optuna.storages.RDBStorage(url, **kwargs)
        except sqlalchemy.exc.DBAPIError as e:
            if not any(m in str(e.orig).lower() for m in _CREATION_RACE):
                raise
            time.sleep(0.2 * attempt)
    return optuna.storages.RDBStorage(url, **kwargs)


def _check_joinable(study: Any, name: str, mine: dict[str, Any], storage_url: str,
                    wait_s: float) -> None:
    """Wait until the study's creator has made it ready (its MLflow parent run is set),
    then check that it was started with ``mine`` (architecture, space, N).

    Raises:
        ActionrecError: not ready within ``wait_s`` s (its creator failed).
        ConfigError: it was started with other settings (each difference named).
    """
    deadline = time.monotonic() + wait_s
    while PARENT_ATTR not in study.user_attrs:  # its creator is still setting it up
        if time.monotonic() > deadline:
            raise ActionrecError(
                f"study {name!r} in {redact(storage_url)} was never made ready (no MLflow "
                f"parent run after {wait_s:.0f} s): its creator failed; delete the study "
                f"(`optuna delete-study --study-name {name} --storage URL`) and start "
                "again") from None
        time.sleep(1)
    theirs = {k: study.user_attrs.get(k) for k in mine}
    if theirs != mine:
        diff = ", ".join(f"{k}: study {theirs[k]!r}, here {mine[k]!r}"
                         for k in mine if theirs[k] != mine[k])
        raise ConfigError(f"study {name!r} was started with other settings ({diff}); "
                          "run the same command and params, or name another study "
                          "(--study or sweep.study)") from None


def _set_up_study(study: Any, name: str, params: Params, arch: str, n_trials: int,
                  dims: list[Dimension], space: dict[str, Any], uri: str, root: Path,
                  storage_url: str) -> str:
    """A new study's set-up: its MLflow parent run (with the sweep's settings as params),
    its attributes, and its ``n_trials`` slots (``sweep.enqueue`` points first); the
    parent run's id is set last, which makes the study ready to join. Returns that id."""
    from mlflow import MlflowClient
    from mlflow.entities import Param

    from actionrec.tracking import store

    s = params.sweep
    experiment_id = store.setup(uri, params.experiment_name(), root)
    client = MlflowClient(uri)
    parent = client.create_run(
        experiment_id, run_name=f"sweep {name}",
        tags={"sweep.study": name, "sweep.architecture": arch,
              "sweep.storage": redact(storage_url)}).info.run_id
    logged = {"architecture": arch, "trials": n_trials, "metric": s.metric,
              "direction": s.direction, "pruner": s.pruner,
              "enqueue": json.dumps(space["enqueue"]),
              **{f"space.{d.key}": json.dumps(space[d.path]) for d in dims}}
    client.log_batch(parent, params=[Param(k, str(v)) for k, v in logged.items()])
    study.set_user_attr("architecture", arch)
    study.set_user_attr("space", space)
    study.set_user_attr(TRIALS_ATTR, n_trials)
    by_key = {d.key: d for d in dims}
    for slot in range(n_trials):
        first = s.enqueue[slot] if slot < len(s.enqueue) else {}
        study.enqueue_trial({k: _coded(by_key[k], v) for k, v in first.items()},
                            user_attrs={SLOT_ATTR: slot})
    study.set_user_attr(PARENT_ATTR, parent)  # last: the study is ready to join
    return parent


def _open_study(name: str, storage: Any, params: Params, arch: str, n_trials: int,
                dims: list[Dimension], uri: str, root: Path, storage_url: str,
                wait_s: float = 120) -> Any:
    """Create the study (its N slots, its MLflow parent run) or join it.

    Raises:
        ConfigError: the study exists for another architecture, search space or N.
        ActionrecError: its creator never finished setting it up (within ``wait_s``).
    """
    import optuna

    s = params.sweep

    def sampler(seed: int) -> Any:
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)

    pruner = optuna.pruners.MedianPruner(n_startup_trials=s.pruner_startup_trials,
                                         n_warmup_steps=s.pruner_warmup_epochs) \
        if s.pruner == "median" else optuna.pruners.NopPruner()
    space = {d.path: d.spec.model_dump(exclude_none=True) for d in dims}
    space["enqueue"] = list(s.enqueue)
    try:
        study = optuna.create_study(study_name=name, storage=storage, sampler=sampler(s.seed),
                                    pruner=pruner, direction=s.direction)
    except optuna.exceptions.DuplicatedStudyError:
        # A joining worker draws from its own seed: with the creator's, its first (random)
        # draws would repeat the creator's settings.
        study = optuna.load_study(study_name=name, storage=storage, pruner=pruner,
                                  sampler=sampler(hash((s.seed, socket.gethostname(),
                                                        os.getpid())) % 2**32))
        _check_joinable(study, name, {"architecture": arch, "space": space,
                                      TRIALS_ATTR: n_trials}, storage_url, wait_s)
        print(f"sweep: joined study {name!r} ({n_trials} trials) in {redact(storage_url)}",
              flush=True)
        return study
    try:
        parent = _set_up_study(study, name, params, arch, n_trials, dims, space, uri, root,
                               storage_url)
    except BaseException:
        # never leave a study that workers would wait on forever
        optuna.delete_study(study_name=name, storage=storage)
        raise
    print(f"sweep: created study {name!r} ({n_trials} trials) in {redact(storage_url)}; "
          f"MLflow parent run {parent}", flush=True)
    return study


def summary(study: Any, uri: str) -> dict[str, Any] | None:
    """The best finished trial: printed, and logged on the parent run (tags
    ``sweep.best_command``, ``sweep.best_trial``, metric ``best_value``); the parent run
    ends FINISHED once no trial waits or runs. Returns ``{"trial", "value", "overrides",
    "command", "test_metrics", "mlflow_run_id"}`` or None when no trial has finished."""
    import optuna
    from mlflow import MlflowClient

    states = collections.Counter(t.state for t in study.get_trials(deepcopy=False))
    shown = ", ".join(f"{n} {state.name.lower()}" for state, n in sorted(
        states.items(), key=lambda kv: kv[0].value))
    print(f"sweep: study {study.study_name!r}: {shown}", flush=True)
    done = [t for t in study.get_trials(deepcopy=False,
                                        states=(optuna.trial.TrialState.COMPLETE,))]
    if not done:
        print("sweep: no trial finished", flush=True)
        return None
    best = study.best_trial
    overrides = best.user_attrs["overrides"]
    command = exp_run_command(overrides)
    metric = study.user_attrs.get("metric") or "objective"
    client = MlflowClient(uri)
    parent = study.user_attrs[PARENT_ATTR]
    client.set_tag(parent, "sweep.best_trial", str(best.number))
    client.set_tag(parent, "sweep.best_command", command)
    client.log_metric(parent, "best_value", best.value)
    finished = not (states[optuna.trial.TrialState.WAITING] or
                    states[optuna.trial.TrialState.RUNNING])
    if finished:
        client.set_terminated(parent, "FINISHED")
    print(f"sweep: best trial {best.number}: {metric} {best.value:.4f}; test "
          + ", ".join(f"{k} {v:.3f}" for k, v in best.user_attrs["test_metrics"].items())
          + f"\nsweep: reproduce it through the pipeline:\n  {command}", flush=True)
    return {"trial": best.number, "value": best.value, "overrides": overrides,
            "command": command, "test_metrics": best.user_attrs["test_metrics"],
            "mlflow_run_id": best.user_attrs["mlflow_run_id"]}


def run_sweep(params_path: str, arch: str, n_trials: int, storage_url: str | None = None,
              study_name: str | None = None, frames: str = "data/frames",
              features: str = "data/features", classes: str = "data/classes.json",
              manifest: str = "data/manifest.csv", out: str = "sweeps") -> dict[str, Any] | None:
    """Run (or join) the sweep of ``arch``; returns :func:`summary`'s record.

    Raises:
        ConfigError: a bad ``sweep:`` setting or search space, or a study started with
            other settings (before any trial runs).
        ActionrecError: the stored frames or features ``arch`` trains on are missing, the
            data have no validation split, or the tracking server does not answer.
    """
    raw = read_raw(params_path)
    params = parse_params(raw, source=str(params_path))
    s = params.sweep
    if not s.metric.startswith("val_"):
        raise ConfigError(f"sweep.metric {s.metric!r}: trials are compared on the validation "
                          "split (val_loss, val_accuracy, val_macro_f1, ...), never the test")
    dims = search_space(raw, params, arch)
    settings = params.models.get(arch)
    import pandas as pd

    from actionrec.data.frames import frames_dir
    from actionrec.tracking import store

    store_dir = frames_dir(frames, settings.image_size)
    needs = (Path(features) / arch / "index.csv") if settings.trains_on_features else \
        store_dir / "index.csv"
    if not needs.exists() or not Path(classes).exists():
        stage = f"extract_features@{arch}" if settings.trains_on_features else "extract_frames"
        raise ActionrecError(f"{needs} not found: the trials train on the pipeline's stored "
                             f"data; run `dvc repro {stage}` (or `dvc pull`) first")
    if "val" not in set(pd.read_csv(store_dir / "index.csv")["split"]):
        raise ActionrecError("the data have no validation split (data.val_fraction: 0): a "
                             "sweep compares trials on it; set data.val_fraction > 0")
    uri = store.tracking_uri(params.mlflow.tracking_uri, Path("."))
    store.check_reachable(uri)
    name = study_name or s.study or f"actionrec-{arch}-{params.profile}"
    url = storage_url or s.storage or DEFAULT_STORAGE
    if url == DEFAULT_STORAGE:
        Path(out).mkdir(parents=True, exist_ok=True)

    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # heartbeats and their retry callback are marked experimental (since Optuna 2.8/2.9)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = open_storage(
        url, engine_kwargs={"pool_pre_ping": True},
        heartbeat_interval=s.heartbeat_s, grace_period=2 * s.heartbeat_s,
        heartbeat_stale_trial_callback=_RetryStale(uri))
    study = _open_study(name, storage, params, arch, n_trials, dims, uri, Path("."), url)
    study.set_user_attr("metric", s.metric)
    worker = Worker(arch, raw, params, dims, json.loads(Path(classes).read_text()),
                    Path(frames), Path(features), Path(manifest), Path(out) / name, uri)
    waiting_note = False
    while True:
        optuna.storages.fail_stale_trials(study)
        states = collections.Counter(t.state for t in study.get_trials(deepcopy=False))
        if states[optuna.trial.TrialState.WAITING]:
            study.optimize(worker.objective, n_trials=1, catch=(_NoSlotLeft,))
            continue
        if states[optuna.trial.TrialState.RUNNING]:
            if not waiting_note:
                print(f"sweep: no trial left to start; waiting for the "
                      f"{states[optuna.trial.TrialState.RUNNING]} running elsewhere (a "
                      f"silent one is run again here after {2 * s.heartbeat_s} s)", flush=True)
                waiting_note = True
            time.sleep(min(s.heartbeat_s, 5))
            continue
        break
    return summary(study, uri)
