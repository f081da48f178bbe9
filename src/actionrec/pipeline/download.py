"""Stage ``download``: fill ``data/raw`` with the UCF101 layout from ``data.source``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from actionrec.config import load_params
from actionrec.pipeline import add_params_option, run_stage, stage_main

DESCRIPTION = ("Download / generate / copy the dataset (data.source) into the UCF101 layout. "
               "Downloads resume from --cache.")


def download(params: str, out: str, cache: str) -> Path:
    """Stage ``download``: fill ``out`` with the raw UCF101 layout of ``data.source``.

    Raises:
        ConfigError: a bad value in params.yaml (before anything is fetched).
        DownloadError, DatasetError: every source failed, or the files are not UCF101.
    """
    cfg = load_params(params, stage="download")
    from actionrec.data.sources import prepare_raw

    return prepare_raw(cfg.data, out, cache)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The stage's options; sets ``run``."""
    add_params_option(p)
    p.add_argument("--out", default="data/raw", help="raw dataset folder (default: %(default)s)")
    p.add_argument("--cache", default="data/downloads",
                   help="kept downloads, for resuming (default: %(default)s)")
    p.set_defaults(run=lambda a: run_stage(download, params=a.params, out=a.out, cache=a.cache))


def main(argv: Sequence[str] | None = None) -> None:
    """``python stages/download.py [options]``."""
    stage_main("download", DESCRIPTION, add_arguments, argv)
