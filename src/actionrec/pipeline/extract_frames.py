"""Stage ``extract_frames``: ``sequence_length`` frames per clip, cropped and resized to
every image size the architectures need, one folder per size (``data/frames/<size>``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actionrec.config import load_params
from actionrec.pipeline import add_extraction_options, stage_main

DESCRIPTION = ("Sample frames.sequence_length frames per clip, crop and resize to every image "
               "size the architectures need (a folder per size).")


def extract(params: str, raw: str, manifest: str, classes: str, probe: str, out: str,
            report: str) -> dict[str, Any]:
    """Stage ``extract_frames``: one frame store per image size the architectures need.

    Each ``<out>/<size>`` depends only on the clips and ``frames.*``, never on which
    architectures use it, so a folder whose size is still needed comes out bit-identical
    when another size is added: the stages that read it stay cached.
    """
    cfg = load_params(params, stage="extract_frames")
    import pandas as pd

    from actionrec.data.frames import extract_frames
    from actionrec.data.layout import VIDEO_DIR

    result = extract_frames(
        pd.read_csv(manifest), pd.read_csv(probe), json.loads(Path(classes).read_text()),
        Path(raw) / VIDEO_DIR, cfg.models.image_sizes(), cfg.frames, Path(out),
        cfg.data.max_bad_fraction, Path(report),
    )
    print(f"extract_frames: {result['n_extracted']} clips stored at sizes {result['sizes']}, "
          f"{result['n_excluded']} excluded (see {report})")
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The stage's options; sets ``run``."""
    add_extraction_options(p, extract, "data/frames", "reports/extract_frames.json")


def main(argv: Sequence[str] | None = None) -> None:
    """``python stages/extract_frames.py [options]``."""
    stage_main("extract-frames", DESCRIPTION, add_arguments, argv)
