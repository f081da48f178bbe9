"""The whole pipeline on the tiny profile: five architectures through real DVC and MLflow."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from actionrec import resume
from actionrec.config import ARCHITECTURES
from tests.conftest import (
    background_server,
    copy_project,
    free_port,
    make_project,
    profile_args,
    run_cmd,
    stage_project,
)

pytestmark = pytest.mark.slow

METRIC_KEYS = {"top1_accuracy", "top3_accuracy", "macro_precision", "macro_recall", "macro_f1",
               "latency_ms", "parameters", "epochs_trained", "n_test", "train_top1_accuracy"}


@pytest.fixture(scope="module")
def tiny(tiny_run) -> tuple[Path, str]:
    """The tiny profile's one run (``tiny_run``, shared with the CI gate) and its log.
    Read-only: tests that change the project use ``scratch``."""
    return tiny_run, (tiny_run / "pipeline.log").read_text()


@pytest.fixture(scope="module")
def scratch(tiny_run, tmp_path_factory) -> Path:
    """A private copy of the tiny run for the tests of this module that rerun stages."""
    return copy_project(tiny_run, tmp_path_factory.mktemp("scratch") / "repo")


def _client(repo: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")


def test_the_run_prints_its_own_lines_not_library_chatter(tiny):
    """Stage output is the stages' lines, Keras' epochs and progress bars: no DVC warning
    on the scratch project's first run, no TensorFlow native lines, no MLflow advice."""
    from actionrec.native_logs import is_noise

    _, log = tiny
    lines = log.replace("\r", "\n").splitlines()
    assert not [line for line in lines if is_noise(line, gpu_driver=False)]
    assert not [line for line in lines if line.startswith("WARNING")]
    assert "Add type hints" not in log and "system_metrics_monitor" not in log
    assert "train@lrcn: " in log and "Epoch 1/30" in log
    assert "train@lrcn: Keras 3" in log and ", backend tensorflow 2." in log  # the runtime line


def test_every_stage_ran_and_left_its_outputs(tiny):
    repo, log = tiny
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
    assert (repo / "reports" / "comparison.png").stat().st_size > 0
    shown = run_cmd(["dvc", "metrics", "show", "--json"], cwd=repo).stdout
    assert all(f"reports/evaluate/{a}/metrics.json" in shown for a in ARCHITECTURES)
    plots = run_cmd(["dvc", "plots", "show", "--json"], cwd=repo).stdout
    assert "reports/evaluate/lrcn/confusion.csv" in plots


def _gate(repo: Path, reports: Path) -> subprocess.CompletedProcess:
    """``actionrec gate`` of ``reports`` against the repository's committed baseline."""
    from tests.conftest import REPO

    return run_cmd(["actionrec", "gate", "--reports", str(reports),
                    "--params", str(REPO / "params.yaml"),
                    "--baseline", str(REPO / "ci" / "baseline")], cwd=repo, check=False)


def test_an_unchanged_tiny_run_passes_the_regression_gate(tiny):
    """This run is the committed baseline's run: the gate passes (else `make baseline`)."""
    repo, _ = tiny
    proc = _gate(repo, repo / "reports" / "evaluate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "**regressed**" not in proc.stdout and "| new |" not in proc.stdout
    assert all(f"| {arch} |" in proc.stdout for arch in ARCHITECTURES)


def test_a_run_broken_by_its_params_fails_the_gate_naming_what_broke(scratch):
    """One real `dvc exp run` in which two architectures learn nothing (learning rate 1e-9;
    two epochs, since nothing is learned anyway): one trained from scratch on frames, one
    head on a frozen backbone's cached features. The gate stops the run and names those
    two; the other three, whose stages did not rerun, pass. (That it names every failing
    architecture at once is test_ci's table test.)"""
    broken = ("lrcn", "inceptionv3_gru")
    args = []
    for arch in broken:
        args += ["-S", f"models.{arch}.learning_rate=1e-9", "-S", f"models.{arch}.epochs=2"]
    proc = run_cmd(["dvc", "exp", "run", *args], cwd=scratch, timeout=1500)
    ran = {line.split("'")[1] for line in proc.stdout.splitlines()
           if line.startswith("Running stage")}
    assert ran == {*(f"{s}@{a}" for s in ("train", "evaluate") for a in broken),
                   "check_params", "compare"}  # frames and features came from the cache
    gate = _gate(scratch, scratch / "reports" / "evaluate")
    assert gate.returncode == 1, gate.stdout
    assert "Regression gate: FAILED" in gate.stdout
    for arch in ARCHITECTURES:
        assert (f"{arch} (regressed)" in gate.stderr) == (arch in broken), (arch, gate.stderr)


def test_frozen_backbones_train_on_cached_features(tiny):
    repo, _ = tiny
    for arch, dim in (("inceptionv3_gru", 2048), ("efficientnetb7_lstm", 2560),
                      ("vgg16_bilstm", 512)):
        feats = np.load(repo / "data" / "features" / arch / "train.npy", mmap_mode="r")
        assert feats.dtype == np.float16 and feats.shape[1:] == (8, dim)
        meta = json.loads((repo / "models" / arch / "meta.json").read_text())
        assert meta["trained_on"] == "features"
    assert json.loads((repo / "data" / "features" / "lrcn" / "meta.json").read_text())[
        "backbone"] is None


def test_saved_backbone_models_on_frames_agree_with_the_head_on_cached_features(tiny):
    """evaluate scores a backbone architecture with its head on the cached features
    (stored as float16 times 2**scale_log2, standardised inside the head); the saved whole
    network on the stored frames of the same test clips (InceptionV3's 75 px from 72 px
    ones, enlarged inside the model as extract_features did) gives the same probabilities."""
    import keras

    import actionrec.models.layers  # noqa: F401  (registers the custom layers)
    from actionrec.data.frames import read_clip

    repo, _ = tiny
    for arch in ("inceptionv3_gru", "efficientnetb7_lstm", "vgg16_bilstm"):
        meta = json.loads((repo / "models" / arch / "meta.json").read_text())
        store = repo / "data" / "frames" / str(meta["image_size"])
        reported = pd.read_csv(repo / "reports" / "evaluate" / arch / "predictions.csv").head(4)
        index = pd.read_csv(store / "index.csv").set_index("video")
        clips = np.stack([read_clip(store, index.loc[v, "file"], enlarge=False)
                          for v in reported["video"]])
        model = keras.models.load_model(repo / "models" / arch / "model.keras", safe_mode=True)
        probs = model.predict(clips, verbose=0)
        assert np.allclose(probs, reported[meta["classes"]].to_numpy(), atol=5e-3), arch


def test_mlflow_has_a_run_per_architecture_with_every_metric(tiny):
    repo, _ = tiny
    client = _client(repo)
    exp = client.get_experiment_by_name("actionrec-tiny")
    runs = client.search_runs([exp.experiment_id])
    by_arch = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        by_arch[run.data.tags["architecture"]] = run
    assert set(by_arch) == set(ARCHITECTURES)
    keys = {"train_loss", "val_loss", "train_accuracy", "val_accuracy", "train_macro_f1",
            "learning_rate",
            *(k if k.startswith("train_") else f"test_{k}" for k in METRIC_KEYS)}
    for arch, run in by_arch.items():
        assert keys <= set(run.data.metrics), (arch, keys - set(run.data.metrics))
        assert run.data.tags["dvc_stage"] == f"train@{arch}"
        assert len(run.data.tags["git_commit"]) == 40
        assert run.data.params["architecture"] == arch
        history = client.get_metric_history(run.info.run_id, "val_loss")
        assert len(history) == json.loads(
            (repo / "reports" / "evaluate" / arch / "metrics.json").read_text())["epochs_trained"]
        versions = client.search_model_versions(f"name='actionrec-{arch}'")
        assert versions and versions[0].run_id in {r.info.run_id for r in runs}


def test_registered_model_predicts_on_a_real_clip(tiny, sample_dir):
    import mlflow.pyfunc

    from actionrec.data.video import load_clip

    repo, _ = tiny
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    meta = json.loads((repo / "models" / "lrcn" / "meta.json").read_text())
    clip, _ = load_clip(sample_dir / "UCF-101" / "Punch" / "v_Punch_g03_c01.avi",
                        meta["sequence_length"], meta["image_size"], meta["sampling"],
                        meta["short_clip"], meta["crop"])
    for arch in ("lrcn", "vgg16_bilstm"):
        model = mlflow.pyfunc.load_model(f"models:/actionrec-{arch}/1")
        size = json.loads((repo / "models" / arch / "meta.json").read_text())["image_size"]
        x = clip if size == meta["image_size"] else load_clip(
            sample_dir / "UCF-101" / "Punch" / "v_Punch_g03_c01.avi", meta["sequence_length"],
            size)[0]
        probs = model.predict(x[None])
        assert list(probs.columns) == meta["classes"]
        assert probs.shape == (1, 4) and abs(float(probs.iloc[0].sum()) - 1) < 1e-4


def _champion(repo: Path) -> str:
    """The architecture with the best test macro-F1 in this run's reports."""
    metrics = {a: json.loads((repo / "reports" / "evaluate" / a / "metrics.json").read_text())
               for a in ARCHITECTURES}
    return max(metrics, key=lambda a: metrics[a]["macro_f1"])


def test_compare_sets_the_champion_alias_on_the_best_architecture_only(tiny):
    repo, log = tiny
    client, best = _client(repo), _champion(repo)
    assert f"models:/actionrec-{best}@champion" in log
    for arch in ARCHITECTURES:
        aliases = client.get_registered_model(f"actionrec-{arch}").aliases
        if arch == best:
            run = json.loads((repo / "models" / arch / "mlflow_run.json").read_text())
            assert aliases["champion"] == int(run["registered_version"])
        else:
            assert "champion" not in aliases, arch


def test_predict_cli_on_real_clips_with_the_registry_champion(tiny, sample_dir):
    """`actionrec predict` resolves models:/...@champion in the project's own store (the
    default: sqlite:///mlflow.db where it runs) and answers as the model folder does."""
    repo, _ = tiny
    best = _champion(repo)
    clips = [str(sample_dir / "UCF-101" / c) for c in ("Punch", "Biking")]
    answers = []
    for model in (f"models:/actionrec-{best}@champion", str(repo / "models" / best)):
        proc = run_cmd(["actionrec", "predict", *clips, "--model", model, "--json"], cwd=repo)
        answers.append(json.loads(proc.stdout))
    from_registry, from_folder = answers
    assert from_registry["architecture"] == best
    assert len(from_registry["results"]) == 3 and all(r["ok"] for r in from_registry["results"])
    assert from_registry["results"] == from_folder["results"]
    classes = json.loads((repo / "data" / "classes.json").read_text())
    assert {t["action"] for r in from_registry["results"] for t in r["top_k"]} <= set(classes)


def test_mlflow_models_serve_answers_a_posted_clip(tiny, sample_dir, tmp_path):
    """The real scoring server on 127.0.0.1: POST frames, get the class probabilities."""
    import requests

    from actionrec.data.video import load_clip
    from actionrec.predict import load_predictor

    repo, _ = tiny
    best = _champion(repo)
    predictor = load_predictor(str(repo / "models" / best))
    c = predictor.contract
    clip, _ = load_clip(sample_dir / "UCF-101" / "Punch" / "v_Punch_g03_c01.avi",
                        c.sequence_length, c.image_size, c.sampling, c.short_clip, c.crop)
    expected = predictor.predict_batch(clip[None])[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with background_server(
            ["mlflow", "models", "serve", "-m", f"models:/actionrec-{best}@champion",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)], cwd=repo,
            ready_url=f"{url}/ping", log_path=tmp_path / "serve.log",
            env={"MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}):
        reply = requests.post(f"{url}/invocations", json={"inputs": clip[None].tolist()},
                              timeout=120)
        assert reply.status_code == 200, reply.text
        (answer,) = reply.json()["predictions"]
        assert list(answer) == list(c.classes)
        assert np.allclose([answer[k] for k in c.classes], expected, atol=1e-5)
        bad = requests.post(f"{url}/invocations", json={"inputs": [[1, 2, 3]]}, timeout=60)
        assert bad.status_code == 400, bad.text  # wrong shape: refused by the signature


def _chromium(url: str, *flags: str, cwd: Path) -> str:
    """Load ``url`` in headless Chromium (Debian's package), let its scripts run, return the
    page's DOM. Flags: those of the browser tests in env/machines (no network beyond
    127.0.0.1 here, so background services are off)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (`make test` installs Debian's "
                    "chromium: scripts/bootstrap.sh --browser)")
    proc = run_cmd([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={cwd / 'chromium-profile'}",
                    "--virtual-time-budget=30000", *flags, url], cwd=cwd, timeout=180)
    return proc.stdout


def test_mlflow_ui_opens_the_compare_view_of_the_five_runs(tiny, tmp_path):
    """comparison.md's links, opened in a real browser on a real `mlflow server` over the
    run's store: the compare view lists the five runs and their test metrics, and the runs
    table shows the model-training view with each run's datasets. With
    $ACTIONREC_SCREENSHOTS set, the pages are saved there as PNG (the README's picture)."""
    repo, log = tiny
    table = (repo / "reports" / "comparison.md").read_text()
    links = dict(re.findall(r"\[(These runs side by side|The experiment's training runs)\]"
                            r"\((\S+)\)", table))
    compare, runs = links["These runs side by side"], links["The experiment's training runs"]
    assert compare in log  # the stage printed it too
    shutil.copy(repo / "mlflow.db", tmp_path / "mlflow.db")  # the server may migrate it
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with background_server(
            ["mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], cwd=tmp_path,
            ready_url=f"{base}/health", log_path=tmp_path / "server.log"):
        compare_dom = _chromium(compare.replace("http://127.0.0.1:5000", base), "--dump-dom",
                                cwd=tmp_path)
        runs_dom = _chromium(runs.replace("http://127.0.0.1:5000", base), "--dump-dom",
                             cwd=tmp_path)
        shots = os.environ.get("ACTIONREC_SCREENSHOTS")
        if shots:
            for name, url, size in (("mlflow-compare.png", compare, "1440,1500"),
                                    ("mlflow-runs.png", runs, "1440,700")):
                _chromium(url.replace("http://127.0.0.1:5000", base), "--hide-scrollbars",
                          f"--window-size={size}",
                          f"--screenshot={Path(shots).resolve() / name}", cwd=tmp_path)
    assert "Comparing 5 Runs" in compare_dom
    for arch in ARCHITECTURES:
        assert f">{arch}<" in compare_dom, arch
    assert "test_top1_accuracy" in compare_dom and "test_macro_f1" in compare_dom
    assert "Model training" in runs_dom and "manifest:train" in runs_dom


def test_second_repro_does_nothing_and_a_param_reruns_only_its_stages(scratch):
    repo = scratch
    again = run_cmd(["dvc", "repro"], cwd=repo, timeout=600)
    assert "Running stage" not in again.stdout
    changed = run_cmd(["dvc", "exp", "run", "-S", "models.lrcn.epochs=3"], cwd=repo, timeout=900)
    ran = {line.split("'")[1] for line in changed.stdout.splitlines()
           if line.startswith("Running stage")}
    # check_params validates any params change first (seconds; its output is constant)
    assert ran == {"check_params", "train@lrcn", "evaluate@lrcn", "compare"}
    assert json.loads((repo / "reports" / "evaluate" / "lrcn" / "metrics.json").read_text())[
        "epochs_trained"] <= 3


def _train_eval(tiny_data: Path, run: Path) -> dict:
    """train@convlstm (two epochs: determinism shows in two; saves CI time) and
    evaluate@convlstm in a fresh stage project at ``run``: test metrics and probabilities."""
    repo = stage_project(tiny_data, run, epochs=2, uri=None, arch="convlstm")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["mlflow"].update(register=False, experiment="determinism")
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    run_cmd(["actionrec", "train", "convlstm"], cwd=repo, timeout=900)
    run_cmd(["actionrec", "evaluate", "convlstm"], cwd=repo, timeout=900)
    report = repo / "reports" / "evaluate" / "convlstm"
    metrics = json.loads((report / "metrics.json").read_text())
    metrics.pop("latency_ms")
    probs = pd.read_csv(report / "predictions.csv")
    return {"metrics": metrics, "probs": probs.drop(columns=["video", "actual"]).to_numpy()}


def test_two_runs_with_the_same_params_give_identical_test_metrics(tiny_data, tmp_path):
    a = _train_eval(tiny_data, tmp_path / "a")
    b = _train_eval(tiny_data, tmp_path / "b")
    assert a["metrics"] == b["metrics"]
    assert np.array_equal(a["probs"], b["probs"])


def _resume_project(tiny_data: Path, path: Path, epochs: int, experiment: str,
                    learning_rate: float | None = None) -> tuple[Path, list[str], Path, Path]:
    """An LRCN stage project: ``(project, train command, work folder, model folder)``."""
    repo = stage_project(tiny_data, path, epochs=epochs, uri=None)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["mlflow"].update(register=False, experiment=experiment)
    if learning_rate is not None:
        params["models"]["lrcn"]["learning_rate"] = learning_rate
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    work, out = path / "work", path / "model"
    cmd = [str(Path(sys.executable).parent / "actionrec"), "train", "lrcn", "--out", str(out),
           "--work", str(work)]
    return repo, cmd, work, out


def _kill_after_two_epochs(cmd: list[str], repo: Path, work: Path) -> int:
    """Start the training, SIGKILL it once two epochs are in its history; epochs done."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    first = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    history = work / "lrcn" / "history.csv"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if history.exists() and len(history.read_text().splitlines()) >= 3:  # 2 epochs done
            break
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    return len(pd.read_csv(history))


def test_a_killed_training_resumes_from_its_last_epoch(tiny_data, tmp_path):
    repo, cmd, work, out = _resume_project(tiny_data, tmp_path, 6, "resume")
    done_before = _kill_after_two_epochs(cmd, repo, work)
    assert 2 <= done_before < 6 and not (out / "model.keras").exists()

    second = run_cmd(cmd, cwd=repo, timeout=900)
    assert "Epoch 1/6" not in second.stdout and "not resuming" not in second.stdout
    assert f"Epoch {done_before + 1}/6" in second.stdout
    final = pd.read_csv(out / "history.csv")
    assert final["epoch"].tolist() == list(range(6))
    assert not resume.has_state(work / "lrcn")  # resumable state removed after success
    client = _client(repo)
    run_id = json.loads((out / "meta.json").read_text())["mlflow_run_id"]
    steps = {m.step for m in client.get_metric_history(run_id, "train_loss")}
    assert steps == set(range(6))  # one run, resumed, no epoch lost


def test_a_killed_training_with_a_changed_learning_rate_starts_afresh(tiny_data, tmp_path):
    """Resume belongs to the run that made it: a new learning rate discards the state (one
    line says why), the old MLflow run ends KILLED, and the model equals an unbroken run
    with the new value."""
    repo, cmd, work, out = _resume_project(tiny_data, tmp_path / "a", 4, "resume-changed")
    assert _kill_after_two_epochs(cmd, repo, work) >= 2
    old_run = (work / "lrcn" / "mlflow_run_id").read_text().strip()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"]["lrcn"]["learning_rate"] = 0.0005
    (repo / "params.yaml").write_text(yaml.safe_dump(params))

    second = run_cmd(cmd, cwd=repo, timeout=900)
    assert "train@lrcn: not resuming the interrupted run" in second.stdout
    assert "models.lrcn.learning_rate 0.001 -> 0.0005" in second.stdout
    assert "Epoch 1/4" in second.stdout
    client = _client(repo)
    assert client.get_run(old_run).info.status == "KILLED"
    new_run = json.loads((out / "meta.json").read_text())["mlflow_run_id"]
    assert new_run != old_run and client.get_run(new_run).info.status == "FINISHED"
    assert client.get_run(new_run).data.params["model.learning_rate"] == "0.0005"

    ref_repo, ref_cmd, _, ref_out = _resume_project(tiny_data, tmp_path / "b", 4,
                                                    "resume-unbroken", learning_rate=0.0005)
    run_cmd(ref_cmd, cwd=ref_repo, timeout=900)
    import actionrec.models.layers  # noqa: F401  (the custom layers, for loading)

    got = keras.models.load_model(out / "model.keras", safe_mode=True).get_weights()
    want = keras.models.load_model(ref_out / "model.keras", safe_mode=True).get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_sample_profile_runs_each_kind_of_stage_on_real_ucf101_clips(sample_dir, tmp_path):
    """Real avi + mp4 clips (2 classes, no validation split) through the data stages, a
    from-scratch model on frames (LRCN) and a frozen backbone's head on cached features
    (InceptionV3 + GRU), to their evaluation. (All five and compare run in the tiny run;
    the other three here would add minutes of model building and saving, not coverage.)"""
    repo = make_project(tmp_path / "repo")
    targets = ["evaluate@lrcn", "evaluate@inceptionv3_gru"]
    proc = run_cmd(["dvc", "exp", "run", *profile_args(repo, "sample"),
                    "-S", f"data.local.root={sample_dir}", *targets], cwd=repo, timeout=1500)
    for stage in ("download", "validate", "extract_frames", "extract_features@inceptionv3_gru",
                  "train@lrcn", "train@inceptionv3_gru", *targets):
        assert f"Running stage '{stage}'" in proc.stdout, stage
    manifest = pd.read_csv(repo / "data" / "manifest.csv")
    assert sorted(Path(p).suffix for p in manifest["path"]) == [".avi", ".mp4", ".mp4", ".mp4"]
    report = json.loads((repo / "reports" / "extract_frames.json").read_text())
    assert report["n_extracted"] == 4 and report["n_excluded"] == 0
    for arch in ("lrcn", "inceptionv3_gru"):
        metrics = json.loads((repo / "reports" / "evaluate" / arch / "metrics.json").read_text())
        assert metrics["n_test"] == 2 and set(metrics) >= METRIC_KEYS
    again = run_cmd(["dvc", "repro", *targets], cwd=repo, timeout=600)
    assert "Data and pipelines are up to date." in again.stdout


def test_newcomer_sequence_on_a_fresh_clone_leaves_the_real_run_alone(tiny_run, tmp_path):
    """The README's first steps on a fresh clone: `make demo` runs the tiny profile in its
    scratch copy (here it reuses this suite's run: the clone holds the same files) and
    leaves the clone as it was: git status clean, params.yaml untouched and still the
    real run (profile full, UCF101), no dvc.lock; `dvc status` then plans the real run."""
    from tests.conftest import REPO

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
