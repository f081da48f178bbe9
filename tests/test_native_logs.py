"""TensorFlow's start-up lines are filtered out of the output; real warnings and errors are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

from actionrec.native_logs import has_nvidia_driver, is_noise

# Lines TensorFlow 2.21 printed on this project's CPU machines, verbatim.
PRE_INIT = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
ONEDNN = ("I0000 00:00:1795440599.885229    1884 port.cc:153] oneDNN custom operations are on. "
          "You may see slightly different numerical results due to floating-point round-off "
          "errors from different computation orders.")
CUDART = ("I0000 00:00:1795440599.886156    1884 cudart_stub.cc:31] Could not find cuda drivers "
          "on your machine, GPU will not be used.")
CUINIT = ("E0000 00:00:1795440604.952985    1884 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)")
OTHER_ERROR = "E0000 00:00:1795440604.952985    1884 op_kernel.cc:1830] OP_REQUIRES failed"
WARNING = "W0000 00:00:1795440604.952985    1884 cpu_allocator.cc:94] Allocation exceeds 10%"
DT_BOOL = ("E0000 00:00:1795441786.416551   12400 util.cc:131] oneDNN supports DT_BOOL only on "
           "platforms with AVX-512. Falling back to the default Eigen-based implementation if "
           "present.")


def test_startup_chatter_is_noise_but_warnings_and_other_errors_are_not() -> None:
    for line in (PRE_INIT, ONEDNN, CUDART, CUINIT, DT_BOOL, DT_BOOL.replace("DT_BOOL", "DT_UINT8")):
        assert is_noise(line, gpu_driver=False), line
    # with an NVIDIA driver loaded, a failing cuInit is a broken CUDA install: keep it
    assert not is_noise(CUINIT, gpu_driver=True)
    for line in (OTHER_ERROR, WARNING, "UserWarning: something", "Epoch 1/30", ""):
        assert not is_noise(line, gpu_driver=False), line


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300, check=True)


def test_the_filter_keeps_every_other_line_in_order() -> None:
    code = (
        "import os, sys\n"
        "from actionrec.native_logs import filtered_stderr, is_noise\n"
        "with filtered_stderr(lambda line: is_noise(line, False)):\n"
        f"    os.write(2, b'first\\n' + {PRE_INIT!r}.encode() + b'\\n')\n"
        f"    os.write(2, {ONEDNN!r}.encode() + b'\\nsecond\\n')\n"
        "    print('third', file=sys.stderr)\n"
        f"    os.write(2, {WARNING!r}.encode() + b'\\nno newline at the end')\n"
        "print('after', file=sys.stderr)\n"
    )
    err = _run(code).stderr
    assert err == f"first\nsecond\nthird\n{WARNING}\nno newline at the endafter\n"


def test_the_process_filter_drops_training_chatter_keeps_errors_and_exit_messages() -> None:
    """What `actionrec` and the stages do: the whole process filtered; progress-bar text
    (no newline) passes, a real C++ error, a Python warning and the exit message stay."""
    code = (
        "import os, sys, warnings\n"
        "from actionrec import native_logs\n"
        "native_logs.filter_process_stderr()\n"
        f"os.write(2, {DT_BOOL!r}.encode() + b'\\n')\n"
        "os.write(2, b'\\rbar  50%')\n"
        f"os.write(2, b'\\rbar 100%\\n' + {OTHER_ERROR!r}.encode() + b'\\n')\n"
        "warnings.warn('a real warning')\n"
        "raise SystemExit('the exit message')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.decode().split("\n")  # bytes: text mode would turn \r into \n
    assert lines[0] == "\rbar  50%\rbar 100%" and lines[1] == OTHER_ERROR
    assert "a real warning" in lines[2] and lines[-2:] == ["the exit message", ""]
    assert b"DT_BOOL" not in proc.stderr


def test_a_process_whose_children_outlive_it_exits_without_waiting_for_them() -> None:
    """What validate and extract_frames do: the filtered process starts multiprocessing's
    fork server and resource tracker, which hold the filter's pipe as their stderr until
    this process has exited. Exit must not wait for them (it waited 10 s per stage, the
    filter thread's time-out); everything the process wrote still comes out, in order."""
    code = (
        "import math, os\n"
        "from actionrec import native_logs\n"
        "from actionrec.parallel import imap_progress\n"
        "native_logs.filter_process_stderr()\n"
        "print(sorted(imap_progress(math.sqrt, [1, 4, 9, 16], 2, 'roots', progress=False)))\n"
        f"os.write(2, b'before\\n' + {DT_BOOL!r}.encode() + b'\\nlast, no newline')\n"
    )
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"[1.0, 2.0, 3.0, 4.0]\n"
    assert proc.stderr == b"before\nlast, no newline"
    assert elapsed < 8, f"exit waited {elapsed:.1f} s for the children's end of the pipe"


def test_importing_tensorflow_through_actionrec_prints_no_startup_lines() -> None:
    """Real TensorFlow: its chatter is gone, a real warning still shows; opting out shows all."""
    code = ("from actionrec import native_logs; native_logs.install(); import keras; "
            "keras.ops.zeros((2,)); import warnings; warnings.warn('a real warning')")
    quiet = _run(code).stderr
    assert "a real warning" in quiet
    assert not [line for line in quiet.splitlines() if is_noise(line, gpu_driver=False)]
    if not has_nvidia_driver():  # without a GPU, TensorFlow 2.21 always says CUDA is absent
        loud = _run(code, ACTIONREC_NATIVE_LOGS="1").stderr
        assert any(is_noise(line, gpu_driver=False) for line in loud.splitlines()), loud


def test_thread_settings_still_apply_after_the_quiet_import() -> None:
    """The hook's device lookup must not initialise the runtime (training sets threads)."""
    out = _run("from actionrec import native_logs; native_logs.install()\n"
               "import tensorflow as tf\n"
               "tf.config.threading.set_intra_op_parallelism_threads(1)\n"
               "print(tf.config.threading.get_intra_op_parallelism_threads())").stdout
    assert out.strip() == "1"


def test_importing_the_package_and_every_module_changes_nothing_process_wide() -> None:
    """``import actionrec`` installs no import hook and leaves descriptor 2 and the
    environment's log settings alone; importing every submodule after it (Keras,
    TensorFlow and MLflow with them) adds no hook of actionrec's and patches no class. The
    entry points and the tests switch the filter on themselves."""
    code = textwrap.dedent("""
        import os, sys, pkgutil, importlib, json
        def env():
            return {k: v for k, v in os.environ.items() if k.startswith(("TF_", "ACTIONREC"))}
        before, fd2, hooks = env(), os.fstat(2).st_ino, list(sys.meta_path)
        import actionrec
        package = {"hooks": [type(h).__module__ for h in sys.meta_path if h not in hooks],
                   "env_same": env() == before, "fd2_same": os.fstat(2).st_ino == fd2}
        for m in pkgutil.walk_packages(actionrec.__path__, "actionrec."):
            importlib.import_module(m.name)
        from actionrec.config import Params
        print(json.dumps({**package, "patched": "__getattribute__" in vars(Params),
                          "all_hooks": [type(h).__module__ for h in sys.meta_path
                                        if h not in hooks]}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["hooks"] == [] and found["env_same"] and found["fd2_same"], found
    assert not [h for h in found["all_hooks"] if h.startswith("actionrec")], found
    assert not found["patched"], found
