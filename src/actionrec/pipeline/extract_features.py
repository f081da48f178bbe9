"""Stage ``extract_features@<arch>``: run an architecture's frozen ImageNet backbone once
over every stored frame (a feature store of float16 shards, on ``frames.engine``); nothing
for a from-scratch model."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from actionrec.config import load_params
from actionrec.pipeline import add_architecture_options, run_stage, stage_main

DESCRIPTION = ("Run an architecture's ImageNet backbone once over every stored frame "
               "(float16 features + mask).")


def features(params: str, arch: str, frames: str, out: str) -> dict[str, Any]:
    """Stage ``extract_features@<arch>``: cache the frozen backbone's features.

    An architecture trained from scratch has no backbone: its folder only gets a
    ``meta.json`` saying so, which keeps every ``train@<arch>`` stage's inputs alike.

    Returns:
        The features' ``meta.json`` content (backbone, feature dimension ``D``...).
    """
    cfg = load_params(params, stage=f"extract_features@{arch}")
    from actionrec.data.frames import frames_dir
    from actionrec.io import write_json

    s = cfg.models.get(arch)
    out_dir = Path(out)
    if not s.trains_on_features:
        out_dir.mkdir(parents=True, exist_ok=True)
        meta = {"architecture": arch, "backbone": None, "image_size": s.image_size,
                "note": f"trains end to end on data/frames/{s.image_size}; no features to "
                        "cache"}
        write_json(out_dir / "meta.json", meta)
        print(f"extract_features@{arch}: trains on frames, nothing to extract")
        return meta
    from actionrec.features import extract_features
    from actionrec.runtime import print_runtime

    print_runtime(f"extract_features@{arch}")
    meta = extract_features(arch, s, frames_dir(frames, s.image_size), out_dir,
                            readers=cfg.train.loader_workers, engine=cfg.frames.engine,
                            workers=cfg.frames.workers)
    print(f"extract_features@{arch}: {meta['backbone']} features (D={meta['feature_dim']}) "
          f"in {out_dir}")
    return meta


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The stage's options; sets ``run``."""
    add_architecture_options(p, features=False)
    p.add_argument("--out", help="default: data/features/<arch>")
    p.set_defaults(run=lambda a: run_stage(
        features, params=a.params, arch=a.arch, frames=a.frames,
        out=a.out or f"data/features/{a.arch}"))


def main(argv: Sequence[str] | None = None) -> None:
    """``python stages/extract_features.py ARCH [options]``."""
    stage_main("extract-features", DESCRIPTION, add_arguments, argv)
