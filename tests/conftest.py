"""Shared fixtures: the reference data beside the repo, synthetic videos, a local HTTP server."""

from __future__ import annotations

import contextlib
import http.server
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

import actionrec  # noqa: F401  (first: its import hook keeps TensorFlow's start-up lines out)

REPO = Path(__file__).resolve().parents[1]


def shared_path() -> Path:
    """Where the reference data is looked for: ``$ACTIONREC_SHARED_DIR`` or ``../shared``."""
    return Path(os.environ.get("ACTIONREC_SHARED_DIR", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` (or ``$ACTIONREC_SHARED_DIR``); the test is skipped when it is absent."""
    path = shared_path()
    if not (path / "ucf101_sample" / "UCF-101").is_dir():
        pytest.skip(f"reference data not found at {path} (set ACTIONREC_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def sample_dir(shared_dir: Path) -> Path:
    """The 15 real UCF101 clips (UCF101 layout, sample split lists)."""
    return shared_dir / "ucf101_sample"


@pytest.fixture(scope="session")
def official_lists(shared_dir: Path) -> Path:
    """The official split files (classInd.txt, trainlist0N.txt, testlist0N.txt)."""
    return shared_dir / "ucf101" / "ucfTrainTestlist"


@pytest.fixture(scope="session")
def rar_fixtures(shared_dir: Path) -> Path:
    """The 51 real RAR archives made by the RAR tools, each with its ``.exp`` listing."""
    return shared_dir / "rar_fixtures"


@pytest.fixture(scope="session")
def repo_params() -> dict:
    """The repository's params.yaml as a plain mapping."""
    return yaml.safe_load((REPO / "params.yaml").read_text())


SMALL_SYNTH = dict(actions=["sit_down", "stand_up", "wave"], groups=4, test_groups=1,
                   clips_per_group=2, min_frames=20, max_frames=28, width=80, height=64,
                   fps=25.0, seed=3)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset (real XVID .avi files) in the UCF101 layout; read-only use."""
    from actionrec.data.synthetic import generate

    root = tmp_path_factory.mktemp("synth")
    generate(root, progress=False, **SMALL_SYNTH)
    return root


@pytest.fixture
def synth_copy(synth_dir: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`synth_dir` that a test may damage."""
    dst = tmp_path / "synth"
    shutil.copytree(synth_dir, dst)
    return dst


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


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    state = FileServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_GET(self):  # noqa: N802 (http.server's naming)
            name = self.path.lstrip("/")
            rng = self.headers.get("Range")
            state.requests.append((name, rng))
            if name not in state.files:
                self.send_error(404)
                return
            data = state.files[name]
            start = 0
            if rng:
                m = re.fullmatch(r"bytes=(\d+)-", rng)
                start = int(m.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = state.cut_after.pop(name, None)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def ci_work_dir() -> Path:
    """Where ``ci/tiny_pipeline.sh`` keeps its run: ``$ACTIONREC_CI_WORK`` or ``.ci-work``."""
    return Path(os.environ.get("ACTIONREC_CI_WORK", REPO / ".ci-work")).resolve()


@pytest.fixture(scope="session")
def tiny_run() -> Path:
    """The tiny profile, run once by ``ci/tiny_pipeline.sh --run-only`` (real ``dvc repro``
    in a scratch git + DVC repo) and shared: by the tests that read its outputs, and by
    ``make ci-pipeline``'s regression gate, which reuses the run while the source is
    unchanged. Tests must not modify it: copy it with :func:`copy_project` first."""
    run_cmd(["bash", str(REPO / "ci" / "tiny_pipeline.sh"), "--run-only"], cwd=REPO,
            timeout=3000)
    return ci_work_dir()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny profile's data stages only (download to extract_frames, real ``dvc repro``)
    in a fresh project, made once per test session and shared by its xdist workers (a
    file lock; the second worker waits, then reuses it). For tests that train or extract on
    the tiny profile's frames but need no trained model: they start at once instead of
    waiting the ~12 minutes of :func:`tiny_run`. Same params and generator as the tiny run,
    so the same frames. Tests must not modify it: see :func:`stage_project`."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the session's root, shared by its workers
    project, done = base / "tiny-data", base / "tiny-data.done"
    with open(base / "tiny-data.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(project, ignore_errors=True)
            make_project(project)
            run_cmd(["actionrec", "profile", "tiny", "--apply"], cwd=project)
            run_cmd(["dvc", "repro", "extract_frames"], cwd=project, timeout=900)
            done.touch()
    return project


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the tests for ``make test``'s two workers (pytest-xdist, ``--maxschedchunk 2``,
    which hands out tests two at a time in this order): one test that needs the tiny run
    first, so that one worker starts the run at once; then every test that does not need
    it, which the other worker works through meanwhile; the rest of those that need it
    last, when the run is done or nearly. (In collection order the team tests needed the
    run first: both workers waited on it, 14 minutes of one core idle.)"""
    needs = [item for item in items if "tiny_run" in getattr(item, "fixturenames", ())]
    if needs:
        others = [item for item in items if "tiny_run" not in getattr(item, "fixturenames", ())]
        items[:] = [needs[0], *others, *needs[1:]]


def copy_project(src: Path, dst: Path) -> Path:
    """A private copy of a pipeline project (git, DVC cache, outputs, MLflow store).

    The copied MLflow experiments are pointed at the copy's own ``mlruns/`` (MLflow keeps
    an absolute artifact location per experiment), so new runs in the copy write nothing
    into ``src``.
    """
    import sqlite3

    shutil.copytree(src, dst, symlinks=True)
    db = dst / "mlflow.db"
    if db.exists():
        with sqlite3.connect(db) as con:
            con.execute("UPDATE experiments SET artifact_location = "
                        "replace(artifact_location, ?, ?)",
                        (str(src.resolve()), str(dst.resolve())))
    return dst


def stage_project(src: Path, dst: Path, epochs: int | None, uri: str | None,
                  arch: str = "lrcn") -> Path:
    """A minimal project for ``extract_features@<arch>`` / ``train@<arch>`` /
    ``evaluate@<arch>``: ``src``'s params (:func:`tiny_data` or :func:`tiny_run`; ``arch``'s
    epochs set to ``epochs``, early stopping off, ``mlflow.tracking_uri: uri``), manifest,
    classes and the frame store ``arch`` reads."""
    (dst / "data" / "frames").mkdir(parents=True)
    for name in ("classes.json", "manifest.csv"):
        shutil.copy(src / "data" / name, dst / "data" / name)
    raw = yaml.safe_load((src / "params.yaml").read_text())
    section = raw["models"][arch]
    if epochs is not None:
        section["epochs"], section["early_stopping_patience"] = epochs, epochs
    raw["mlflow"]["tracking_uri"] = uri
    size = str(section["image_size"])
    shutil.copytree(src / "data" / "frames" / size, dst / "data" / "frames" / size)
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


def run_cmd(args: list[str], cwd: Path, check: bool = True, timeout: float = 900,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a command with this interpreter's environment (its bin/ first on PATH) and
    ``env`` on top."""
    env = {**os.environ, **(env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)  # each project uses its own sqlite store
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
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
