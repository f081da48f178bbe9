"""Stage ``train@<arch>``: fit one architecture with the shared recipe (Adam,
ReduceLROnPlateau, EarlyStopping, checkpoints, resume) and log the run to MLflow."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actionrec.config import load_params
from actionrec.pipeline import add_architecture_options, run_stage, stage_main

DESCRIPTION = ("Fit one architecture with the shared recipe (Adam, ReduceLROnPlateau, "
               "EarlyStopping, checkpoints, resume).")


def train(params: str, arch: str, classes: str, frames: str, features: str, out: str,
          work: str, manifest: str | None = None) -> dict[str, Any]:
    """Stage ``train@<arch>``: fit, save ``model.keras``, log the run to MLflow (with the
    manifest's train and validation rows and the store it read as MLflow datasets).

    The params are validated and the tracking server checked before Keras is imported.

    Returns:
        The model's ``meta.json`` content.

    Raises:
        ConfigError: a bad value in params.yaml.
        TrackingUnavailable: the MLflow tracking server does not answer.
    """
    cfg = load_params(params, stage=f"train@{arch}")
    from actionrec.tracking import store

    uri = store.tracking_uri(cfg.mlflow.tracking_uri, Path("."))
    store.check_reachable(uri)
    from actionrec.runtime import print_runtime
    from actionrec.training import train_architecture

    print_runtime(f"train@{arch}")
    meta = train_architecture(arch, cfg, json.loads(Path(classes).read_text()), Path(frames),
                              Path(features), Path(out), Path(work) / arch,
                              manifest=Path(manifest) if manifest else None, uri=uri)
    print(f"train@{arch}: {meta['epochs_trained']} epochs, {meta['parameters']:,} parameters, "
          f"MLflow run {meta['mlflow_run_id']}")
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
