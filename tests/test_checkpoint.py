"""Exact resume (checkpoint.py): a training killed at any point of an epoch's commit ends
bit for bit as an unbroken one, under TensorFlow and JAX (both in ``make test``'s main pass:
the chain's processes name their backend, so the JAX pass, which the chain would otherwise
lead by a minute, does not run it again).

The training is the product's own: :func:`actionrec.training.recipe` (ReduceLROnPlateau,
EarlyStopping with best weights, the EpochCheckpoint, SyncEpoch) and
:func:`~actionrec.training.fit_recipe` on :class:`FeatureBatches`, in a process of its own
that ``$ACTIONREC_FAILPOINT`` kills (SIGKILL) at a chosen step, not at a moment a test
picks: nothing here depends on timing. Each of those processes is forked from one that has
imported Keras and actionrec and run nothing (:data:`ZYGOTE`, as multiprocessing's
forkserver): a new process with nothing of the last one's but its files, without paying
the imports 15 times (what that saves: docs/benchmarks.md, "CI time").

The model is small (dropout and Gaussian noise: random draws every step) and its
validation labels are the training labels shifted by one class, so the validation loss
only grows: with patience 1 the learning rate is reduced after every epoch from the
second on, and early stopping (patience 3) ends the run after epoch 4 — every kill below
lands inside that window.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actionrec import checkpoint
from tests.helpers import command_env

#: One training process: ``python -c TRAIN <state dir> <result .npz>``.
TRAIN = """
import json, sys
from pathlib import Path
from types import SimpleNamespace
import keras, numpy as np
from actionrec import multihost, training
from actionrec.data.datasets import FeatureBatches, one_hot

state, result = Path(sys.argv[1]), Path(sys.argv[2])
rng = np.random.default_rng(0)
n, t, d, c = 48, 4, 8, 3
labels = np.arange(n) % c
x = (rng.normal(size=(n, t, d)) + labels[:, None, None]).astype("float32")
mask = np.ones((n, t), bool)
train = FeatureBatches(x, mask, one_hot(labels, c), 8, shuffle=True, seed=5)
val = FeatureBatches(x, mask, one_hot((labels + 1) % c, c), 8)

training.set_determinism(7)
feats, m = keras.Input((t, d)), keras.Input((t,), dtype="bool")
h = keras.layers.GlobalAveragePooling1D()(feats, mask=m)
h = keras.layers.GaussianNoise(0.5)(h)
h = keras.layers.Dropout(0.3)(keras.layers.Dense(16, activation="relu")(h))
model = keras.Model([feats, m], keras.layers.Dense(c, activation="softmax")(h))
training.compile_model(model, 0.01, 0.9, 0.999, c)
s = SimpleNamespace(reduce_lr_factor=0.5, reduce_lr_patience=1, min_learning_rate=1e-5,
                    early_stopping_patience=3)
callbacks = training.recipe(s, "val_loss", state, "toy", train, None)
data = training.TrainData(train, val, n, n, np.zeros(1))
model, history = training.fit_recipe(model, data, 10, callbacks, multihost.SINGLE, "toy", True)
np.savez(result, *model.get_weights())
history.to_csv(result.with_suffix(".csv"), index=False)
lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
result.with_suffix(".json").write_text(json.dumps({"final_lr": lr}))
"""

#: Where each process of the chain kills itself, in order: while writing the first best
#: weights (nothing committed yet); every step of epoch 2's commit (``~``: the file cut to
#: half, as a kill during its write leaves it; epoch 2's best weights are epoch 1's, a
#: link); the whole commit of epoch 3; the end of epoch 4, where early stopping fired,
#: before and after its commit (then nothing is left to train).
CHAIN = ["best~@1", "epoch_end@2", "weights~@2", "weights@2", "random~@2", "random@2",
         "best@2", "state~@2", "state@2", "committed@2", "pruned@3", "epoch_end@4",
         "pruned@4"]


#: The process the training processes are forked from: imports what every one of them
#: would, then forks one per line of its input (``{"state", "result", "failpoint",
#: "log"}``), the child's output in ``log``, and answers with the child's exit code.
ZYGOTE = """
import json, os, sys, traceback
import keras, numpy
from actionrec import checkpoint, multihost, training
from actionrec.data.datasets import FeatureBatches, one_hot
code = compile(sys.argv[1], "<train>", "exec")
for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        out = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.environ.pop(checkpoint.FAILPOINT_ENV, None)
        if job["failpoint"]:
            os.environ[checkpoint.FAILPOINT_ENV] = job["failpoint"]
        sys.argv = ["-c", job["state"], job["result"]]
        status = 0
        try:
            exec(code, {"__name__": "__main__"})
        except BaseException:
            traceback.print_exc()
            status = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


@pytest.fixture(scope="module", params=["tensorflow", "jax"])
def zygote(request) -> Iterator[subprocess.Popen]:
    """:data:`ZYGOTE` under each Keras backend, started once for the module (under JAX its
    children share the tests' persistent compilation cache, conftest.py's: the later ones
    reuse the first one's compiled steps, the same programs)."""
    if request.param == "jax":
        pytest.importorskip("jax", reason="JAX is not installed (`pip install -e .[dev]`)")
    env = command_env({"KERAS_BACKEND": request.param})
    env.pop(checkpoint.FAILPOINT_ENV, None)
    proc = subprocess.Popen([sys.executable, "-c", ZYGOTE, TRAIN], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    yield proc
    proc.stdin.close()
    proc.wait(timeout=60)


def _train(zygote: subprocess.Popen, state: Path, result: Path,
           failpoint: str | None = None) -> subprocess.CompletedProcess:
    """One training process (:data:`TRAIN`) forked from ``zygote``; its exit code, and its
    output as both stdout and stderr."""
    log = result.with_name(f"{result.stem}-{failpoint or 'run'}.log")
    zygote.stdin.write(json.dumps({"state": str(state), "result": str(result),
                                   "failpoint": failpoint, "log": str(log)}) + "\n")
    zygote.stdin.flush()
    ready, _, _ = select.select([zygote.stdout], [], [], 300)
    assert ready, f"{failpoint}: no exit after 300 s\n{log.read_text()[-3000:]}"
    code = int(zygote.stdout.readline())
    text = log.read_text()
    return subprocess.CompletedProcess(["train", failpoint], code, stdout=text, stderr=text)


def _result(result: Path) -> tuple[list[np.ndarray], pd.DataFrame, float]:
    with np.load(result) as arrays:
        weights = [arrays[k] for k in arrays.files]
    lr = json.loads(result.with_suffix(".json").read_text())["final_lr"]
    return weights, pd.read_csv(result.with_suffix(".csv")), lr


def test_a_training_killed_at_every_step_of_the_commit_ends_as_an_unbroken_one(zygote,
                                                                            tmp_path):
    """One unbroken run; then one run killed at each point of :data:`CHAIN` in turn, each
    resuming what the last left (torn files, a published state beside the older one, an
    early stop not yet committed), and a last run that finishes it. Both end on the same
    weights, history (every epoch's losses, metrics and learning rate) and final learning
    rate, bit for bit; the unbroken run did reduce the learning rate and stop early."""
    ref = _train(zygote, tmp_path / "unbroken", tmp_path / "unbroken.npz")
    assert ref.returncode == 0, ref.stderr[-3000:]
    weights, history, lr = _result(tmp_path / "unbroken.npz")
    assert history["epoch"].tolist() == [0, 1, 2, 3]  # early stopping ended it after epoch 4
    assert history["learning_rate"].tolist() == pytest.approx([0.01, 0.01, 0.005, 0.0025])
    assert lr == pytest.approx(0.00125)  # reduced again after epoch 4

    state, result = tmp_path / "resumed" / "state", tmp_path / "resumed.npz"
    said = {}  # what each process printed, by the failpoint it ended at
    for point in CHAIN:
        proc = _train(zygote, state, result, point)
        assert proc.returncode == -9, f"{point}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        assert f"failpoint {point}: killing this process" in proc.stdout
        said[point] = proc.stdout
        assert not result.exists()
    # where each run started: after what the run before it left
    assert "discarding the unfinished state of epoch 1" in said["epoch_end@2"]
    assert "resuming after" not in said["epoch_end@2"]  # nothing committed: from scratch
    assert "discarding the unfinished state of epoch 2" in said["weights@2"]
    assert "resuming after epoch 1 " in said["committed@2"]
    assert "resuming after epoch 2 " in said["pruned@3"]  # committed@2 had published it
    assert "resuming after epoch 3 " in said["epoch_end@4"] and "Epoch 4/10" in said["epoch_end@4"]
    assert "resuming after epoch 3 " in said["pruned@4"]  # epoch 4 trained again
    last = _train(zygote, state, result)
    assert last.returncode == 0, last.stderr[-3000:]
    assert "resuming after epoch 4 " in last.stdout and "nothing left to train" in last.stdout
    assert "Epoch " not in last.stdout  # nothing trained again

    got_weights, got_history, got_lr = _result(result)
    pd.testing.assert_frame_equal(got_history, history, check_exact=True)
    assert got_lr == lr
    assert all(np.array_equal(a, b) for a, b in zip(got_weights, weights, strict=True))
    assert [p.name for p in state.iterdir()] == ["epoch-0004"]
    live = pd.read_csv(state.parent / checkpoint.HISTORY_FILE)
    pd.testing.assert_frame_equal(live, history, check_exact=True)


def test_a_bad_failpoint_is_refused():
    assert checkpoint.parse_failpoint("weights~@3") == ("weights", 3, True, signal.SIGKILL)
    assert checkpoint.parse_failpoint("committed@1:stop").signal == signal.SIGSTOP
    assert checkpoint.parse_failpoint("") is None
    for bad in ("weight@3", "committed~@2", "state@0", "state", "state@2:pause"):
        with pytest.raises(ValueError, match="ACTIONREC_FAILPOINT"):
            checkpoint.parse_failpoint(bad)
