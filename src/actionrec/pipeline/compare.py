"""Stage ``compare``: one row per architecture (``reports/comparison.md``), a chart, and
the MLflow alias ``champion`` on the best architecture by macro-F1."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from actionrec.config import ARCHITECTURES, load_params
from actionrec.pipeline import add_params_option, run_stage, stage_main

DESCRIPTION = ("reports/comparison.md (one row per architecture, and the MLflow page "
               "comparing the runs), reports/comparison.png, and the MLflow alias 'champion' "
               "on the best architecture by macro-F1.")


def compare(params: str, reports: str, models: str = "models",
            out: str = "reports/comparison.md") -> str | None:
    """Stage ``compare``: ``out`` (``reports/comparison.md``, with the MLflow links), the
    chart beside it (``.png``), and the MLflow alias ``champion`` on the best architecture
    by macro-F1. ``reports`` holds ``<arch>/metrics.json`` (``reports/evaluate``).

    Returns:
        The champion's model URI (``models:/actionrec-<arch>@champion``), or ``None``
        when models are not registered (``mlflow.register: false``).
    """
    cfg = load_params(params, stage="compare")
    from actionrec.evaluation import compare as compare_reports
    from actionrec.tracking import links as ui
    from actionrec.tracking import runs as mlflow_runs
    from actionrec.tracking import store

    runs = {a: json.loads((Path(models) / a / "mlflow_run.json").read_text())
            for a in ARCHITECTURES}
    uri = store.tracking_uri(cfg.mlflow.tracking_uri, Path("."))
    store.check_reachable(uri)
    links = ui.comparison_links(uri, cfg.mlflow.ui_url, runs)
    metrics = compare_reports(Path(reports), list(ARCHITECTURES), Path(out), links)
    best = max(metrics, key=lambda a: metrics[a]["macro_f1"])
    print(f"compare: best by macro-F1 is {best} ({metrics[best]['macro_f1']:.3f}); see {out}")
    if links:
        print(f"compare: the runs side by side in MLflow: {links['compare']}")
    if not cfg.mlflow.register_models:
        return None
    champion = mlflow_runs.set_champion(uri, best, runs)
    if champion:
        print(f"compare: MLflow alias {champion} (actionrec predict --model {champion})")
    return champion


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The stage's options; sets ``run``."""
    add_params_option(p)
    p.add_argument("--reports", default="reports/evaluate",
                   help="the evaluate stages' <arch>/metrics.json (default: %(default)s)")
    p.add_argument("--models", default="models",
                   help="trained models, for their MLflow runs and registry versions "
                        "(default: %(default)s)")
    p.add_argument("--out", default="reports/comparison.md",
                   help="the table; the chart goes beside it as .png (default: %(default)s)")
    p.set_defaults(run=lambda a: run_stage(
        compare, params=a.params, reports=a.reports, models=a.models, out=a.out))


def main(argv: Sequence[str] | None = None) -> None:
    """``python stages/compare.py [options]``."""
    stage_main("compare", DESCRIPTION, add_arguments, argv)
