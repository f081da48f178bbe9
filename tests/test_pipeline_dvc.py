"""The pipeline under real DVC: the tiny run's data stages (download to extract_frames, in a
fresh git + DVC project) and what a data param or a model param reruns; a bad param refused
in a fresh clone; the sample profile on real UCF101 clips; a DVC remote that gives a fresh
clone everything; queued experiments in `dvc exp show` and in MLflow."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actionrec.data.frames import read_clip
from tests.helpers import (
    METRIC_KEYS,
    copy_project,
    make_project,
    profile_args,
    run_cmd,
    tracking_client,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_project(tmp_path / "repo")


def test_the_tiny_runs_data_stages_left_their_outputs(tiny_run):
    """The data stages of the tiny run (a real `dvc repro` in a fresh git + DVC project,
    ci/tiny_pipeline.sh): the manifest, the classes, the validation report, a frame store
    per image size."""
    for stage in ("download", "subsample", "validate", "extract_frames"):
        assert f"Running stage '{stage}'" in (tiny_run / "pipeline.log").read_text()
    manifest = pd.read_csv(tiny_run / "data" / "manifest.csv")
    assert len(manifest) == 4 * 24 * 4 and set(manifest["split"]) == {"train", "val", "test"}
    assert json.loads((tiny_run / "data" / "classes.json").read_text()) == [
        "Bend", "SitDown", "StandUp", "Walk"]
    assert "**PASSED**" in (tiny_run / "reports" / "validation.md").read_text()
    for size in (32, 75):
        index = pd.read_csv(tiny_run / "data" / "frames" / str(size) / "index.csv")
        assert len(index) == len(manifest)
        clip = read_clip(tiny_run / "data" / "frames" / str(size), index["clip"].iloc[0])
        assert clip.shape == (8, size, size, 3) and clip.dtype == np.uint8


def test_a_data_param_reruns_only_the_stages_that_read_it(tiny_run, tmp_path):
    """On a copy of the tiny run: `dvc repro extract_frames` finds it up to date; a new
    sequence length reruns extract_frames (and check_params) only, without a warning."""
    repo = copy_project(tiny_run, tmp_path / "repo")
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
    assert read_clip(repo / "data" / "frames" / "32", index["clip"].iloc[0]).shape[0] == 6


def test_bad_param_is_refused_before_any_work(repo):
    proc = run_cmd(["dvc", "exp", "run", "-S", "data.source=youtube"], cwd=repo, check=False)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "data.source: Input should be 'ucf101', 'ucf101_top5', 'local' or 'synthetic'" in out
    assert "Traceback" not in out
    assert not (repo / "data" / "raw").exists()
    assert not (repo / "data" / "raw.building").exists()


def test_sample_profile_runs_each_kind_of_stage_on_real_ucf101_clips(sample_dir, tmp_path):
    """Real avi + mp4 clips (2 classes, no validation split) through the data stages and a
    from-scratch model on frames (LRCN), to its evaluation. (All five and compare run in the
    tiny run, on synthetic clips; a backbone's features and head without a validation split
    are test_features' check. InceptionV3 here added 3 stages and 40 s, not coverage.)"""
    repo = make_project(tmp_path / "repo")
    targets = ["evaluate@lrcn"]
    proc = run_cmd(["dvc", "exp", "run", *profile_args(repo, "sample"),
                    "-S", f"data.local.root={sample_dir}", *targets], cwd=repo, timeout=1500)
    for stage in ("download", "validate", "extract_frames", "train@lrcn", *targets):
        assert f"Running stage '{stage}'" in proc.stdout, stage
    manifest = pd.read_csv(repo / "data" / "manifest.csv")
    assert sorted(Path(p).suffix for p in manifest["path"]) == [".avi", ".mp4", ".mp4", ".mp4"]
    report = json.loads((repo / "reports" / "extract_frames.json").read_text())
    assert report["n_extracted"] == 4 and report["n_excluded"] == 0
    history = pd.read_csv(repo / "models" / "lrcn" / "history.csv")
    assert len(history) == 2  # no validation split: nothing measured on one
    assert history.filter(like="val_").isna().all().all(), history
    metrics = json.loads((repo / "reports" / "evaluate" / "lrcn" / "metrics.json").read_text())
    assert metrics["n_test"] == 2 and set(metrics) >= METRIC_KEYS
    again = run_cmd(["dvc", "repro", *targets], cwd=repo, timeout=600)
    assert "Data and pipelines are up to date." in again.stdout


def _results_clone(tiny_run: Path, dst: Path) -> Path:
    """A git clone of the tiny run with its results committed (params, ``dvc.lock``, the
    uncached reports) and its DVC cache hard-linked in (read-only files, so the tiny run
    is not touched): what a teammate has after running the pipeline."""
    run_cmd(["git", "clone", "-q", str(tiny_run), str(dst)], cwd=dst.parent)
    for name in ("params.yaml", "dvc.lock"):
        shutil.copy(tiny_run / name, dst / name)
    shutil.rmtree(dst / "reports", ignore_errors=True)
    shutil.copytree(tiny_run / "reports", dst / "reports")
    shutil.copytree(tiny_run / ".dvc" / "cache", dst / ".dvc" / "cache", copy_function=os.link)
    run_cmd(["git", "add", "-A"], cwd=dst)
    run_cmd(["git", "add", "-f", "reports", "dvc.lock"], cwd=dst)
    run_cmd(["git", "commit", "-qm", "tiny run results"], cwd=dst)
    return dst


def test_dvc_remote_gives_a_fresh_clone_everything_with_no_stage_to_rerun(tiny_run, tmp_path):
    mine = _results_clone(tiny_run, tmp_path / "mine")
    remote = tmp_path / "shared-remote"
    run_cmd(["dvc", "remote", "add", "-d", "shared", str(remote)], cwd=mine)
    run_cmd(["dvc", "push"], cwd=mine)
    run_cmd(["git", "commit", "-qam", "DVC remote"], cwd=mine)

    theirs = tmp_path / "theirs"
    run_cmd(["git", "clone", "-q", str(mine), str(theirs)], cwd=tmp_path)
    assert not (theirs / "models").exists()
    run_cmd(["dvc", "pull"], cwd=theirs)
    assert "Data and pipelines are up to date" in run_cmd(["dvc", "status"], cwd=theirs).stdout
    dry = run_cmd(["dvc", "repro", "--dry"], cwd=theirs).stdout
    assert "Running stage" not in dry, dry
    for path in ("models/lrcn/model.keras", "data/manifest.csv"):
        assert (theirs / path).read_bytes() == (tiny_run / path).read_bytes()


def test_queued_experiments_land_in_dvc_exp_show_and_in_mlflow(tiny_run, tmp_path):
    repo = _results_clone(tiny_run, tmp_path / "repo")
    # one queued experiment: the queue's worker runs it in its own temporary workspace,
    # and its name and params come back to `dvc exp show` and MLflow (a second one added
    # 40 s and no check)
    names = {"lrcn-1-epoch": 1}
    for name, epochs in names.items():
        run_cmd(["dvc", "exp", "run", "--queue", "-n", name, "-S",
                 f"models.lrcn.epochs={epochs}", "train@lrcn"], cwd=repo)
    run_cmd(["dvc", "queue", "start", "-j", "1"], cwd=repo)
    try:
        deadline = time.monotonic() + 900
        while True:
            status = run_cmd(["dvc", "queue", "status"], cwd=repo).stdout
            if not any(word in status for word in ("Queued", "Running")):
                break
            assert time.monotonic() < deadline, status
            time.sleep(3)
    finally:
        run_cmd(["dvc", "queue", "stop"], cwd=repo, check=False)
    assert status.count("Success") == len(names), status + run_cmd(
        ["dvc", "queue", "logs", "lrcn-1-epoch"], cwd=repo, check=False).stdout[-3000:]
    shown = json.loads(run_cmd(["dvc", "exp", "show", "--json"], cwd=repo).stdout)
    found = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs", []):
                params = rev["data"]["params"]["params.yaml"]["data"]
                found[rev.get("name") or exp.get("name")] = params["models"]["lrcn"]["epochs"]
    assert {k: v for k, v in found.items() if k in names} == names, found

    client = tracking_client(repo)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()],
                              filter_string="tags.architecture = 'lrcn'")
    logged = {r.data.tags.get("dvc_experiment"): int(r.data.params["model.epochs"])
              for r in runs}
    assert logged == names
    assert all(r.info.status == "FINISHED" for r in runs)
