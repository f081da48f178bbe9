"""MLflow tracking (tracking/): stages that start together on a new local store share one
experiment; an unreachable server fails training within seconds; the tiny run logged a
run per architecture with every metric, set the champion alias on the best one only, and
the MLflow UI (headless Chromium) opens the compare view of the five runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from actionrec.config import ARCHITECTURES
from tests.helpers import (
    METRIC_KEYS,
    background_server,
    champion,
    free_port,
    run_cmd,
    tracking_client,
)

#: One stage's first contact with the store: wait for the starting signal, then
#: ``tracking.store.setup`` (which creates the SQLite tables and the experiment if need be).
_FIRST_CONTACT = """
import sys, time
from pathlib import Path
from actionrec.tracking import store
import mlflow  # imported before the signal, so that the processes reach the store together
root, go = Path(sys.argv[1]), Path(sys.argv[2])
(root / f"ready-{sys.argv[3]}").touch()
while not go.exists():
    time.sleep(0.005)
print(store.setup(f"sqlite:///{root / 'mlflow.db'}", "actionrec-tiny", root))
"""


def test_stages_starting_together_on_a_new_store_share_one_experiment(tmp_path):
    """Three processes reach a store that does not exist yet at the same moment (as two
    architectures do under `ci/tiny_pipeline.sh`, or `dvc queue start -j 3`): all succeed
    and get the same experiment, the only one besides MLflow's Default."""
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _FIRST_CONTACT, str(tmp_path), str(go),
                               str(i)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(3)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    answers = [proc.communicate(timeout=120) for proc in procs]
    for proc, (_, err) in zip(procs, answers, strict=True):
        assert proc.returncode == 0, err[-3000:]
    ids = {out.strip().splitlines()[-1] for out, _ in answers}
    assert len(ids) == 1, ids

    from mlflow import MlflowClient

    names = {e.name for e in MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
             .search_experiments()}
    assert names == {"Default", "actionrec-tiny"}


LOCK = """schema: '2.0'
stages:
  extract_frames:
    cmd: python stages/extract_frames.py
    deps:
    - path: data/manifest.csv
      md5: 0123456789abcdef0123456789abcdef
    outs:
    - path: data/frames
      md5: fedcba9876543210fedcba9876543210.dir
"""


def test_compare_and_track_do_not_import_keras():
    """compare@ and `actionrec track` use the tracking modules but no model code: importing
    Keras (and TensorFlow under it) would add about 4 s to each start. Only the training's
    callback module imports it."""
    code = ("import sys\n"
            "from actionrec.pipeline import compare\n"
            "from actionrec.tracking import links, recovery, runs, store\n"
            "print(sorted({'keras', 'tensorflow', 'jax'} & set(sys.modules)))\n"
            "from actionrec.tracking import callbacks\n"
            "print('keras' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert proc.stdout.split() == ["[]", "True"], proc.stdout + proc.stderr


def test_dvc_hash_reads_a_lock_again_while_dvc_rewrites_it(tmp_path):
    """A stage of a parallel `dvc repro` can read dvc.lock while another rewrites it: an
    entry cut short is read again until whole; a lock that stays cut short still gives its
    complete entries. A folder's hash is that of the output holding it."""
    import threading

    from actionrec.tracking import lineage

    lock = tmp_path / "dvc.lock"
    cut = LOCK.replace("- path: data/frames\n      md5: fedcba9876543210fedcba9876543210.dir\n",
                       "- path:\n")
    lock.write_text(cut)
    timer = threading.Timer(0.15, lambda: lock.write_text(LOCK))
    timer.start()
    try:
        assert lineage.dvc_hash(tmp_path / "data" / "frames" / "32", tmp_path) == \
            "fedcba9876543210fedcba9876543210.dir"
    finally:
        timer.join()
    lock.write_text(cut)
    assert lineage.dvc_hash(tmp_path / "data" / "frames", tmp_path) is None
    assert lineage.dvc_hash(tmp_path / "data" / "manifest.csv", tmp_path) == \
        "0123456789abcdef0123456789abcdef"


def test_mlflow_has_a_run_per_architecture_with_every_metric(tiny_run):
    repo = tiny_run
    client = tracking_client(repo)
    exp = client.get_experiment_by_name("actionrec-tiny")
    runs = client.search_runs([exp.experiment_id], "tags.dvc_stage LIKE 'train@%'")
    (compared,) = client.search_runs([exp.experiment_id], "tags.dvc_stage = 'compare'")
    assert {a.path for a in client.list_artifacts(compared.info.run_id)} == {
        "comparison.md", "comparison.png"}
    assert compared.data.tags["champion"] in ARCHITECTURES
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


def test_compare_sets_the_champion_alias_on_the_best_architecture_only(tiny_run):
    repo, log = tiny_run, (tiny_run / "pipeline.log").read_text()
    client, best = tracking_client(repo), champion(repo)
    assert f"models:/actionrec-{best}@champion" in log
    for arch in ARCHITECTURES:
        aliases = client.get_registered_model(f"actionrec-{arch}").aliases
        if arch == best:
            run = json.loads((repo / "models" / arch / "mlflow_run.json").read_text())
            assert aliases["champion"] == int(run["registered_version"])
        else:
            assert "champion" not in aliases, arch


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


def test_mlflow_ui_opens_the_compare_view_of_the_five_runs(tiny_run, tmp_path):
    """comparison.md's links, opened in a real browser on a real `mlflow server` over the
    run's store: the compare view lists the five runs and their test metrics, and the runs
    table shows the model-training view with each run's datasets. With
    $ACTIONREC_SCREENSHOTS set, the pages are saved there as PNG (the README's picture)."""
    repo, log = tiny_run, (tiny_run / "pipeline.log").read_text()
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
    # the metrics table renders its first rows only (a virtual list): test_top1_accuracy,
    # below the intervals in alphabetical order, is not in the DOM until scrolled to
    assert "test_macro_f1" in compare_dom and "test_macro_f1_ci_low" in compare_dom
    assert "Model training" in runs_dom and "manifest:train" in runs_dom


def test_unreachable_server_fails_within_seconds_before_training(tmp_path):
    uri = f"http://127.0.0.1:{free_port()}"
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    raw["mlflow"]["tracking_uri"] = uri
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    start = time.monotonic()
    proc = run_cmd(["actionrec", "train", "lrcn"], cwd=tmp_path, check=False, timeout=120)
    assert proc.returncode == 1
    assert time.monotonic() - start < 60  # the interpreter and TensorFlow start included
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: the MLflow tracking server {uri} does not answer")
    assert "make mlflow-server" in lines[-1] and "mlflow.tracking_uri: null" in lines[-1]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "models").exists()
