"""What the tests import: the repository's paths, commands run as a user would, project
copies for pipeline tests, real servers in their own process group. (Fixtures live in
``conftest.py``; pytest finds them there without an import.)"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

#: The keys of every ``reports/evaluate/<arch>/metrics.json`` (evaluation.py; top-k
#: accuracy only where k is below the number of classes).
METRIC_KEYS = {"top1_accuracy", "macro_precision", "macro_recall", "macro_f1", "latency_ms",
               "parameters", "epochs_trained", "n_test", "train_top1_accuracy",
               "top1_accuracy_ci_low", "top1_accuracy_ci_high", "macro_f1_ci_low",
               "macro_f1_ci_high", "design_effect", "n_test_groups"}


def shared_path() -> Path:
    """Where the reference data is looked for: ``$ACTIONREC_SHARED_DIR`` or ``../shared``."""
    return Path(os.environ.get("ACTIONREC_SHARED_DIR", REPO.parent / "shared")).resolve()


#: The synthetic dataset of the ``synth_dir`` fixture: 3 actions, 4 groups (1 held out for
#: test), 2 clips per group, 20-28 frames of 80 x 64 px.
SMALL_SYNTH = dict(actions=["sit_down", "stand_up", "wave"], groups=4, test_groups=1,
                   clips_per_group=2, min_frames=20, max_frames=28, width=80, height=64,
                   fps=25.0, seed=3)


@dataclass
class FileServer:
    """A real HTTP server on 127.0.0.1 that serves ``files`` with Range support.

    ``cut_after[name] = n`` makes the next response for ``name`` send ``n`` bytes and
    then drop the connection (once). Every request's Range header is recorded.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    port: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"


def ci_work_dir() -> Path:
    """Where ``ci/tiny_pipeline.sh`` keeps its run: ``$ACTIONREC_CI_WORK`` or ``.ci-work``."""
    return Path(os.environ.get("ACTIONREC_CI_WORK", REPO / ".ci-work")).resolve()


def copy_project(src: Path, dst: Path) -> Path:
    """A private copy of a pipeline project (git, DVC cache, outputs, MLflow store).

    The copied MLflow experiments are pointed at the copy's own ``mlruns/`` (MLflow keeps
    an absolute artifact location per experiment), so new runs in the copy write nothing
    into ``src``. Files that nothing rewrites in place are hard links, not copies: DVC's
    cache (read-only, content-addressed) and MLflow's artifacts (a run adds files, it
    never edits them). That is two thirds of the tiny run's 1.4 GB, copied once per test
    before.
    """
    import sqlite3

    linked = {src / ".dvc" / "cache", src / "mlruns"}

    def copy(s: str, d: str) -> None:
        if any(Path(s).is_relative_to(top) for top in linked):
            os.link(s, d)
        else:
            shutil.copy2(s, d)

    shutil.copytree(src, dst, symlinks=True, copy_function=copy)
    db = dst / "mlflow.db"
    if db.exists():
        with sqlite3.connect(db) as con:
            con.execute("UPDATE experiments SET artifact_location = "
                        "replace(artifact_location, ?, ?)",
                        (str(src.resolve()), str(dst.resolve())))
    return dst


def stage_project(src: Path, dst: Path, epochs: int | None, uri: str | None,
                  arch: str = "lrcn", clips: int | None = None) -> Path:
    """A minimal project for ``extract_features@<arch>`` / ``train@<arch>`` /
    ``evaluate@<arch>``: ``src``'s params (the ``tiny_run`` fixture's; ``arch``'s epochs set to
    ``epochs``, early stopping off, ``mlflow.tracking_uri: uri``), manifest, classes and
    the frame store ``arch`` reads.

    ``clips``: keep only the first ``clips`` clips of every class in every split (manifest
    and frame store alike; 384 in the tiny run, 48 with ``clips=4``), for tests whose point
    is not accuracy: determinism, the JAX backend, the team server. ``None`` keeps them all.
    The shards are hard links to ``src``'s: training and extraction only read them."""
    import pandas as pd

    raw = yaml.safe_load((src / "params.yaml").read_text())
    section = raw["models"][arch]
    if epochs is not None:
        section["epochs"], section["early_stopping_patience"] = epochs, epochs
    raw["mlflow"]["tracking_uri"] = uri
    size = str(section["image_size"])
    store, out = src / "data" / "frames" / size, dst / "data" / "frames" / size
    out.mkdir(parents=True)
    shutil.copy(src / "data" / "classes.json", dst / "data" / "classes.json")
    shutil.copy(store / "meta.json", out / "meta.json")
    index = pd.read_csv(store / "index.csv")
    manifest = pd.read_csv(src / "data" / "manifest.csv")
    if clips is not None:
        index = index.groupby(["split", "class_name"], sort=False).head(clips)
        manifest = manifest[manifest["video"].isin(index["video"])]
    for shard in index["shard"].unique():  # a clip's shard and position stay as they were
        (out / shard).parent.mkdir(parents=True, exist_ok=True)
        os.link(store / shard, out / shard)  # read-only use: training and extraction only read
    index.to_csv(out / "index.csv", index=False)
    manifest.to_csv(dst / "data" / "manifest.csv", index=False)
    (dst / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return dst


def synth_stage_project(synth_dir: Path, dst: Path, uri: str | None,
                        arch: str = "lrcn") -> Path:
    """A stage project on the :data:`SMALL_SYNTH` clips, for tests that need no tiny run:
    this repository's params with the tiny profile applied (``mlflow.tracking_uri: uri``),
    the manifest and classes of :func:`synth_manifest`, and the frame store ``arch`` reads,
    extracted here (the tiny profile's T and image size; 24 clips in 3 classes)."""
    import json

    from actionrec.config import parse_params, read_raw, with_profile
    from actionrec.data.frames import extract_frames
    from actionrec.data.validation import probe_videos

    raw = with_profile(read_raw(REPO / "params.yaml"), "tiny")
    raw["mlflow"]["tracking_uri"] = uri
    params = parse_params(raw)
    manifest, classes = synth_manifest(synth_dir)
    (dst / "data").mkdir(parents=True)
    manifest.to_csv(dst / "data" / "manifest.csv", index=False)
    (dst / "data" / "classes.json").write_text(json.dumps(classes))
    probed = probe_videos(list(manifest["path"]), synth_dir / "UCF-101", 2, progress=False)
    extract_frames(manifest, probed, classes, synth_dir / "UCF-101",
                   [params.models.get(arch).image_size], params.frames, dst / "data" / "frames",
                   0.0, dst / "extract_frames.json", progress=False)
    (dst / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return dst


def make_project(dst: Path) -> Path:
    """A fresh clone-like copy of the project at ``dst``: git repo, DVC initialised, nothing run."""
    dst.mkdir(parents=True)
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, dst / name)
    for name in ("stages", "src"):
        shutil.copytree(REPO / name, dst / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    run_cmd(["git", "init", "-q"], cwd=dst)
    run_cmd(["dvc", "init", "-q"], cwd=dst)
    run_cmd(["git", "add", "-A"], cwd=dst)
    run_cmd(["git", "commit", "-qm", "init"], cwd=dst)
    return dst


def profile_args(repo: Path, name: str) -> list[str]:
    """The ``dvc exp run`` arguments of a profile, as printed by ``actionrec profile``."""
    return run_cmd(["actionrec", "profile", name], cwd=repo).stdout.split()


def command_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a command a test starts: this one, ``env`` on top, this
    interpreter's bin/ first on PATH, and no ``$MLFLOW_TRACKING_URI`` (each project uses its
    own store; MLflow's set_tracking_uri exports it, so an earlier test may have left one)."""
    env = {**os.environ, **(env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_to_failpoint(cmd: list[str], cwd: Path, point: str,
                     env: dict[str, str] | None = None, timeout: float = 900) -> str:
    """Run a training command that kills itself (SIGKILL) at ``point`` of an epoch's commit
    (``$ACTIONREC_FAILPOINT``, :mod:`actionrec.checkpoint`): where it stops is chosen, not
    timed. Returns what it printed.

    Raises:
        AssertionError: the command did not end killed at that point.
    """
    from actionrec.checkpoint import FAILPOINT_ENV

    proc = subprocess.run(cmd, cwd=cwd, env=command_env({**(env or {}), FAILPOINT_ENV: point}),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    assert proc.returncode == -signal.SIGKILL and \
        f"failpoint {point}: killing this process" in proc.stdout, \
        f"{' '.join(cmd)} exited {proc.returncode}, not at {point}:\n{proc.stdout[-4000:]}"
    return proc.stdout


def wait_until_paused(proc: subprocess.Popen, timeout: float = 900) -> None:
    """Wait until ``proc`` has stopped itself (a ``<step>@<k>:stop`` failpoint, SIGSTOP).

    Raises:
        AssertionError: it ended, or had not stopped within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, status = os.waitpid(proc.pid, os.WUNTRACED | os.WNOHANG)
        if pid:
            assert os.WIFSTOPPED(status), f"the process ended (status {status}) unpaused"
            return
        time.sleep(0.05)
    raise AssertionError(f"the process did not pause within {timeout:.0f} s")


def run_cmd(args: list[str], cwd: Path, check: bool = True, timeout: float = 900,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command with this interpreter's environment (its bin/ first on PATH) and
    ``env`` on top."""
    env = command_env(env)
    env.setdefault("GIT_AUTHOR_NAME", "actionrec-tests")
    env.setdefault("GIT_AUTHOR_EMAIL", "tests@actionrec.invalid")
    env.setdefault("GIT_COMMITTER_NAME", "actionrec-tests")
    env.setdefault("GIT_COMMITTER_EMAIL", "tests@actionrec.invalid")
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\n"
            f"stderr:\n{proc.stderr[-4000:]}"
        )
    return proc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def background_server(args: list[str], cwd: Path, ready_url: str, log_path: Path,
                      env: dict[str, str] | None = None, timeout: float = 180) -> Iterator[None]:
    """Run a real server (``mlflow server``, ``mlflow models serve``) in its own process
    group until ``ready_url`` answers 200; stop the whole group (workers too) afterwards."""
    import requests

    full_env = {**os.environ, **(env or {}),
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log_path, "w") as log:
        server = subprocess.Popen(args, cwd=cwd, env=full_env, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                assert server.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, f"{args[:3]} not up in {timeout:.0f} s"
                try:
                    if requests.get(ready_url, timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    pass
                time.sleep(1)
            yield
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    """A zip archive of ``members`` (member name -> bytes), in memory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def targz_bytes(members: dict[str, bytes]) -> bytes:
    """A gzip-compressed tar archive of ``members`` (member name -> bytes), in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tracking_client(project: Path):
    """An ``MlflowClient`` on ``project``'s own SQLite store (``mlflow.db``)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}")


def champion(project: Path) -> str:
    """The architecture ``compare`` chose by its rule in ``project`` (the ``## Champion:``
    line of ``reports/comparison.md``)."""
    import re

    table = (project / "reports" / "comparison.md").read_text()
    return re.search(r"^## Champion: \*\*(\w+)\*\*$", table, re.MULTILINE).group(1)


def synth_manifest(root: Path, val_fraction: float = 0.34) -> tuple:
    """``(manifest, classes)`` of a :data:`SMALL_SYNTH`-like dataset at ``root``: split 1,
    its three actions, a group-aware validation share of ``val_fraction`` (seed 0)."""
    from actionrec.data.splits import build_manifest

    manifest, classes, _ = build_manifest(root / "ucfTrainTestlist", root / "UCF-101", 1, None,
                                          ["SitDown", "StandUp", "Wave"], val_fraction, 0)
    return manifest, classes


def postgres_or_skip() -> None:
    """Skip the test where PostgreSQL's programs are missing, or where running as root
    lacks the ``postgres`` user or ``runuser`` to start it."""
    import pytest

    from actionrec.errors import ActionrecError
    from actionrec.server import postgres_bin

    try:
        postgres_bin()
    except ActionrecError as err:
        pytest.skip(str(err))
    if os.geteuid() == 0 and (shutil.which("runuser") is None or subprocess.run(
            ["id", "postgres"], capture_output=True).returncode != 0):
        pytest.skip("running as root needs the postgres user and runuser to start PostgreSQL")
