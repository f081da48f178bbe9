"""Stage ``train@<arch>``: fit one architecture with the shared recipe (Adam,
ReduceLROnPlateau, EarlyStopping, checkpoints, resume) and log the run to MLflow."""

from __future__ import annotations

import argparse
import json
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actionrec.config import load_params
from actionrec.errors import ActionrecError
from actionrec.pipeline import add_architecture_options, run_stage, stage_main

DESCRIPTION = ("Fit one architecture with the shared recipe (Adam, ReduceLROnPlateau, "
               "EarlyStopping, checkpoints, resume).")


def train(params: str, arch: str, classes: str, frames: str, features: str, out: str,
          work: str, manifest: str | None = None) -> dict[str, Any]:
    """Stage ``train@<arch>``: fit, save ``model.keras``, log the run to MLflow (with the
    manifest's train and validation rows and the store it read as MLflow datasets).

    The params are validated and the tracking server checked before Keras is imported.
    With ``train.distribute: multihost`` every process of the job runs this same command;
    the job is joined first (:func:`actionrec.multihost.initialize`), only process 0 checks
    and uses the tracking server and writes, and any failure while the job runs ends this
    process with a one-line error and status 1 (:func:`actionrec.multihost.abort`).

    Returns:
        The model's ``meta.json`` content (on a process other than 0 of a multi-host job:
        ``epochs_trained`` and ``parameters`` only).

    Raises:
        ConfigError: a bad value in params.yaml, or a multi-host job that is not described.
        TrackingUnavailable: the MLflow tracking server does not answer.
        JobError: the processes of a multi-host job did not all join.
    """
    cfg = load_params(params, stage=f"train@{arch}")
    from actionrec.tracking import store

    uri = store.tracking_uri(cfg.mlflow.tracking_uri, Path("."))
    if cfg.train.distribute != "multihost":
        store.check_reachable(uri)
        return _train(arch, cfg, classes, frames, features, out, work, manifest, uri)
    from actionrec import multihost

    job = multihost.initialize(cfg.train.peer_timeout_s, f"train@{arch}")
    try:
        if job.is_chief:
            store.check_reachable(uri)
        return _train(arch, cfg, classes, frames, features, out, work, manifest, uri)
    except Exception as exc:
        if multihost.current().num_processes == 1:  # the job was over: a local failure
            raise
        if not isinstance(exc, ActionrecError) and not multihost.is_peer_loss(exc):
            traceback.print_exc()
        multihost.abort(multihost.lost_peer_message(f"train@{arch}", job, exc,
                                                    f"{work}/{arch}"))
        raise  # not reached


def _train(arch: str, cfg, classes: str, frames: str, features: str, out: str, work: str,
           manifest: str | None, uri: str) -> dict[str, Any]:
    from actionrec.runtime import print_runtime
    from actionrec.training import TrainPaths, train_architecture

    print_runtime(f"train@{arch}")
    paths = TrainPaths(Path(frames), Path(features), Path(out), Path(work) / arch,
                       manifest=Path(manifest) if manifest else None)
    meta = train_architecture(arch, cfg, json.loads(Path(classes).read_text()), paths, uri=uri)
    run = meta.get("mlflow_run_id")
    print(f"train@{arch}: {meta['epochs_trained']} epochs, {meta['parameters']:,} parameters, "
          + (f"MLflow run {run}" if run else "the model and its MLflow run are process 0's"))
    return meta


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The stage's options; sets ``run``."""
    add_architecture_options(p)
    p.add_argument("--classes", default="data/classes.json")
    p.add_argument("--manifest", default="data/manifest.csv",
                   help="logged as the run's MLflow datasets, one per split (default: "
                        "%(default)s)")
    p.add_argument("--out", help="default: models/<arch>")
    p.add_argument("--work", default="models/.resume",
                   help="resumable state of an interrupted run (default: %(default)s)")
    p.set_defaults(run=lambda a: run_stage(
        train, params=a.params, arch=a.arch, classes=a.classes, manifest=a.manifest,
        frames=a.frames, features=a.features, out=a.out or f"models/{a.arch}", work=a.work))


def main(argv: Sequence[str] | None = None) -> None:
    """``python stages/train.py ARCH [options]``."""
    stage_main("train", DESCRIPTION, add_arguments, argv)
