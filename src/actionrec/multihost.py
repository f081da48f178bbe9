"""One model trained on the devices of several hosts (``train.distribute: multihost``).

Keras 3's multi-host path is its distribution API on the JAX backend (Keras docs,
"Distributed training with Keras 3"; ``tf.distribute.MultiWorkerMirroredStrategy`` is not
supported by Keras 3). Every host runs the same ``train@<arch>`` command, one process per
host; :func:`initialize` joins them into one JAX job (``jax.distributed.initialize``), and
the model is data-parallel (``keras.distribution.DataParallel``) over every process's
devices. Each process reads only its share of every global batch
(:class:`~actionrec.data.datasets.ClipBatches`' ``shard``); Keras assembles the global
batch from the shares (``jax.make_array_from_process_local_data``).

Process 0, the *chief*, is the only one that writes: the MLflow run, ``models/<arch>``, the
resume state in ``models/.resume/<arch>``. The others keep their copy of that state in a
private temporary folder, made from the chief's at the start (:func:`share_state`), so a
resumed job starts every process from the chief's last finished epoch. At the end every
process checks that all of them hold the same weights (:func:`agree`).

Where the job comes from (the first that is set):

- ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator's ``host:port``, or every process's,
  comma-separated: the first is the coordinator), ``KERAS_DISTRIBUTION_NUM_PROCESSES``,
  ``KERAS_DISTRIBUTION_PROCESS_ID``: the variables ``keras.distribution.initialize`` reads;
- else JAX's own cluster detection (Slurm ``srun``, Open MPI ``mpirun``).

A process that dies ends the others: the next collective operation of a survivor fails at
once when the peer's connection drops (gloo on CPU, NCCL on GPU), and JAX's coordination
service declares a silent peer dead after ``train.peer_timeout_s`` of missed heartbeats.
The survivors then print :func:`lost_peer_message` and exit with status 1 (:func:`abort`),
without JAX's shutdown barrier, which would wait for the dead peer.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from actionrec.errors import ActionrecError, ConfigError

JOB_VARIABLES = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                 "KERAS_DISTRIBUTION_PROCESS_ID")

#: Substrings of the errors a collective operation raises when a peer has gone.
_PEER_LOST = ("Gloo", "gloo", "NCCL", "Connection reset", "Connection refused", "UNAVAILABLE",
              "DEADLINE_EXCEEDED", "heartbeat", "coordination service")


class JobError(ActionrecError):
    """The processes of a multi-host job could not form, or one of them was lost."""


@dataclass(frozen=True)
class Job:
    """This process's place in the job: ``process_id`` in ``[0, num_processes)``."""

    process_id: int = 0
    num_processes: int = 1

    @property
    def is_chief(self) -> bool:
        """Process 0: the one that talks to MLflow and writes the workspace."""
        return self.process_id == 0

    @property
    def label(self) -> str:
        """``"process 1 of 2"``."""
        return f"process {self.process_id} of {self.num_processes}"


#: A job of one process: what every stage but a multi-host ``train`` runs as.
SINGLE = Job()
_current = SINGLE


def current() -> Job:
    """The job :func:`initialize` joined; :data:`SINGLE` when it was not called."""
    return _current


def _int_variable(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None


def initialize(timeout_s: int, stage: str = "train") -> Job:
    """Join this process to the multi-host job; returns its :class:`Job`.

    Must run before anything uses the JAX backend (listing devices included). On CPU the
    collective operations go through gloo (``jax_cpu_collectives_implementation``), which
    runs between processes on one machine or several.

    Args:
        timeout_s: how long to wait for every process to join
            (``initialization_timeout``), and after how many seconds without heartbeats
            a process counts as dead (``heartbeat_timeout_seconds``) (``train.peer_timeout_s``).
        stage: the name the progress line starts with (``train@lrcn``).

    Raises:
        ConfigError: the backend is not JAX, or the job is not described (see the module
            docstring), or a variable is not a number.
        JobError: the processes did not all join within ``timeout_s``.
    """
    global _current
    import keras

    if keras.backend.backend() != "jax":
        raise ConfigError(
            "train.distribute: multihost needs Keras' JAX backend, and this process runs "
            f"{keras.backend.backend()!r}: set KERAS_BACKEND=jax for every process of the job "
            "(or train.distribute: auto for the devices of one host)")
    addresses = os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") or None
    count = _int_variable("KERAS_DISTRIBUTION_NUM_PROCESSES")
    index = _int_variable("KERAS_DISTRIBUTION_PROCESS_ID")
    coordinator = addresses.split(",")[0].strip() if addresses else None
    if addresses and count is not None and "," in addresses and \
            len(addresses.split(",")) != count:
        raise ConfigError(f"KERAS_DISTRIBUTION_JOB_ADDRESSES names {len(addresses.split(','))} "
                          f"processes, KERAS_DISTRIBUTION_NUM_PROCESSES says {count}")
    if count is not None and index is not None and not 0 <= index < count:
        raise ConfigError(f"KERAS_DISTRIBUTION_PROCESS_ID={index} is outside 0..{count - 1}")
    print(f"{stage}: joining the multi-host job as process {'?' if index is None else index} of "
          f"{'?' if count is None else count} (coordinator "
          f"{coordinator or 'from the cluster environment'}); waiting up to {timeout_s} s "
          "for every process (train.peer_timeout_s)", file=sys.stderr, flush=True)
    if coordinator and index:  # not the coordinator: it must be up first
        _wait_for_coordinator(coordinator, timeout_s)
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator, num_processes=count, process_id=index,
            initialization_timeout=timeout_s, heartbeat_timeout_seconds=timeout_s,
            shutdown_timeout_seconds=timeout_s)
    except ValueError as exc:  # nothing set and no cluster detected
        raise ConfigError(
            f"train.distribute: multihost, but the job is not described ({exc}). Set "
            f"{', '.join(JOB_VARIABLES)} for every process (the coordinator's host:port, "
            "the number of processes, this one's index from 0), or start the processes "
            "with Slurm's srun or Open MPI's mpirun") from None
    except Exception as exc:  # XlaRuntimeError: the peers did not come
        raise JobError(
            f"the {count or ''} processes of the job did not all join within {timeout_s} s "
            f"({str(exc).splitlines()[0]}): start the same command on every host with the "
            f"same coordinator address ({coordinator}), or raise train.peer_timeout_s") \
            from None
    _current = Job(jax.process_index(), jax.process_count())
    return _current


def check_devices() -> None:
    """Refuse a job whose processes have different numbers of devices: each process feeds
    an equal share of every batch (:class:`~actionrec.data.datasets.ClipBatches`), so
    each must hold an equal part of the data-parallel replicas.

    Raises:
        JobError: the device count of each process, when they differ.
    """
    import collections

    import jax

    per_process = collections.Counter(d.process_index for d in jax.devices())
    if len(set(per_process.values())) > 1:
        raise JobError("every process of a multi-host job needs the same number of devices; "
                       "devices per process: " + ", ".join(
                           f"{k}: {n}" for k, n in sorted(per_process.items())) +
                       " (set CUDA_VISIBLE_DEVICES alike on every host)")


def _wait_for_coordinator(address: str, timeout_s: float) -> None:
    """Wait until ``address`` (``host:port``) accepts a TCP connection: JAX's own wait
    for an absent coordinator ends the process with SIGABRT and a native log instead of
    an error that names the address.

    Raises:
        JobError: nothing accepted a connection within ``timeout_s``.
    """
    import socket
    import time

    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"KERAS_DISTRIBUTION_JOB_ADDRESSES: {address!r} is not host:port")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=2):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise JobError(
                    f"the job's coordinator {address} did not answer within {timeout_s} s "
                    f"({exc.strerror or exc}): start process 0 (the same command with "
                    "KERAS_DISTRIBUTION_PROCESS_ID=0) on that host, check the address and "
                    "that the port is open to this host, or raise train.peer_timeout_s") \
                    from None
            time.sleep(0.5)


def shutdown() -> None:
    """Leave the job (JAX's shutdown barrier: waits for every process to get here); this
    process goes on alone. A no-op outside a multi-host job."""
    global _current
    if _current.num_processes > 1:
        import jax

        jax.distributed.shutdown()
    _current = SINGLE


def _pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=path.relative_to(folder).as_posix())
    return buffer.getvalue()


def share_state(work_dir: Path, job: Job, name: str) -> Path:
    """Give every process the chief's resume state; returns this process's copy.

    The chief's ``work_dir`` (``models/.resume/<arch>``: the last committed epoch's
    state, :mod:`actionrec.checkpoint`) is sent to every process
    (``jax.experimental.multihost_utils.broadcast_one_to_all``, as uint8 bytes of a tar
    archive), which unpacks it into its private folder (:func:`private_state_dir`) and
    trains with that as its resume state; the chief keeps ``work_dir``. Call it on every
    process at once.
    Outside a multi-host job it returns ``work_dir``.
    """
    if job.num_processes == 1:
        return work_dir
    import numpy as np
    from jax.experimental import multihost_utils

    blob = np.frombuffer(_pack(work_dir), np.uint8) if job.is_chief else np.zeros(0, np.uint8)
    size = int(multihost_utils.broadcast_one_to_all(np.int32(blob.size)))
    if not job.is_chief:
        blob = np.zeros(size, np.uint8)
    blob = np.asarray(multihost_utils.broadcast_one_to_all(blob), np.uint8)
    if job.is_chief:
        return work_dir
    own = private_state_dir(work_dir, job, name)
    shutil.rmtree(own, ignore_errors=True)  # a killed process's copy: superseded
    own.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(blob.tobytes()), mode="r") as tar:
        tar.extractall(own, filter="data")
    return own


def private_state_dir(work_dir: Path, job: Job, name: str) -> Path:
    """Where a process other than 0 keeps its copy of the resume state: a folder of the
    system's temporary directory named by architecture, process and ``work_dir``'s
    absolute path (``actionrec-<arch>-process<k>-<8 hex digits>``), so a rerun after a
    kill replaces the copy the killed process left."""
    import hashlib

    key = hashlib.sha256(str(Path(work_dir).resolve()).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / f"actionrec-{name}-process{job.process_id}-{key}"


def discard_state(work_dir: Path, job: Job) -> None:
    """Remove a non-chief process's private copy of the state (:func:`share_state`)."""
    if not job.is_chief:
        shutil.rmtree(work_dir, ignore_errors=True)


def weights_digest(weights: list) -> str:
    """SHA-256 over the bytes of every array of ``weights`` (``model.get_weights()``)."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for w in weights:
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()


def agree(weights: list, job: Job) -> str:
    """Check that every process of the job holds the same ``weights``; returns their
    :func:`weights_digest`. Data-parallel training keeps the replicas identical; a
    difference means a process did not apply the same updates. Call it on every process
    at once (``multihost_utils.process_allgather`` of the digests).

    Raises:
        JobError: the processes' weights differ (their digests are named).
    """
    digest = weights_digest(weights)
    if job.num_processes == 1:
        return digest
    import numpy as np
    from jax.experimental import multihost_utils

    mine = np.frombuffer(bytes.fromhex(digest), np.uint8)
    every = np.asarray(multihost_utils.process_allgather(mine)).reshape(job.num_processes, -1)
    digests = [bytes(row.astype(np.uint8)).hex() for row in every]
    if len(set(digests)) > 1:
        raise JobError("the processes ended on different weights: "
                       + ", ".join(f"process {i} {d[:12]}" for i, d in enumerate(digests)))
    return digest


def is_peer_loss(exc: BaseException) -> bool:
    """Whether ``exc`` is what a collective operation raises when a peer has gone."""
    return any(s in str(exc) for s in _PEER_LOST)


def lost_peer_message(stage: str, job: Job, exc: BaseException, work_dir: str) -> str:
    """The one-line error a surviving process prints (see :func:`abort`)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    cause = ("another process of the job failed or was lost" if is_peer_loss(exc)
             else f"{type(exc).__name__}")
    return (f"{stage}: {job.label} stopped: {cause} ({first[:300]}). Rerun the same command "
            f"on every host: training resumes from the last finished epoch ({work_dir} on "
            "process 0's host)")


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` to stderr and end the process at once with ``code``, without JAX's
    shutdown barrier (it would wait ``train.peer_timeout_s`` for a dead peer, then abort
    the process with SIGABRT) and without the other ``atexit`` handlers."""
    from actionrec import native_logs

    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    native_logs.drain()  # what the stderr filter holds, too
    os._exit(code)
