"""Keep TensorFlow's native log lines that nobody can act on out of the output.

TensorFlow 2.21 writes lines from C++ straight to file descriptor 2, most of them before
its logging is set up (``absl::InitializeLog``), where ``TF_CPP_MIN_LOG_LEVEL`` does not
reach them::

    WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
    I0000 00:00:1795440599.885229 1884 port.cc:153] oneDNN custom operations are on. ...
    I0000 00:00:1795440599.886156 1884 cudart_stub.cc:31] Could not find cuda drivers ...
    E0000 00:00:1795440604.952985 1884 cuda_platform.cc:52] failed call to cuInit: ...
    E0000 00:00:1795441786.416551 12400 util.cc:131] oneDNN supports DT_BOOL only on ...

:func:`is_noise` names those lines. Two ways to drop them, both on the descriptor, so that
C++ output is filtered as well as Python's and every other line passes on in order:

- :func:`install` (``tests/conftest.py`` calls it; so may a notebook) adds an import hook:
  the first ``import tensorflow`` of the process (``import keras`` makes it) and
  TensorFlow's first device lookup, where ``cuInit`` fails, run inside
  :func:`filtered_stderr`. Tests and notebooks get this.
- :func:`filter_process_stderr` (the ``actionrec`` command and the DVC stages call it)
  filters for the whole process, for the lines TensorFlow writes while training.

``TF_CPP_MIN_LOG_LEVEL`` is set to 1 unless the user set it: TensorFlow's later INFO lines
are hidden and its warnings shown. ``ACTIONREC_NATIVE_LOGS=1`` turns all filtering off
(e.g. to debug a CUDA install).
"""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import importlib.abc
import importlib.machinery
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

_PRE_INIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# absl's line prefix: severity, MMDD, time, thread id, file:line]
_ABSL = re.compile(r"^(?P<sev>[IWEF])\d{4} [\d:.]+\s+\d+ (?P<file>[\w.]+):\d+\] ")
# TensorFlow's CPU-feature notice continues on a second line of its own.
_CPU_FEATURES_TAIL = "To enable the following instructions:"
#: Error-level lines of TensorFlow 2.21 that report no error: (source file, words in it).
BENIGN_ERRORS = (
    # a oneDNN kernel for a dtype (DT_BOOL, DT_UINT8, ...) missing on this CPU: the Eigen
    # kernel is used instead
    ("util.cc", "only on platforms with AVX-512. Falling back to the default Eigen-based"),
    # a tf.data graph attribute newer than the runtime's op registry; ignored by design
    ("node_def_util.cc", "use_unbounded_threadpool"),
)
# A held partial line: what may still become a line that is_noise drops.
_NOISE_START = re.compile(r"[IWEF](\d{0,4}|\d{4} .*)", re.S)


def has_nvidia_driver() -> bool:
    """Whether the NVIDIA kernel driver is loaded (``/dev/nvidiactl`` exists)."""
    return Path("/dev/nvidiactl").exists()


def is_noise(line: str, gpu_driver: bool) -> bool:
    """Whether one line of output is TensorFlow chatter that the user can't act on.

    Dropped: absl's "before InitializeLog" notice, absl INFO lines (oneDNN on, no CUDA
    drivers, CPU features), the CPU-feature notice's second line, and the error-level
    lines of :data:`BENIGN_ERRORS`. The ``failed call to cuInit`` error is dropped only
    when ``gpu_driver`` is false: on a machine with an NVIDIA driver it means a broken
    CUDA install and is kept. Warnings (``W``) and every other error are kept.
    """
    if line.startswith(_PRE_INIT) or line.startswith(_CPU_FEATURES_TAIL):
        return True
    match = _ABSL.match(line)
    if match is None:
        return False
    if match["sev"] == "I":
        return True
    if match["sev"] != "E":
        return False
    if "cuInit" in line:
        return not gpu_driver
    return any(match["file"] == src and words in line for src, words in BENIGN_ERRORS)


def _may_become_noise(partial: str) -> bool:
    return bool(_NOISE_START.fullmatch(partial)) or _PRE_INIT.startswith(partial[:len(
        _PRE_INIT)]) or _CPU_FEATURES_TAIL.startswith(partial[:len(_CPU_FEATURES_TAIL)])


def _start_filter(drop: Callable[[str], bool]) -> tuple[Callable[[], None], int]:
    """Send descriptor 2 through ``drop``; returns the function that stops and restores,
    and a descriptor of the real stderr (valid until then).

    A thread passes the kept lines on. Text without its newline yet (a progress bar's
    ``\\r`` update) is passed on at once unless it may still become a dropped line.

    Stopping does not wait for the pipe to close: child processes started meanwhile may
    hold its write end as their descriptor 2 for as long as this process lives
    (multiprocessing's resource tracker and forkserver do), and waiting for them cost every
    stage that decodes video 10 s at exit. Instead ``stop`` writes a marker, which arrives
    after everything this process wrote before it, and returns once the thread has passed
    that on. The thread then goes on forwarding what the children write until its end.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    # At most PIPE_BUF bytes: written atomically, and read in one piece since a read
    # takes up to the pipe's whole 64 KiB.
    marker = b"\0actionrec-stderr-drained-" + os.urandom(8).hex().encode() + b"\0"
    drained = threading.Event()

    def keep(raw: bytes) -> bool:
        return not drop(raw.decode("utf-8", "replace").rstrip("\n"))

    def pump() -> None:
        pending = b""
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                pending += chunk
                at_marker = marker in pending
                pending = pending.replace(marker, b"")
                *lines, pending = pending.split(b"\n")
                kept = b"".join(raw + b"\n" for raw in lines if keep(raw))
                if pending and (at_marker or not _may_become_noise(
                        pending.decode("utf-8", "replace"))):
                    kept, pending = kept + (pending if keep(pending) else b""), b""
                if kept:
                    os.write(saved, kept)
                if at_marker:
                    drained.set()
        if pending and keep(pending):
            os.write(saved, pending)
        drained.set()
        os.close(saved)

    thread = threading.Thread(target=pump, name="actionrec-stderr-filter", daemon=True)
    thread.start()

    def stop() -> None:
        sys.stderr.flush()
        os.write(2, marker)
        drained.wait(timeout=10)
        os.dup2(saved, 2)  # the pipe's write end closes here, unless a child holds it too

    return stop, saved


@contextlib.contextmanager
def filtered_stderr(drop: Callable[[str], bool]) -> Iterator[None]:
    """Inside the block, lines of descriptor 2 for which ``drop`` is true are left out.

    Leaving the block restores descriptor 2 and waits for the filter's thread, so nothing
    written inside the block is lost or reordered after it.
    """
    stop, _ = _start_filter(drop)
    try:
        yield
    finally:
        stop()


def filter_process_stderr() -> None:
    """Filter :func:`is_noise` lines out of this process's descriptor 2 until it exits.

    At exit the filter is drained before the interpreter ends. A crash (``faulthandler``)
    writes its traceback to the real stderr, not through the filter's thread. No-op with
    ``ACTIONREC_NATIVE_LOGS=1``, or when called twice.
    """
    global _process_filter
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if os.environ.get("ACTIONREC_NATIVE_LOGS") == "1" or _process_filter is not None:
        return
    gpu_driver = has_nvidia_driver()
    _process_filter, real_stderr = _start_filter(lambda line: is_noise(line, gpu_driver))
    faulthandler.enable(file=os.fdopen(os.dup(real_stderr), "w"), all_threads=True)
    atexit.register(_process_filter)
    _uninstall()  # the import hook's own filter would only nest inside this one


_process_filter: Callable[[], None] | None = None


def drain() -> None:
    """Stop :func:`filter_process_stderr`'s filter now: everything written to descriptor 2
    so far is passed on, and descriptor 2 is the real stderr again. For a process about to
    end without ``atexit`` handlers (``os._exit``). A no-op without the filter."""
    global _process_filter
    if _process_filter is not None:
        stop, _process_filter = _process_filter, None
        atexit.unregister(stop)
        stop()


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` inside :func:`filtered_stderr`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        gpu_driver = has_nvidia_driver()
        with filtered_stderr(lambda line: is_noise(line, gpu_driver)):
            self._loader.exec_module(module)
            # The first device lookup loads the CUDA runtime (cuInit); it only lists
            # devices, so thread and logical-device settings can still be made after it.
            module.config.list_physical_devices()

    def __getattr__(self, name: str):  # resources, source, ... of the real loader
        return getattr(self._loader, name)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of the first ``tensorflow`` import (see the module docstring)."""

    def find_spec(self, fullname: str, path, target=None):
        if fullname != "tensorflow":
            return None
        _uninstall()  # once per process
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def _uninstall() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietImport)]


def install() -> None:
    """Filter TensorFlow's import-time lines in this process (no-op once TF is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if os.environ.get("ACTIONREC_NATIVE_LOGS") == "1" or "tensorflow" in sys.modules:
        return
    if not any(isinstance(finder, _QuietImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())
