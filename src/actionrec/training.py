"""Compile and fit one architecture: callbacks, determinism, checkpoints, resume, MLflow.

Recipe (the five reference designs share it): categorical cross-entropy; Adam
(Kingma & Ba 2015; lr 1e-3, beta1 0.9, beta2 0.999 by default); ReduceLROnPlateau
(patience 3) and EarlyStopping (best weights restored) on the group-aware
validation split's loss (on the training loss when there is no validation split);
ModelCheckpoint of the best weights; BackupAndRestore, so that a killed run resumes
from its last finished epoch; the history as CSV.

Architectures with a frozen backbone train their head on cached features
(``data/features/<arch>``); the saved model is still the whole network on frames.
Architectures trained on frames may augment the training clips
(``models.<arch>.augment``): a :class:`~actionrec.models.layers.ClipAugmentation` layer
at the model's input, active in ``fit`` only, so the transforms run inside the compiled
training step (on the accelerator where there is one) and the saved model is unchanged
at inference.

Determinism: ``keras.utils.set_random_seed(seed)`` and TensorFlow op determinism;
two runs with the same params give the same weights and the same test metrics.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from actionrec import multihost, resume
from actionrec.config import Params
from actionrec.data.datasets import (
    ClipBatches,
    FeatureBatches,
    FrameSequence,
    SyncEpoch,
    load_features,
    one_hot,
    split_index,
)
from actionrec.data.frames import frames_dir, read_clip
from actionrec.io import write_csv, writing
from actionrec.model_meta import ModelMeta
from actionrec.models import get_architecture
from actionrec.models.heads import feature_stats
from actionrec.runtime import runtime_info

METRIC_NAMES = ("accuracy", "precision", "recall", "macro_f1")


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and the backend; make TensorFlow ops deterministic."""
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def compile_model(model: keras.Model, learning_rate: float, beta_1: float, beta_2: float,
                  num_classes: int) -> None:
    """Adam + categorical cross-entropy + accuracy / precision / recall / macro-F1."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, beta_1=beta_1,
                                        beta_2=beta_2),
        loss="categorical_crossentropy",
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy"),
            keras.metrics.Precision(name="precision"),
            keras.metrics.Recall(name="recall"),
            keras.metrics.F1Score(average="macro", name="macro_f1"),
        ],
    )


@dataclass
class Distribution:
    """How training spreads over the local devices (:func:`distribution`)."""

    replicas: int = 1  # devices of all processes
    description: str = "one device"
    strategy: Any = None  # tf.distribute.Strategy under TensorFlow, else None

    def scope(self) -> contextlib.AbstractContextManager:
        """Where the model and its optimizer must be built (TensorFlow's strategy scope)."""
        return self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()

    def close(self) -> None:
        """End JAX's global distribution once training is done: the saved model and MLflow's
        check of its input example (one clip, which cannot be split over the devices) run
        on one device."""
        if self.replicas > 1 and keras.backend.backend() == "jax":
            keras.distribution.set_distribution(None)


def distribution(setting: str) -> Distribution:
    """Data-parallel training over every local accelerator, when there are two or more.

    ``setting`` is ``train.distribute``: ``"none"`` keeps one device; ``"auto"`` uses
    Keras' distribution API under JAX (``keras.distribution.DataParallel`` over
    ``keras.distribution.list_devices()``, set globally; in a multi-host job, every
    process's devices, and each process feeds its own share of a batch:
    ``auto_shard_dataset=False``; ``"multihost"`` is ``"auto"`` once
    :func:`actionrec.multihost.initialize` has joined the job) and
    ``tf.distribute.MirroredStrategy`` under TensorFlow (over the GPUs, else over the
    logical CPU devices when a program configured several). Each replica takes an equal
    slice of the global batch; gradients are averaged across replicas (Keras docs,
    "Distributed training with Keras 3"; TensorFlow guide, "Distributed training").
    """
    if setting == "none":
        return Distribution()
    backend = keras.backend.backend()
    if backend == "jax":
        devices = keras.distribution.list_devices()
        processes = multihost.current().num_processes
        if len(devices) < 2:
            return Distribution()
        if processes > 1:
            multihost.check_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(
            devices=devices, auto_shard_dataset=processes == 1))
        where = f" in {processes} processes" if processes > 1 else ""
        return Distribution(len(devices), f"keras.distribution.DataParallel over {len(devices)} "
                                          f"{devices[0].split(':')[0]} devices{where}")
    if backend == "tensorflow":
        import tensorflow as tf

        devices = tf.config.list_logical_devices("GPU")
        if len(devices) < 2:
            devices = tf.config.list_logical_devices("CPU")
        if len(devices) < 2:
            return Distribution()
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        return Distribution(strategy.num_replicas_in_sync,
                            f"tf.distribute.MirroredStrategy over {len(devices)} "
                            f"{devices[0].device_type} devices", strategy)
    return Distribution()


@dataclass
class TrainData:
    """What ``fit`` gets: arrays (features) or :class:`FrameSequence` (frames)."""

    train: Any
    val: Any | None
    n_train: int
    n_val: int
    example_clip: np.ndarray  # (1, T, S, S, 3) uint8: the logged model's input example


def _feature_data(features: Path, frames: Path, num_classes: int) -> TrainData:
    """The feature store's splits as arrays: ``([features, mask], one-hot labels)``."""
    feats, mask, rows = load_features(features, "train")
    train = ([feats, mask], one_hot(rows["label"].to_numpy(), num_classes))
    val, n_val = None, 0
    if (features / "val.npy").exists():
        vf, vm, vrows = load_features(features, "val")
        val = ([vf, vm], one_hot(vrows["label"].to_numpy(), num_classes))
        n_val = len(vrows)
    example = read_clip(frames, rows["file"].iloc[0])[None]
    return TrainData(train, val, len(rows), n_val, example)


def build_feature_head(arch, s, num_classes: int, sequence_length: int, features: np.ndarray,
                       mask: np.ndarray) -> keras.Model:
    """The head that training fits on cached features: ``arch.build_head`` with the
    training features' statistics (:func:`~actionrec.models.heads.feature_stats`) when
    ``s.standardize``. ``features`` ``(N, T, D)`` float32, ``mask`` ``(N, T)`` bool."""
    stats = feature_stats(features, mask) if s.standardize else None
    return arch.build_head(s, num_classes, sequence_length, features.shape[-1], stats)


class RandomStateBackup(keras.callbacks.Callback):
    """Keeps the model's random-number states with each epoch's backup, and puts them back
    when ``fit`` resumes, so that a resumed run draws what an unbroken one would.

    Keras' ``BackupAndRestore`` saves weights and optimizer, not the
    ``keras.random.SeedGenerator`` states of ``Dropout``, recurrent dropout and
    :class:`~actionrec.models.layers.ClipAugmentation` (``Layer.save_own_variables`` leaves
    them out): resumed, they would start again from their first draw. Here they are the
    model's ``variables`` that are not its ``weights`` (int, shape ``(2,)``), written to
    ``<dir>/random_state.<k>.npz`` after epoch ``k - 1`` (the last two kept, as
    ``BackupAndRestore(double_checkpoint=True)`` keeps two) and read at the first epoch of a
    resumed ``fit`` (``on_epoch_begin(k)``). Put it after ``BackupAndRestore``.
    """

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = Path(directory)
        self._first_epoch = True

    def _states(self) -> list:
        weights = {id(w) for w in self.model.weights}
        return [v for v in self.model.variables if id(v) not in weights]

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._first_epoch = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        first, self._first_epoch = self._first_epoch, False
        if not first or epoch == 0:  # only a fit that resumes at epoch k > 0 restores
            return
        saved = self.directory / f"random_state.{epoch}.npz"
        states = self._states()
        if not saved.exists():
            print(f"warning: no random-number state for epoch {epoch} in {self.directory}: "
                  "dropout and augmentation draw anew (the resumed run is not bit-identical "
                  "to an unbroken one)", flush=True)
            return
        with np.load(saved) as arrays:
            if len(arrays.files) != len(states):
                raise ValueError(f"{saved} holds {len(arrays.files)} random states, the "
                                 f"model has {len(states)}: delete {self.directory} to "
                                 "train from the start")
            for i, var in enumerate(states):
                var.assign(arrays[f"s{i}"])

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from actionrec.io import atomic_open

        self.directory.mkdir(parents=True, exist_ok=True)
        arrays = {f"s{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(self._states())}
        with atomic_open(self.directory / f"random_state.{epoch + 1}.npz", "wb") as fh:
            np.savez(fh, **arrays)
        for old in self.directory.glob("random_state.*.npz"):
            if int(old.name.split(".")[1]) < epoch:
                old.unlink()


def _shared_features(data: TrainData, batch_size: int, seed: int,
                     share: dict[str, Any]) -> TrainData:
    """The feature arrays as :class:`FeatureBatches` of this process's share (``share``:
    ``shard`` and ``devices`` of :class:`ClipBatches`), shuffled by (seed, epoch)."""
    (feats, mask), y = data.train
    train = FeatureBatches(feats, mask, y, batch_size, shuffle=True, seed=seed, **share)
    val = None
    if data.val is not None:
        (vf, vm), vy = data.val
        val = FeatureBatches(vf, vm, vy, batch_size, **share)
    return TrainData(train, val, data.n_train, data.n_val, data.example_clip)


def _frame_data(frames: Path, num_classes: int, batch_size: int, seed: int, workers: int,
                enlarge: bool, share: dict[str, Any]) -> TrainData:
    """Training and validation batches read by ``workers`` threads ahead of the model
    (``train.loader_workers``); ``enlarge``: see :class:`FrameSequence`; ``share``:
    ``shard`` and ``devices`` of :class:`ClipBatches`."""
    rows = split_index(frames, "train")
    vrows = split_index(frames, "val")
    loader = {"workers": workers, "use_multiprocessing": False,  # Keras threads from 2 on
              "max_queue_size": max(2 * workers, 1), "enlarge": enlarge, **share}
    train = FrameSequence(frames, rows, num_classes, batch_size, shuffle=True, seed=seed,
                          **loader)
    val = FrameSequence(frames, vrows, num_classes, batch_size, **loader) if len(vrows) else None
    example = read_clip(frames, rows["file"].iloc[0])[None]
    return TrainData(train, val, len(rows), len(vrows), example)


def build_before_fit(model: keras.Model, batches: Any) -> None:
    """Build ``model``'s compiled loss and metrics from batch 0 of ``batches`` (a
    :class:`ClipBatches`) before ``fit``, so that ``fit`` does not draw a batch for that
    through the reading threads.

    Keras' JAX trainer (3.15) builds them from the first batch of ``fit``'s own iterator;
    the batches the ``PyDataset`` threads have read ahead by then are kept
    (``PyDatasetEnqueuer.stop`` drains them into its ready queue) and served first in the
    first epoch. Every epoch then started with the previous epoch's last batches, and a
    resumed run with batches of epoch 0's order, not of the epoch it resumed (measured:
    train@lrcn under JAX, killed and resumed, ended on other weights than an unbroken run;
    with ``loader_workers: 0`` on the same). Under TensorFlow, and for arrays, a no-op.
    """
    if (isinstance(batches, ClipBatches) and keras.backend.backend() == "jax"
            and hasattr(model, "_symbolic_build")):
        model._symbolic_build(data_batch=batches[0])


def _fit(model: keras.Model, data: TrainData, batch: int | None, epochs: int,
         recipe: list[keras.callbacks.Callback], best: Path, job: multihost.Job, name: str,
         progress: bool) -> keras.Model:
    """``fit``, then the best epoch's weights (``best``, ModelCheckpoint's file) when there
    is one; in a multi-host job, then :func:`_leave_job`. Returns the model to save: in a
    multi-host job a copy on this process's devices alone."""
    x, y = data.train if isinstance(data.train, tuple) else (data.train, None)
    build_before_fit(model, x)
    val = tuple(data.val) if isinstance(data.val, tuple) else data.val
    # ClipBatches shuffle themselves, by (seed, epoch); Keras' own shuffle of its batch
    # order draws from Python's global `random`, which a resumed run does not restore.
    model.fit(x, y, batch_size=batch, epochs=epochs, validation_data=val, callbacks=recipe,
              shuffle=not isinstance(x, ClipBatches), verbose=2 if progress else 0)
    if best.exists():
        model.load_weights(str(best))
    return _leave_job(model, job, name) if job.num_processes > 1 else model


def _leave_job(model: keras.Model, job: multihost.Job, name: str) -> keras.Model:
    """End of a multi-host fit, on every process: check that all hold the same weights,
    leave the job, and return a copy of ``model`` on this process's devices alone (the
    trained one spans every process's devices: running it would need them all)."""
    weights = model.get_weights()
    digest = multihost.agree(weights, job)
    keras.distribution.set_distribution(None)
    multihost.shutdown()
    print(f"train@{name}: {job.label}: the weights are the same in all {job.num_processes} "
          f"processes (sha256 {digest[:16]})", flush=True)
    local = keras.models.clone_model(model)
    local.set_weights(weights)
    return local


def _fit_as_peer(model: keras.Model, data: TrainData, batch: int | None, epochs: int,
                 recipe: list[keras.callbacks.Callback], best: Path, own: Path,
                 job: multihost.Job, name: str, progress: bool) -> dict[str, Any]:
    """A process other than 0 of a multi-host job: the same fit, from and into its private
    copy of the resume state ``own``; nothing logged, nothing written to the workspace."""
    model = _fit(model, data, batch, epochs, recipe, best, job, name, progress)
    epochs_trained = len(pd.read_csv(own / "history.csv").drop_duplicates("epoch"))
    multihost.discard_state(own, job)
    return {"epochs_trained": epochs_trained, "parameters": int(model.count_params())}


def _example_probs(model: Any, clip: np.ndarray, replicas: int) -> np.ndarray:
    """The model's class probabilities for the example clip (MLflow's signature and input
    example): shape (1, C) float32, from ``clip`` of shape (1, T, H, W, 3) uint8.

    On one device the model is called eagerly: ``predict`` would first trace the whole
    network for this one call (EfficientNetB7 + head, 32 px: 4.1 s against 0.9 s). A
    data-parallel model gets one clip per replica through ``predict``, which splits the
    batch across them (a replica handed no sample fails: the LSTM cell gets an empty
    batch)."""
    if replicas == 1:
        return keras.ops.convert_to_numpy(model(clip, training=False))
    return model.predict(np.repeat(clip, replicas, axis=0), verbose=0)[:1]


def train_architecture(name: str, params: Params, classes: list[str], frames_root: Path,
                       features_root: Path, out_dir: Path, work_dir: Path,
                       root: Path = Path("."), progress: bool = True,
                       manifest: Path | None = None, uri: str | None = None,
                       callbacks: list[keras.callbacks.Callback] | None = None,
                       extra_tags: dict[str, str] | None = None,
                       run_name: str | None = None) -> dict[str, Any]:
    """Train architecture ``name``; write ``out_dir/{model.keras, history.csv, meta.json,
    mlflow_run.json}`` and log the run to MLflow.

    Args:
        frames_root: ``data/frames`` (holds ``<image_size>/``).
        features_root: ``data/features`` (holds ``<name>/`` for backbone architectures).
        work_dir: resumable state (``models/.resume/<arch>``: backup, partial history, the
            MLflow run id, the run's fingerprint); resumed only by the same settings, inputs
            and code (:mod:`actionrec.resume`), emptied after a successful run. In a
            multi-host job (:mod:`actionrec.multihost`) only process 0 uses it; the
            others train from a private copy, and neither write ``out_dir`` nor log.
        root: repository root (MLflow's default store and ``dvc.lock`` live there).
        manifest: ``data/manifest.csv``, logged with the store as the run's MLflow
            datasets (:func:`actionrec.tracking.lineage.log_data_inputs`); ``None``: not
            logged.
        uri: the tracking URI, resolved once by the stage
            (:func:`actionrec.tracking.store.tracking_uri`; ``None``: resolved here).
        callbacks: more Keras callbacks, after the recipe's own (a sweep's pruning).
        extra_tags: more MLflow tags of the run (a sweep's ``mlflow.parentRunId``, trial).
        run_name: the MLflow run's name (default: the architecture).

    Returns:
        The ``meta.json`` content (classes, input contract, run id, epochs trained); on a
        process other than 0 of a multi-host job only ``epochs_trained`` and
        ``parameters``.
    """
    from actionrec.tracking import lineage, recovery, runs, store
    from actionrec.tracking.callbacks import EpochMetrics

    # store.setup, below, refuses a server that is down (check_reachable) before fit;
    # the `train` stage checks it before anything else is loaded.
    uri = uri or store.tracking_uri(params.mlflow.tracking_uri, root)
    arch = get_architecture(name)
    s = params.models.get(name)
    t, c = params.frames.sequence_length, len(classes)
    frames = frames_dir(frames_root, s.image_size)
    uses_features = s.trains_on_features
    job = multihost.current()
    if job.is_chief:
        out_dir.mkdir(parents=True, exist_ok=True)

    set_determinism(params.seed)
    spread = distribution(params.train.distribute)
    global_batch = s.batch_size * spread.replicas
    share = {"shard": (job.process_id, job.num_processes), "devices": spread.replicas}
    if spread.replicas > 1:
        print(f"train@{name}: data-parallel, {spread.description}; global batch "
              f"{global_batch} ({s.batch_size} per device)", flush=True)
    with spread.scope():
        if uses_features:
            data = _feature_data(features_root / name, frames, c)
            model = build_feature_head(arch, s, c, t, *data.train[0])
            lr, batch = s.learning_rate, global_batch
            if job.num_processes > 1:  # each process feeds its own share of a batch
                data = _shared_features(data, global_batch, params.seed, share)
                batch = None
        else:
            fine_tune = arch.backbone is not None  # the model resizes frames itself
            data = _frame_data(frames, c, global_batch, params.seed,
                               params.train.loader_workers, enlarge=not fine_tune, share=share)
            model = arch.build(s, c, t)
            lr = s.fine_tune_learning_rate if fine_tune else s.learning_rate
            batch = None
        keras.utils.set_random_seed(params.seed)
        compile_model(model, lr, s.beta_1, s.beta_2, c)

    # Resume only the run these settings, inputs and code started (actionrec.resume): the
    # model is built by now, so every module the run uses is imported.
    fp = resume.fingerprint(
        {**runs.flatten(f"models.{name}", s.model_dump(mode="json")), "seed": params.seed,
         **{f"frames.{k}": getattr(params.frames, k)
            for k in ("sequence_length", "sampling", "short_clip", "crop")},
         "train.distribute": params.train.distribute, "replicas": spread.replicas,
         "processes": job.num_processes,
         "mlflow.experiment": params.experiment_name(), "classes": classes},
        [frames, *([features_root / name] if uses_features else []),
         *([manifest] if manifest else [])])
    run_file = work_dir / "mlflow_run_id"
    run_id = None
    if job.is_chief:
        run_id = run_file.read_text().strip() if run_file.is_file() else None
        reason = resume.claim(work_dir, fp)
        if reason:
            print(f"train@{name}: not resuming the interrupted run in {work_dir} ({reason}); "
                  "training starts afresh", flush=True)
            if run_id:  # never left RUNNING: it will not be resumed
                runs.end_run(uri, run_id, "KILLED")
            run_id = None
    own = multihost.share_state(work_dir, job, name)  # the chief's state, on every process

    monitor = "val_loss" if data.val is not None else "loss"
    best = own / "best.weights.h5"
    # The epoch's record (MLflow, CSV) is written before the backup: a run killed in
    # between repeats that epoch on resume (the duplicate row is dropped at the end),
    # it never loses one.
    recipe = [
        *([EpochMetrics(uri)] if job.is_chief else []),
        keras.callbacks.CSVLogger(str(own / "history.csv"), append=True),
        keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=s.reduce_lr_factor,
                                          patience=s.reduce_lr_patience,
                                          min_lr=s.min_learning_rate),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=s.early_stopping_patience,
                                      restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(best), monitor=monitor, save_best_only=True,
                                        save_weights_only=True),
        # double_checkpoint: a kill while the backup is written falls back to the previous one.
        keras.callbacks.BackupAndRestore(str(own / "backup"), double_checkpoint=True),
        RandomStateBackup(own / "backup"),  # dropout and augmentation draws, too
    ]
    if isinstance(data.train, ClipBatches):
        recipe.append(SyncEpoch(data.train))  # a resumed run shuffles as an unbroken one
    recipe += callbacks or []

    if not job.is_chief:
        return _fit_as_peer(model, data, batch, s.epochs, recipe, best, own, job, name,
                            progress)
    store.setup(uri, params.experiment_name(), root)
    tags = {"architecture": name, "dvc_stage": f"train@{name}", "profile": params.profile,
            "git_commit": runs.git_commit(root), "design": arch.design,
            **runtime_info()}  # Keras version, backend and its version, devices
    if os.environ.get("DVC_EXP_NAME"):  # `dvc exp run`: the experiment's name in `dvc exp show`
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    tags.update(extra_tags or {})
    with runs.training_run(run_name or name, run_id, tags,
                           params.mlflow.system_metrics_interval_s) as run:
        run_file.write_text(run.info.run_id)

        data_store = features_root / name if uses_features else frames
        inputs = None if manifest is None else {
            "manifest": str(manifest), "splits": ["train", "val"] if data.n_val else ["train"],
            "store": str(data_store)}
        run_params = {
            **runs.flatten("model", s.model_dump(mode="json")),
            **runs.flatten("frames", params.frames.model_dump(mode="json")),
            "architecture": name, "seed": params.seed, "num_classes": c,
            "classes": ",".join(classes), "n_train": data.n_train, "n_val": data.n_val,
            "trains_on": "features" if uses_features else "frames",
            "data.source": params.data.source, "data.split": params.data.split,
            "profile": params.profile, "train.distribute": params.train.distribute,
            "replicas": spread.replicas, "global_batch_size": global_batch,
            **({"processes": job.num_processes} if job.num_processes > 1 else {}),
        }
        if run_id is None:
            if inputs is not None:
                lineage.log_data_inputs(manifest, inputs["splits"], data_store, root=root)
            runs.log_params(run_params)
        model = _fit(model, data, batch, s.epochs, recipe, best, job, name, progress)
        spread.close()

        with spread.scope():
            full = arch.build(s, c, t, head=model) if uses_features else model
        model_path = out_dir / "model.keras"
        tmp = out_dir / ".model.tmp.keras"
        with writing(model_path):
            full.save(tmp)
            tmp.replace(model_path)
        hist = pd.read_csv(work_dir / "history.csv")
        hist = hist.drop_duplicates("epoch", keep="last").sort_values("epoch")
        write_csv(out_dir / "history.csv", hist)
        epochs = len(hist)
        meta = ModelMeta(
            architecture=name, classes=classes, num_classes=c, sequence_length=t,
            image_size=s.image_size, sampling=params.frames.sampling,
            short_clip=params.frames.short_clip, crop=params.frames.crop,
            trained_on="features" if uses_features else "frames", epochs_trained=epochs,
            seed=params.seed, mlflow_run_id=run.info.run_id,
            mlflow_experiment=params.experiment_name(), parameters=int(full.count_params()),
        )
        meta.write(out_dir)
        probs = _example_probs(full, data.example_clip, spread.replicas)
        registered = f"{runs.MODEL_PREFIX}{name}" if params.mlflow.register_models else None
        # Everything the run needs is on disk before the final logging: with the server
        # gone, `actionrec track <out_dir>` logs it later without training again.
        recovery.write_pending(out_dir, uri=uri, experiment=params.experiment_name(),
                               run_id=run.info.run_id, arch=name, registered=registered,
                               params=run_params, tags=tags, inputs=inputs,
                               example=data.example_clip, probs=probs, classes=classes)
        resume.clear(work_dir)  # training is done; never repeat it
        recovery.finish_run(out_dir, uri, root)
    return meta.model_dump(mode="json")
