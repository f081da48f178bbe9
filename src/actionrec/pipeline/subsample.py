"""Stage ``subsample``: top-N classes by split-1 train count, group-aware validation split,
manifest CSV and class list."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from actionrec.config import load_params
from actionrec.pipeline import add_params_option, run_stage, stage_main

DESCRIPTION = ("Top-N (or listed) classes, group-aware validation split, manifest CSV and "
               "class list.")


def subsample(params: str, raw: str, manifest: str, classes: str, report: str) -> pd.DataFrame:
    """Stage ``subsample``: pick classes and splits; write the manifest CSV and class list.

    Returns:
        The manifest: one row per clip (``class_name``, ``group``, ``split``, ...).

    Raises:
        ConfigError, DatasetError: a bad selection, or split lists that do not match.
    """
    cfg = load_params(params, stage="subsample").data
    from actionrec.data.layout import LIST_DIR, VIDEO_DIR
    from actionrec.data.splits import build_manifest
    from actionrec.io import write_csv, write_json

    table, chosen, missing = build_manifest(
        Path(raw) / LIST_DIR, Path(raw) / VIDEO_DIR, cfg.split, cfg.top_n, cfg.classes,
        cfg.val_fraction, cfg.val_seed, cfg.missing_videos,
    )
    write_csv(manifest, table)
    write_json(classes, chosen)
    counts = table.groupby(["class_name", "split"]).size().unstack(fill_value=0)
    write_json(report, {
        "split": cfg.split, "classes": chosen, "n_clips": len(table),
        "clips": {c: {k: int(v) for k, v in row.items()} for c, row in counts.iterrows()},
        "missing_videos_dropped": missing,
    })
    print(f"subsample: {len(chosen)} classes, {len(table)} clips "
          f"({', '.join(f'{s} {n}' for s, n in table['split'].value_counts().items())})")
    return table


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The stage's options; sets ``run``."""
    add_params_option(p)
    p.add_argument("--raw", default="data/raw")
    p.add_argument("--manifest", default="data/manifest.csv")
    p.add_argument("--classes", default="data/classes.json")
    p.add_argument("--report", default="reports/subsample.json")
    p.set_defaults(run=lambda a: run_stage(
        subsample, params=a.params, raw=a.raw, manifest=a.manifest, classes=a.classes,
        report=a.report))


def main(argv: Sequence[str] | None = None) -> None:
    """``python stages/subsample.py [options]``."""
    stage_main("subsample", DESCRIPTION, add_arguments, argv)
