"""Stage ``validate``: decode every clip once and run the Great Expectations suite."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from actionrec.config import load_params
from actionrec.errors import ValidationFailed
from actionrec.pipeline import add_params_option, run_stage, stage_main

DESCRIPTION = ("Decode every clip once and validate the manifest; fails with "
               "reports/validation.md on a broken expectation.")


def validate(params: str, raw: str, manifest: str, classes: str, probe: str,
             report_dir: str) -> None:
    """Stage ``validate``: probe every clip and run the Great Expectations suite.

    Raises:
        ValidationFailed: an expectation failed; ``<report_dir>/validation.md`` says which.
    """
    cfg = load_params(params, stage="validate")
    import pandas as pd

    from actionrec.data.layout import VIDEO_DIR
    from actionrec.data.validation import validate_dataset

    passed, md = validate_dataset(
        pd.read_csv(manifest), json.loads(Path(classes).read_text()), Path(raw) / VIDEO_DIR,
        cfg.validate_, cfg.data.max_bad_fraction, Path(report_dir), Path(probe),
    )
    if not passed:
        raise ValidationFailed(f"data validation failed; read {md} for the failing checks and rows")
    print(f"validate: all expectations met; report in {md}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The stage's options; sets ``run``."""
    add_params_option(p)
    p.add_argument("--raw", default="data/raw")
    p.add_argument("--manifest", default="data/manifest.csv")
    p.add_argument("--classes", default="data/classes.json")
    p.add_argument("--probe", default="data/probe.csv", help="per-clip decode facts (output)")
    p.add_argument("--report-dir", default="reports")
    p.set_defaults(run=lambda a: run_stage(
        validate, params=a.params, raw=a.raw, manifest=a.manifest, classes=a.classes,
        probe=a.probe, report_dir=a.report_dir))


def main(argv: Sequence[str] | None = None) -> None:
    """``python stages/validate.py [options]``."""
    stage_main("validate", DESCRIPTION, add_arguments, argv)
