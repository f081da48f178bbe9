"""Output writing: atomic, and a failed write names the file, the cause and what to do."""

from __future__ import annotations

import os
import resource
import shlex
import subprocess
import sys

import numpy as np
import pytest
import yaml

from actionrec.data.frames import save_npy
from actionrec.errors import OutputError
from actionrec.io import write_json, write_text
from tests.helpers import copy_project, run_cmd


def test_a_write_where_a_file_blocks_the_folder_names_the_path_and_cause(tmp_path):
    (tmp_path / "report").write_text("a file, not a folder")
    target = tmp_path / "report" / "metrics.json"
    with pytest.raises(OutputError) as err:
        write_json(target, {"top1": 1.0})
    msg = str(err.value)
    assert msg.startswith(f"cannot write {target}: ") and "[Errno " in msg
    assert "a file stands where a folder is needed" in msg and "dvc checkout" in msg


def test_a_write_into_a_missing_system_folder_names_the_path(tmp_path):
    with pytest.raises(OutputError, match=r"cannot write /proc/1/actionrec/x\.txt: .*Errno"):
        write_text("/proc/1/actionrec/x.txt", "x")


def _limited(limit: int):
    def set_limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_a_file_size_limit_leaves_the_old_file_and_no_temporary(tmp_path):
    """NumPy reports a short write without errno; the message says what it means."""
    target = tmp_path / "clip.npy"
    save_npy(target, np.ones((2, 2), np.uint8))
    before = target.read_bytes()
    code = ("import numpy as np, sys; from actionrec.data.frames import save_npy; "
            "from actionrec.errors import OutputError\n"
            "try:\n save_npy(sys.argv[1], np.zeros((8, 64, 64, 3), np.uint8))\n"
            "except OutputError as e:\n print(e)")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True,
                          text=True, preexec_fn=_limited(20_000), check=True)
    assert proc.stdout.startswith(f"cannot write {target}: ")
    assert "file-size limit (`ulimit -f`)" in proc.stdout
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["clip.npy"]


@pytest.mark.slow
def test_extract_frames_under_a_file_size_limit_fails_in_one_line_and_is_restorable(
        tiny_run, tmp_path):
    """The stage's command under `ulimit -f` (RLIMIT_FSIZE in the child): one line names a
    frame file and the cause, no traceback; `dvc checkout` brings the last output back,
    its cached report included."""
    project = copy_project(tiny_run, tmp_path / "project")
    report = (project / "reports" / "extract_frames.json").read_bytes()
    cmd = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]["extract_frames"]["cmd"]
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    proc = subprocess.run(shlex.split(cmd), cwd=project, env=env, capture_output=True,
                          text=True, preexec_fn=_limited(20_000), timeout=600)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    # the shard being built, in the work folder of the resumable extraction
    assert last.startswith("error: cannot write data/.partial/frames/"), last
    assert "ulimit -f" in last, last

    (project / "reports" / "extract_frames.json").unlink()  # as if DVC had removed it
    run_cmd(["dvc", "checkout", "--force", "extract_frames"], cwd=project)
    assert (project / "reports" / "extract_frames.json").read_bytes() == report
    status = run_cmd(["dvc", "status", "extract_frames"], cwd=project)
    assert "up to date" in status.stdout, status.stdout


def test_load_npy_reads_what_save_npy_wrote_from_many_threads(tmp_path):
    """The frame store's reader (header parsed under a lock: see frames._HEADER_LOCK)."""
    from concurrent.futures import ThreadPoolExecutor

    from actionrec.data.frames import load_npy

    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8) for _ in range(32)]
    for i, a in enumerate(arrays):
        save_npy(tmp_path / f"{i}.npy", a)
    np.save(tmp_path / "f.npy", np.asfortranarray(rng.random((5, 7))))
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: load_npy(tmp_path / f"{i}.npy"), range(32)))
    assert all(np.array_equal(g, a) and g.dtype == np.uint8 for g, a in zip(got, arrays,
                                                                           strict=True))
    assert np.array_equal(load_npy(tmp_path / "f.npy"), np.load(tmp_path / "f.npy"))
