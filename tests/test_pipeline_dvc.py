"""The real thing: `dvc exp run` / `dvc repro` of the data stages in a fresh git + DVC repo.

These tests stop at extract_frames (`dvc exp run ... extract_frames`); the training
stages, and the sample profile on real UCF101 clips, have their own module
(test_training_pipeline.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actionrec.data.frames import read_clip
from tests.conftest import make_project, profile_args, run_cmd

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_project(tmp_path / "repo")


def test_tiny_profile_runs_end_to_end_and_reruns_only_what_changed(repo):
    proc = run_cmd(["dvc", "exp", "run", *profile_args(repo, "tiny"), "extract_frames"],
                   cwd=repo)
    for stage in ("download", "subsample", "validate", "extract_frames"):
        assert f"Running stage '{stage}'" in proc.stdout
    manifest = pd.read_csv(repo / "data" / "manifest.csv")
    assert len(manifest) == 4 * 24 * 4 and set(manifest["split"]) == {"train", "val", "test"}
    assert json.loads((repo / "data" / "classes.json").read_text()) == [
        "Bend", "SitDown", "StandUp", "Walk"]
    assert "**PASSED**" in (repo / "reports" / "validation.md").read_text()
    for size in (32, 75):
        index = pd.read_csv(repo / "data" / "frames" / str(size) / "index.csv")
        assert len(index) == len(manifest)
        clip = read_clip(repo / "data" / "frames" / str(size), index["file"].iloc[0])
        assert clip.shape == (8, size, size, 3) and clip.dtype == np.uint8

    again = run_cmd(["dvc", "repro", "extract_frames"], cwd=repo)
    assert "Data and pipelines are up to date." in again.stdout
    assert "Running stage" not in again.stdout

    changed = run_cmd(["dvc", "exp", "run", "-S", "frames.sequence_length=6", "extract_frames"],
                      cwd=repo)
    assert "Running stage 'extract_frames'" in changed.stdout
    # with a dvc.lock in place (the first run wrote it), experiments start without warnings
    assert "WARNING" not in changed.stdout + changed.stderr
    for stage in ("download", "subsample", "validate"):
        assert f"Running stage '{stage}'" not in changed.stdout
    index = pd.read_csv(repo / "data" / "frames" / "32" / "index.csv")
    assert np.load(repo / "data" / "frames" / "32" / index["file"].iloc[0]).shape[0] == 6


def test_bad_param_is_refused_before_any_work(repo):
    proc = run_cmd(["dvc", "exp", "run", "-S", "data.source=youtube"], cwd=repo, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "data.source: Input should be 'ucf101', 'ucf101_top5', 'local' or 'synthetic'" in out
    assert "Traceback" not in out
    assert not (repo / "data" / "raw").exists()
    assert not (repo / "data" / "raw.building").exists()
