"""The tiny run (`ci/tiny_pipeline.sh`: the tiny profile through real `dvc repro`, five
architectures, real MLflow): what it prints and leaves, and how the README's first steps
reuse it. The gate, tracking, serving and DVC tests on the same run have their own modules."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from actionrec.config import ARCHITECTURES
from tests.helpers import METRIC_KEYS, champion, run_cmd, tracking_client

pytestmark = pytest.mark.slow


def test_the_run_prints_its_own_lines_not_library_chatter(tiny_run):
    """Stage output is the stages' lines, Keras' epochs and progress bars: no DVC warning
    on the scratch project's first run, no TensorFlow native lines, no MLflow advice."""
    from actionrec.native_logs import is_noise

    log = (tiny_run / "pipeline.log").read_text()
    lines = log.replace("\r", "\n").splitlines()
    assert not [line for line in lines if is_noise(line, gpu_driver=False)]
    assert not [line for line in lines if line.startswith("WARNING")]
    assert "Add type hints" not in log and "system_metrics_monitor" not in log
    assert "train@lrcn: " in log and "Epoch 1/10" in log
    assert "train@lrcn: Keras 3" in log and ", backend tensorflow 2." in log  # the runtime line


def test_every_stage_ran_and_left_its_outputs(tiny_run):
    repo, log = tiny_run, (tiny_run / "pipeline.log").read_text()
    for arch in ARCHITECTURES:
        for stage in ("extract_features", "train", "evaluate"):
            assert f"Running stage '{stage}@{arch}'" in log
        assert (repo / "models" / arch / "model.keras").is_file()
        metrics = json.loads((repo / "reports" / "evaluate" / arch / "metrics.json").read_text())
        assert set(metrics) >= METRIC_KEYS and 0 <= metrics["macro_f1"] <= 1
        for name in ("confusion.png", "curves.png", "confusion.csv", "per_class.json"):
            assert (repo / "reports" / "evaluate" / arch / name).stat().st_size > 0
        history = pd.read_csv(repo / "models" / arch / "history.csv")
        assert {"epoch", "loss", "val_loss", "accuracy", "val_accuracy"} <= set(history.columns)
    table = (repo / "reports" / "comparison.md").read_text()
    assert all(f"| {a} |" in table for a in ARCHITECTURES)
    assert "## Paired differences" in table and table.count(" − ") == 10  # 5 choose 2
    # the registered champion carries the rule and the evidence
    best = champion(repo)
    version = tracking_client(repo).get_model_version_by_alias(f"actionrec-{best}", "champion")
    assert "Holm" in version.tags["champion_rule"] and version.tags["champion_reason"]
    best_f1 = json.loads((repo / "reports" / "evaluate" / best / "metrics.json").read_text())[
        "macro_f1"]
    assert version.tags["champion_macro_f1"].startswith(f"{best_f1:.4f} [")
    assert (repo / "reports" / "comparison.png").stat().st_size > 0
    shown = run_cmd(["dvc", "metrics", "show", "--json"], cwd=repo).stdout
    assert all(f"reports/evaluate/{a}/metrics.json" in shown for a in ARCHITECTURES)
    plots = run_cmd(["dvc", "plots", "show", "--json"], cwd=repo).stdout
    assert "reports/evaluate/lrcn/confusion.csv" in plots


def test_frozen_backbones_train_on_cached_features(tiny_run):
    repo = tiny_run
    for arch, dim in (("inceptionv3_gru", 2048), ("efficientnetb7_lstm", 2560),
                      ("vgg16_bilstm", 512)):
        store = repo / "data" / "features" / arch
        index = pd.read_csv(store / "index.csv")
        size = json.loads((store / "meta.json").read_text())["image_size"]
        frames = pd.read_csv(repo / "data" / "frames" / str(size) / "index.csv")
        assert index["clip"].tolist() == frames["clip"].tolist()
        assert index["shard"].tolist() == frames["shard"].tolist()
        for shard in index["shard"].unique():  # one feature shard per frame shard
            feats = np.load(store / shard, mmap_mode="r")
            assert feats.dtype == np.float16 and feats.shape == (
                (index["shard"] == shard).sum(), 8, dim)
        meta = json.loads((repo / "models" / arch / "meta.json").read_text())
        assert meta["trained_on"] == "features"
    assert json.loads((repo / "data" / "features" / "lrcn" / "meta.json").read_text())[
        "backbone"] is None


def test_saved_backbone_models_on_frames_agree_with_the_head_on_cached_features(tiny_run):
    """evaluate scores a backbone architecture with its head on the cached features
    (stored as float16 times 2**scale_log2, standardised inside the head); the saved whole
    network on the stored frames of the same test clips (InceptionV3's 75 px from 72 px
    ones, enlarged inside the model as extract_features did) gives the same probabilities."""
    import keras

    import actionrec.models.layers  # noqa: F401  (registers the custom layers)
    from actionrec.data.frames import read_clip

    repo = tiny_run
    for arch in ("inceptionv3_gru", "efficientnetb7_lstm", "vgg16_bilstm"):
        meta = json.loads((repo / "models" / arch / "meta.json").read_text())
        store = repo / "data" / "frames" / str(meta["image_size"])
        reported = pd.read_csv(repo / "reports" / "evaluate" / arch / "predictions.csv").head(4)
        index = pd.read_csv(store / "index.csv").set_index("video")
        clips = np.stack([read_clip(store, index.loc[v, "clip"], enlarge=False)
                          for v in reported["video"]])
        model = keras.models.load_model(repo / "models" / arch / "model.keras", safe_mode=True)
        # eager: predict() would trace the whole network for these 4 clips (EfficientNetB7:
        # 4 s); the compiled path is evaluate@'s latency and test_models'
        probs = keras.ops.convert_to_numpy(model(clips, training=False))
        assert np.allclose(probs, reported[meta["classes"]].to_numpy(), atol=5e-3), arch


def test_newcomer_sequence_on_a_fresh_clone_leaves_the_real_run_alone(tiny_run, tmp_path):
    """The README's first steps on a fresh clone: `make demo` runs the tiny profile in its
    scratch copy (here it reuses this suite's run: the clone holds the same files) and
    leaves the clone as it was: git status clean, params.yaml untouched and still the
    real run (profile full, UCF101), no dvc.lock; `dvc status` then plans the real run."""
    from tests.helpers import REPO

    clone = tmp_path / "clone"
    listed = run_cmd(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                     cwd=REPO).stdout.split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, clone / name)  # mtimes kept: the venv is not reinstalled
    run_cmd(["git", "init", "-q"], cwd=clone)
    run_cmd(["git", "add", "-A"], cwd=clone)
    run_cmd(["git", "commit", "-qm", "what a clone of this tree holds"], cwd=clone)
    # The clone's `make demo` runs `make setup` in this .venv: were pyproject.toml newer than
    # its install stamp (edited since the last setup), that would reinstall actionrec from
    # the clone's temporary folder into the shared .venv, and every later test would import
    # a deleted tree. Bring the stamp up to date from this checkout first (0.1 s when it is).
    run_cmd(["bash", str(REPO / "scripts" / "bootstrap.sh")], cwd=REPO)
    (clone / ".venv").symlink_to(REPO / ".venv")  # `make setup` has run; a link, not a dir:
    (clone / ".git" / "info" / "exclude").write_text("/.venv\n")  # .gitignore's .venv/ misses it
    params = (clone / "params.yaml").read_bytes()

    proc = run_cmd(["make", "demo"], cwd=clone, timeout=3000,
                   env={"ACTIONREC_CI_WORK": str(tiny_run)})
    assert "reusing the tiny run" in proc.stdout
    assert f"{tiny_run}/reports/comparison.md" in proc.stdout
    assert run_cmd(["git", "status", "--porcelain"], cwd=clone).stdout == ""
    assert (clone / "params.yaml").read_bytes() == params
    real = yaml.safe_load(run_cmd(["actionrec", "params"], cwd=clone).stdout)
    assert real["profile"] == "full" and real["data"]["source"] == "ucf101"
    assert not (clone / "dvc.lock").exists()
    status = run_cmd(["dvc", "status"], cwd=clone)
    assert "download:" in status.stdout and "WARNING" not in status.stdout + status.stderr
