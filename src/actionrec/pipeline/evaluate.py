"""Stage ``evaluate@<arch>``: test-split metrics, confusion matrix, curves and latency,
logged into the architecture's MLflow training run."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actionrec.config import load_params
from actionrec.errors import ActionrecError
from actionrec.pipeline import add_architecture_options, run_stage, stage_main

DESCRIPTION = ("Test metrics, confusion matrix, curves and latency; logged into the "
               "architecture's MLflow training run.")


def evaluate(params: str, arch: str, model: str, frames: str, features: str,
             report: str, manifest: str | None = None,
             views: str | None = None) -> dict[str, Any]:
    """Stage ``evaluate@<arch>``: test metrics, plots; logged into the training run (with
    the manifest's test rows as its ``test`` dataset).

    Returns:
        ``metrics.json``'s content (top-1 accuracy, macro precision / recall / F1, ...).

    Raises:
        ActionrecError: no trained model, or its MLflow run is not logged yet.
    """
    cfg = load_params(params, stage=f"evaluate@{arch}")
    from actionrec.tracking import recovery, runs, store

    e = cfg.evaluate
    report_dir = Path(report)
    run_file = Path(model) / "mlflow_run.json"
    if not run_file.exists():
        waiting = (Path(model) / recovery.PENDING_FILE).exists()
        raise ActionrecError(
            f"{model} has a trained model whose MLflow run is not logged yet: "
            f"`actionrec track {model}` logs it" if waiting else
            f"{model} holds no trained model: run `dvc repro train@{arch}` first")
    uri = store.tracking_uri(cfg.mlflow.tracking_uri, Path("."))
    store.check_reachable(uri)
    from actionrec.evaluation import evaluate_architecture
    from actionrec.runtime import print_runtime

    print_runtime(f"evaluate@{arch}")
    metrics = evaluate_architecture(arch, Path(model), Path(frames), Path(features),
                                    report_dir, e.top_k, e.latency_warmup, e.latency_runs,
                                    interval_level=e.interval_level, resamples=e.resamples,
                                    seed=cfg.seed, views_root=Path(views) if views else None)
    run = json.loads(run_file.read_text())
    store.setup(uri, run["experiment"], Path("."))
    runs.log_test_results(run["run_id"], metrics, [
        report_dir / n for n in ("metrics.json", "per_class.json", "confusion.png",
                                 "curves.png", "predictions.csv")],
        manifest=Path(manifest) if manifest else None)
    level = round(100 * e.interval_level)
    print(f"evaluate@{arch}: top-1 {metrics['top1_accuracy']:.3f} "
          f"[{metrics['top1_accuracy_ci_low']:.3f}, {metrics['top1_accuracy_ci_high']:.3f}], "
          f"macro-F1 {metrics['macro_f1']:.3f} "
          f"[{metrics['macro_f1_ci_low']:.3f}, {metrics['macro_f1_ci_high']:.3f}] "
          f"({level} % intervals over {metrics['n_test_groups']} test groups), "
          f"{metrics['latency_ms']:.1f} ms/clip; video level over {metrics['views']} views: "
          f"top-1 {metrics['video_top1_accuracy']:.3f}, "
          f"macro-F1 {metrics['video_macro_f1']:.3f}")
    return metrics


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The stage's options; sets ``run``."""
    add_architecture_options(p)
    p.add_argument("--model", help="default: models/<arch>")
    p.add_argument("--manifest", default="data/manifest.csv",
                   help="its test rows are logged as the run's test dataset (default: "
                        "%(default)s)")
    p.add_argument("--report", help="default: reports/evaluate/<arch>")
    p.add_argument("--views", default="data/views",
                   help="the test clips' extra temporal views (stage extract_views; default: "
                        "%(default)s)")
    p.set_defaults(run=lambda a: run_stage(
        evaluate, params=a.params, arch=a.arch, model=a.model or f"models/{a.arch}",
        manifest=a.manifest, frames=a.frames, features=a.features, views=a.views,
        report=a.report or f"reports/evaluate/{a.arch}"))


def main(argv: Sequence[str] | None = None) -> None:
    """``python stages/evaluate.py ARCH [options]``."""
    stage_main("evaluate", DESCRIPTION, add_arguments, argv)
