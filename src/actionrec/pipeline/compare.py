"""Stage ``compare``: one row per architecture with its intervals over the test groups,
every pair's difference with a Holm-adjusted p-value (``reports/comparison.md``), a chart,
and the MLflow alias ``champion`` on the architecture the rule chooses (``compare`` in
params.yaml: the cheapest of those not significantly worse than the best)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from actionrec.config import ARCHITECTURES, load_params
from actionrec.pipeline import add_params_option, run_stage, stage_main

DESCRIPTION = ("reports/comparison.md (one row per architecture with intervals over the "
               "test groups, paired differences with Holm-adjusted p-values, the MLflow page "
               "comparing the runs), reports/comparison.png, and the MLflow alias 'champion' "
               "on the architecture params.yaml's rule chooses (compare:).")


def compare(params: str, reports: str, models: str = "models",
            out: str = "reports/comparison.md") -> str | None:
    """Stage ``compare``: ``out`` (``reports/comparison.md``, with the MLflow links), the
    chart beside it (``.png``), and the MLflow alias ``champion`` on the rule's champion
    (:func:`actionrec.stats.choose_champion`), whose registered version gets the rule and
    the evidence as tags. ``reports`` holds ``<arch>/metrics.json`` and
    ``predictions.csv`` (``reports/evaluate``).

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
    rule = cfg.compare
    result = compare_reports(Path(reports), list(ARCHITECTURES), Path(out), links,
                             cfg.evaluate.interval_level, cfg.evaluate.resamples, cfg.seed,
                             rule.metric, rule.alpha, tuple(rule.cost))
    ch = result.champion
    print(f"compare: champion {ch.champion}: {ch.reason}; see {out}")
    if links:
        print(f"compare: the runs side by side in MLflow: {links['compare']}")
    m = result.metrics[ch.champion]
    tags = {"champion": ch.champion,
            "champion_rule": f"{rule.metric}; not significantly worse than the best (paired "
                             f"group bootstrap, Holm, alpha {rule.alpha:g}); cheapest by "
                             f"{', '.join(rule.cost)}",
            "champion_reason": ch.reason, "champion_tied_with": ",".join(
                a for a in ch.tied if a != ch.champion) or "none",
            "champion_best": ch.best,
            f"champion_{rule.metric}": f"{m[rule.metric]:.4f} [{m[f'{rule.metric}_ci_low']:.4f}, "
                                       f"{m[f'{rule.metric}_ci_high']:.4f}]"}
    store.setup(uri, cfg.experiment_name(), Path("."))
    mlflow_runs.log_comparison(
        {"compare.metric": rule.metric, "compare.alpha": rule.alpha,
         "compare.cost": ",".join(rule.cost), "evaluate.interval_level":
         cfg.evaluate.interval_level, "evaluate.resamples": cfg.evaluate.resamples,
         "seed": cfg.seed}, tags, [Path(out), Path(out).with_suffix(".png")])
    if not cfg.mlflow.register_models:
        return None
    champion = mlflow_runs.set_champion(uri, ch.champion, runs, tags)
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
