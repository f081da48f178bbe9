"""Exact resume: the whole training state of each finished epoch, committed at once.

A killed training must resume as if it had never stopped, or not use the state at all.
Keras' ``BackupAndRestore`` (3.15) is not enough for that: it writes the weights, then a
metadata file, each in place, and nothing of the callbacks (a kill between the two writes
resumes the wrong epoch with the right weights), and the states the recipe's other
callbacks keep in memory (``EarlyStopping``'s wait count, best value and best weights;
``ReduceLROnPlateau``'s wait, best and cooldown) start afresh on resume, so a resumed run
can lower the learning rate or stop at another epoch than an unbroken one (the same class
of bug: PyTorch Lightning #1463 and #18727, timm #2756).

:class:`EpochCheckpoint` writes everything an epoch leaves into one folder and publishes
it with one ``rename`` (atomic on POSIX file systems; the files are ``fsync``-ed first)::

    <directory>/epoch-0003/          the state after 3 epochs: complete, or absent
        model.weights.h5             weights and optimizer (iterations, learning rate, moments)
        random.npz                   the random-number states (dropout, augmentation)
        best.npz                     EarlyStopping's best weights (a hard link when unchanged)
        state.json                   callbacks' counters, stop flag, every epoch's logs
    <directory>/.epoch-0004.partial/ being written: never read, removed on resume
    <directory>/../history.csv       the committed epochs' logs, for people and tests to watch

The data order needs no state: :class:`~actionrec.data.datasets.ClipBatches` shuffles by
(seed, epoch). A process killed at any point leaves either the previous commit (the epoch
is then trained again, and computes the same numbers) or the new one; the one line that
``on_train_begin`` prints says which epoch it resumes after and what it discarded.

Fault injection (tests): ``$ACTIONREC_FAILPOINT=<step>@<k>`` makes the process kill
itself (SIGKILL, as the kernel's OOM killer or ``kill -9`` would) at ``<step>`` of the
commit of epoch ``k`` (1-based); ``<step>~@<k>`` first cuts the file just written to half
its size, as a kill during that write leaves it; ``<step>@<k>:stop`` pauses the process
there instead (SIGSTOP; ``SIGCONT`` goes on), for a test that must act at a known point of
the training, not at a moment it picks. Steps, in order: :data:`STEPS`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
import pandas as pd

FAILPOINT_ENV = "ACTIONREC_FAILPOINT"
#: The commit's steps, in order: the epoch's logs taken (nothing written yet); each file of
#: the new state written; the state published (renamed); the older state removed and the
#: live history written.
STEPS = ("epoch_end", "weights", "random", "best", "state", "committed", "pruned")
#: The steps that write a file, and the file (a ``~`` failpoint tears it).
FILES = {"weights": "model.weights.h5", "random": "random.npz", "best": "best.npz",
         "state": "state.json"}
#: What each recipe callback keeps between epochs (Keras 3.15's attributes): restored as
#: saved, after the callback's own ``on_train_begin`` reset them.
CALLBACK_STATE = {
    "EarlyStopping": ("wait", "stopped_epoch", "best", "best_epoch"),
    "ReduceLROnPlateau": ("wait", "best", "cooldown_counter"),
}
HISTORY_FILE = "history.csv"


class Failpoint(NamedTuple):
    """Where the process ends itself (see the module's docstring)."""

    step: str  # one of STEPS
    epochs: int  # the commit of this many epochs (1-based)
    torn: bool = False  # cut the step's file to half first
    signal: int = signal.SIGKILL  # or SIGSTOP (":stop")


def parse_failpoint(value: str | None) -> Failpoint | None:
    """``"weights~@3"`` -> ``Failpoint("weights", 3, torn=True)``; ``"committed@1:stop"``
    -> a pause; ``None`` / ``""`` -> ``None``.

    Raises:
        ValueError: not ``<step>[~]@<k>[:stop]`` with a step of :data:`STEPS` (``~`` only
            on one of :data:`FILES`) and ``k >= 1``.
    """
    if not value:
        return None
    where, _, action = value.partition(":")
    step, _, k = where.partition("@")
    torn = step.endswith("~")
    step = step.removesuffix("~")
    if (step not in STEPS or (torn and step not in FILES) or not k.isdigit() or int(k) < 1
            or action not in ("", "stop")):
        raise ValueError(f"{FAILPOINT_ENV}={value!r}: expected <step>@<k>, <file step>~@<k> "
                         f"or <step>@<k>:stop, step one of {', '.join(STEPS)}; ~ with "
                         f"{', '.join(FILES)}")
    return Failpoint(step, int(k), torn, signal.SIGSTOP if action else signal.SIGKILL)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _commit_name(epochs: int) -> str:
    return f"epoch-{epochs:04d}"


def committed(directory: Path) -> list[Path]:
    """The published states in ``directory``, oldest first (``epoch-NNNN`` folders)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("epoch-[0-9]*") if p.is_dir())


def history_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Epoch logs as ``history.csv``'s table: ``epoch`` (0-based int), then the logs' keys
    in sorted order (``CSVLogger``'s layout), one row per epoch."""
    keys = sorted({k for row in rows for k in row if k != "epoch"})
    return pd.DataFrame(list(rows), columns=["epoch", *keys])


class EpochCheckpoint(keras.callbacks.Callback):
    """Commit the whole training state after every epoch; resume from the last commit.

    Put it after every callback whose state it keeps (``tracked``, e.g. the recipe's
    ``ReduceLROnPlateau`` and ``EarlyStopping``): it records what they did in the epoch.
    On resume it sets the model's weights, optimizer, random-number states, those
    callbacks' counters and best values, ``EarlyStopping``'s best weights and the epoch to
    go on from (``fit``'s ``epochs`` when the run had stopped early: nothing is trained
    again). See the module's docstring for the layout and the failpoints.

    Args:
        directory: the state folder (``models/.resume/<arch>/state``); its parent gets
            the live ``history.csv``.
        tracked: callbacks whose state is kept; of the classes in :data:`CALLBACK_STATE`.
        name: prefix of the lines it prints (``train@lrcn``).

    Raises:
        ValueError: a callback in ``tracked`` of a class it cannot keep; a malformed
            ``$ACTIONREC_FAILPOINT`` (:func:`parse_failpoint`); a saved state whose random
            states or tracked callbacks do not match the model (delete the folder).
    """

    def __init__(self, directory: Path, tracked: Sequence[keras.callbacks.Callback],
                 name: str = "train"):
        super().__init__()
        for cb in tracked:
            if type(cb).__name__ not in CALLBACK_STATE:
                raise ValueError(f"EpochCheckpoint cannot keep the state of {type(cb).__name__}"
                                 f" (it keeps {', '.join(CALLBACK_STATE)})")
        self.directory = Path(directory)
        self.tracked = list(tracked)
        self.name = name
        self.failpoint = parse_failpoint(os.environ.get(FAILPOINT_ENV))
        self.rows: list[dict[str, Any]] = []
        self._last: Path | None = None

    # ------------------------------------------------------------------ shared helpers
    def _random_states(self) -> list:
        """The model's variables that are not weights: ``SeedGenerator`` states (int,
        shape ``(2,)``) of dropout, recurrent dropout and augmentation, which
        ``save_weights`` leaves out."""
        weights = {id(w) for w in self.model.weights}
        return [v for v in self.model.variables if id(v) not in weights]

    def _early_stopping(self) -> keras.callbacks.EarlyStopping | None:
        return next((cb for cb in self.tracked
                     if isinstance(cb, keras.callbacks.EarlyStopping)
                     and cb.restore_best_weights), None)

    def _fail(self, step: str, epochs: int, partial: Path | None = None) -> None:
        """Kill (or pause) this process at ``step`` of commit ``epochs`` when the failpoint
        says so."""
        point = self.failpoint
        if point is None or (point.step, point.epochs) != (step, epochs):
            return
        if point.torn and partial is not None:
            file = partial / FILES[step]
            os.truncate(file, file.stat().st_size // 2)
        what = "killing" if point.signal == signal.SIGKILL else "pausing"
        print(f"{self.name}: failpoint {os.environ[FAILPOINT_ENV]}: {what} this process",
              flush=True)
        os.kill(os.getpid(), point.signal)

    # ------------------------------------------------------------------------- resume
    def on_train_begin(self, logs: dict | None = None) -> None:
        self.rows, self._last = [], None
        for partial in self.directory.glob(".epoch-*.partial"):
            k = int(partial.name.split("-")[1].split(".")[0])
            print(f"{self.name}: discarding the unfinished state of epoch {k} (the process "
                  "ended while writing it)", flush=True)
            shutil.rmtree(partial)
        states = committed(self.directory)
        if not states:
            return
        latest = states[-1]
        for old in states[:-1]:  # a kill after publishing `latest`, before the clean-up
            shutil.rmtree(old)
        self._restore(latest)
        self._last = latest

    def _restore(self, folder: Path) -> None:
        state = json.loads((folder / FILES["state"]).read_text())
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(str(folder / FILES["weights"]))
        states = self._random_states()
        with np.load(folder / FILES["random"]) as arrays:
            if len(arrays.files) != len(states):
                raise ValueError(f"{folder} holds {len(arrays.files)} random states, the "
                                 f"model has {len(states)}: delete {self.directory} to "
                                 "train from the start")
            for i, var in enumerate(states):
                var.assign(arrays[f"s{i}"])
        saved = state["callbacks"]
        if [c["class"] for c in saved] != [type(cb).__name__ for cb in self.tracked]:
            raise ValueError(f"{folder} holds the state of the callbacks "
                             f"{[c['class'] for c in saved]}, this training has "
                             f"{[type(cb).__name__ for cb in self.tracked]}: delete "
                             f"{self.directory} to train from the start")
        for cb, values in zip(self.tracked, saved, strict=True):
            for attr in CALLBACK_STATE[type(cb).__name__]:
                setattr(cb, attr, values[attr])
        es = self._early_stopping()
        if es is not None and (folder / FILES["best"]).exists():
            with np.load(folder / FILES["best"]) as arrays:
                es.best_weights = [arrays[f"w{i}"] for i in range(len(arrays.files))]
        self.rows = state["history"]
        epochs = state["epochs"]
        stopped = state["stop_training"]
        total = self.params.get("epochs", epochs) if self.params else epochs
        model._initial_epoch = total if stopped else epochs
        then = "it had stopped early: nothing left to train" if stopped else \
            f"going on with epoch {epochs + 1}"
        print(f"{self.name}: resuming after epoch {epochs} from {folder} ({then})", flush=True)

    # ------------------------------------------------------------------------- commit
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        k = epoch + 1
        self.rows.append({"epoch": epoch, **{key: float(value)
                                             for key, value in (logs or {}).items()}})
        self._fail("epoch_end", k)
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{_commit_name(k)}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()

        weights = partial / FILES["weights"]
        self.model.save_weights(str(weights))
        _fsync_file(weights)
        self._fail("weights", k, partial)

        arrays = {f"s{i}": keras.ops.convert_to_numpy(v)
                  for i, v in enumerate(self._random_states())}
        self._write(partial / FILES["random"], lambda fh: np.savez(fh, **arrays))
        self._fail("random", k, partial)

        es = self._early_stopping()
        if es is not None and es.best_weights is not None:
            best, previous = partial / FILES["best"], self._last and self._last / FILES["best"]
            if es.best_epoch != epoch and previous is not None and previous.exists():
                os.link(previous, best)  # unchanged: the same file, no copy
                self._fail("best", k)  # (a link is made whole or not at all: no tearing)
            else:
                self._write(best, lambda fh: np.savez(
                    fh, **{f"w{i}": w for i, w in enumerate(es.best_weights)}))
                self._fail("best", k, partial)

        state = {"epochs": k, "stop_training": bool(self.model.stop_training),
                 "callbacks": [{"class": type(cb).__name__,
                                **{a: _plain(getattr(cb, a))
                                   for a in CALLBACK_STATE[type(cb).__name__]}}
                               for cb in self.tracked],
                 "history": self.rows}
        self._write(partial / FILES["state"],
                    lambda fh: fh.write(json.dumps(state, indent=1).encode()))
        self._fail("state", k, partial)

        _fsync_dir(partial)
        final = self.directory / _commit_name(k)
        shutil.rmtree(final, ignore_errors=True)  # a stale one (never after a resume)
        os.rename(partial, final)
        _fsync_dir(self.directory)
        self._fail("committed", k)

        for old in committed(self.directory):
            if old != final:
                shutil.rmtree(old)
        self._last = final
        from actionrec.io import write_csv

        write_csv(self.directory.parent / HISTORY_FILE, history_frame(self.rows))
        self._fail("pruned", k)

    @staticmethod
    def _write(path: Path, write: Any) -> None:
        with open(path, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())

    def history(self) -> pd.DataFrame:
        """The committed epochs' logs (:func:`history_frame`), resumed ones included."""
        return history_frame(self.rows)


def _plain(value: Any) -> Any:
    """A callback attribute as JSON: NumPy scalars as Python numbers (exact: float32 and
    float64 convert to a float64 without rounding), ``inf`` as JSON's ``Infinity``."""
    if isinstance(value, np.generic):
        return value.item()
    return value
