"""Stage ``extract_views``: the extra temporal views of every test clip
(``evaluate.views``), one folder per image size (``data/views/<size>``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actionrec.config import load_params
from actionrec.pipeline import add_extraction_options, stage_main

DESCRIPTION = ("Store views 1 .. evaluate.views - 1 of every test clip (view 0 is the frame "
               "store's), for evaluate's video-level accuracy; a folder per image size.")


def extract(params: str, raw: str, manifest: str, classes: str, probe: str, out: str,
            report: str) -> dict[str, Any]:
    """Stage ``extract_views`` (:func:`actionrec.data.frames.extract_views`). A stage of
    its own, apart from ``extract_frames``: changing ``evaluate.views`` reruns this and
    the ``evaluate@`` stages, and neither the training clips' extraction nor training."""
    cfg = load_params(params, stage="extract_views")
    import pandas as pd

    from actionrec.data.frames import extract_views
    from actionrec.data.layout import VIDEO_DIR

    views = cfg.evaluate.views
    result = extract_views(
        pd.read_csv(manifest), pd.read_csv(probe), json.loads(Path(classes).read_text()),
        Path(raw) / VIDEO_DIR, cfg.models.image_sizes(), cfg.frames, views, Path(out),
        cfg.data.max_bad_fraction, Path(report),
    )
    print(f"extract_views: {views} views per test clip (view 0 in the frame store); "
          f"{result['n_extracted']} sequences stored at sizes {result['sizes']}")
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The stage's options; sets ``run``."""
    add_extraction_options(p, extract, "data/views", "reports/extract_views.json")


def main(argv: Sequence[str] | None = None) -> None:
    """``python stages/extract_views.py [options]``."""
    stage_main("extract-views", DESCRIPTION, add_arguments, argv)
