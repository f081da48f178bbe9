"""The fixtures: the reference data beside the repo (skipped where it is absent), synthetic
videos, a local HTTP server, the tiny run; and the order in which ``make test``'s workers
take the tests. What tests import (paths, ``run_cmd``, project copies) is ``tests/helpers.py``."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from actionrec import native_logs
from tests.helpers import (
    REPO,
    SMALL_SYNTH,
    FileServer,
    ci_work_dir,
    free_port,
    postgres_or_skip,
    run_cmd,
    shared_path,
)


def pytest_configure(config: pytest.Config) -> None:
    """Before any test module imports Keras: TensorFlow's start-up lines stay out of the
    output (importing actionrec changes nothing by itself; the tests switch this on)."""
    native_logs.install()

# JAX's persistent compilation cache (JAX docs, "Persistent compilation cache"), for every
# JAX process of the tests (the JAX pass, the `actionrec` commands they start; what it
# saves: docs/benchmarks.md, "JAX's persistent compilation cache"). Every program is kept
# (no minimum compile time or size); a size limit turns on JAX's file lock, so processes
# that compile the same program at once (the multi-host test) never read a half-written
# entry. The cache is keyed by program, JAX version and device: it never goes stale.
for _key, _value in {
        "JAX_COMPILATION_CACHE_DIR": str(Path(tempfile.gettempdir())
                                         / f"actionrec-tests-jax-cache-{os.getuid()}"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
        "JAX_COMPILATION_CACHE_MAX_SIZE": str(2**30)}.items():
    os.environ.setdefault(_key, _value)


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


@pytest.fixture(scope="session")
def tiny_run() -> Path:
    """The tiny profile, run once by ``ci/tiny_pipeline.sh --run-only`` (real ``dvc repro``
    in a scratch git + DVC repo) and shared: by the tests that read its outputs, and by
    ``make ci-pipeline``'s regression gate, which reuses the run while the source is
    unchanged. Tests must not modify it: copy it with :func:`copy_project` first."""
    run_cmd(["bash", str(REPO / "ci" / "tiny_pipeline.sh"), "--run-only"], cwd=REPO,
            timeout=3000)
    return ci_work_dir()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects: the slow mark it adds must count
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test that needs the tiny run is ``slow`` (``-m "not slow"`` never starts the
    run). Then the order for ``make test``'s two workers (pytest-xdist,
    ``--maxschedchunk 2``, which hands out tests two at a time in this order): one test
    that needs the tiny run first, so that one worker starts the run at once; then every
    test that does not need it, which the other worker works through meanwhile; the rest
    of those that need it last, when the run is done or nearly. (In collection order the
    team tests needed the run first: both workers waited on it, 14 minutes of one core
    idle.)"""
    needs = [item for item in items if "tiny_run" in getattr(item, "fixturenames", ())]
    for item in needs:
        item.add_marker(pytest.mark.slow)
    if needs:
        others = [item for item in items if "tiny_run" not in getattr(item, "fixturenames", ())]
        items[:] = [needs[0], *others, *needs[1:]]


@pytest.fixture(scope="module")
def team_server() -> Iterator[object]:
    """PostgreSQL + ``mlflow server`` (served artifacts) in a folder the postgres user can
    reach (``/tmp``, not pytest's private tmp), stopped and removed afterwards."""
    postgres_or_skip()
    from actionrec.server import TeamServer

    root = Path(tempfile.mkdtemp(prefix="actionrec-team-"))
    root.chmod(0o755)
    server = TeamServer(root / "state", port=free_port(), pg_port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
