"""Compile and fit one architecture: callbacks, determinism, checkpoints, resume, MLflow.

Recipe (the five reference designs share it): categorical cross-entropy; Adam
(Kingma & Ba 2015; lr 1e-3, beta1 0.9, beta2 0.999 by default); ReduceLROnPlateau
(patience 3) and EarlyStopping (best weights restored) on the group-aware
validation split's loss (on the training loss when there is no validation split); an
:class:`~actionrec.checkpoint.EpochCheckpoint` after every epoch, so that a killed run
resumes from its last finished epoch exactly as an unbroken run goes on (weights,
optimizer, random states, data order and the callbacks' counters); the history as CSV.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from actionrec import multihost, resume
from actionrec.checkpoint import EpochCheckpoint
from actionrec.config import Params
from actionrec.data.datasets import (
    ClipBatches,
    FeatureSequence,
    FeatureStore,
    FrameSequence,
    SyncEpoch,
    split_index,
)
from actionrec.data.frames import frames_dir, open_store, read_clip
from actionrec.io import write_csv, writing
from actionrec.model_meta import ModelMeta
from actionrec.models import get_architecture
from actionrec.models.heads import streamed_feature_stats
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
    """What ``fit`` gets: :class:`FeatureSequence` (features) or :class:`FrameSequence`
    (frames), both shuffled by (seed, epoch), so a resumed run reads what an unbroken one
    would."""

    train: ClipBatches
    val: ClipBatches | None
    n_train: int
    n_val: int
    example_clip: np.ndarray  # (1, T, S, S, 3) uint8: the logged model's input example


def _feature_data(features: Path, frames: Path, num_classes: int, batch_size: int, seed: int,
                  share: dict[str, Any]) -> TrainData:
    """The feature store's splits as :class:`FeatureSequence` batches (``share``: ``shard``
    and ``devices`` of :class:`ClipBatches`; one process: ``(0, 1)``)."""
    store = open_store(features, FeatureStore)
    rows, vrows = store.split("train"), store.split("val")
    train = FeatureSequence(features, rows, num_classes, batch_size, shuffle=True, seed=seed,
                            **share)
    val = FeatureSequence(features, vrows, num_classes, batch_size, **share) if len(vrows) \
        else None
    example = read_clip(frames, rows["clip"].iloc[0])[None]
    return TrainData(train, val, len(rows), len(vrows), example)


def build_feature_head(arch, s, num_classes: int, sequence_length: int,
                       train: FeatureSequence) -> keras.Model:
    """The head that training fits on cached features: ``arch.build_head`` with the
    training features' statistics (:func:`~actionrec.models.heads.streamed_feature_stats`
    over ``train``'s clips, read a batch at a time) when ``s.standardize``."""
    stats = streamed_feature_stats(train.chunks) if s.standardize else None
    feature_dim = open_store(train.store, FeatureStore).meta["feature_dim"]
    return arch.build_head(s, num_classes, sequence_length, feature_dim, stats)


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
    example = read_clip(frames, rows["clip"].iloc[0])[None]
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
    with ``loader_workers: 0`` on the same). Under TensorFlow a no-op.
    """
    if (isinstance(batches, ClipBatches) and keras.backend.backend() == "jax"
            and hasattr(model, "_symbolic_build")):
        model._symbolic_build(data_batch=batches[0])


def recipe(s, monitor: str, state_dir: Path, name: str, train: ClipBatches,
           uri: str | None) -> list[keras.callbacks.Callback]:
    """The callbacks of every training, in the order they must run at an epoch's end.

    ``s``: the architecture's settings (patience, factor, minimum learning rate);
    ``monitor``: ``val_loss``, or ``loss`` without a validation split; ``state_dir``: the
    :class:`~actionrec.checkpoint.EpochCheckpoint` folder; ``uri``: the MLflow tracking
    URI of the process that logs (``None``: a multi-host peer, which logs nothing).
    The epoch's MLflow record comes first (a run killed before the checkpoint repeats that
    epoch on resume, with the same numbers; it never loses one), then the learning-rate
    reduction and early stopping, then the checkpoint, which keeps what they did.
    """
    from actionrec.tracking.callbacks import EpochMetrics

    reduce_lr = keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=s.reduce_lr_factor,
                                                  patience=s.reduce_lr_patience,
                                                  min_lr=s.min_learning_rate)
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=s.early_stopping_patience,
                                         restore_best_weights=True)
    return [*([EpochMetrics(uri)] if uri is not None else []), reduce_lr, stop,
            EpochCheckpoint(state_dir, [reduce_lr, stop], f"train@{name}"),
            SyncEpoch(train)]  # a resumed run shuffles as an unbroken one


def fit_recipe(model: keras.Model, data: TrainData, epochs: int,
         callbacks: list[keras.callbacks.Callback], job: multihost.Job, name: str,
         progress: bool) -> tuple[keras.Model, pd.DataFrame]:
    """``fit`` (the best epoch's weights restored by EarlyStopping at its end); in a
    multi-host job, then :func:`_leave_job`. Returns the model to save (in a multi-host job
    a copy on this process's devices alone) and the history of every epoch, resumed ones
    included (:class:`~actionrec.checkpoint.EpochCheckpoint`'s)."""
    build_before_fit(model, data.train)
    # ClipBatches shuffle themselves, by (seed, epoch): Keras' shuffle is off.
    model.fit(data.train, epochs=epochs, validation_data=data.val, callbacks=callbacks,
              shuffle=False, verbose=2 if progress else 0)
    history = next(cb for cb in callbacks if isinstance(cb, EpochCheckpoint)).history()
    return (_leave_job(model, job, name) if job.num_processes > 1 else model), history


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


def _fit_as_peer(model: keras.Model, data: TrainData, epochs: int,
                 callbacks: list[keras.callbacks.Callback], own: Path, job: multihost.Job,
                 name: str, progress: bool) -> dict[str, Any]:
    """A process other than 0 of a multi-host job: the same fit, from and into its private
    copy of the resume state ``own``; nothing logged, nothing written to the workspace."""
    model, history = fit_recipe(model, data, epochs, callbacks, job, name, progress)
    multihost.discard_state(own, job)
    return {"epochs_trained": len(history), "parameters": int(model.count_params())}


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


@dataclass(frozen=True)
class TrainPaths:
    """Where one training reads and writes.

    Attributes:
        frames_root: ``data/frames`` (holds ``<image_size>/``).
        features_root: ``data/features`` (holds ``<name>/`` for backbone architectures).
        out_dir: ``models/<arch>``: model.keras, history.csv, meta.json, the MLflow run.
        work_dir: resumable state (``models/.resume/<arch>``: the last finished epoch's
            state (:mod:`actionrec.checkpoint`), the history so far, the MLflow run id,
            the run's fingerprint); resumed only by the same settings, inputs and code
            (:mod:`actionrec.resume`), emptied after a successful run. In a multi-host job
            (:mod:`actionrec.multihost`) only process 0 uses it; the others train from a
            private copy, and neither write ``out_dir`` nor log.
        root: repository root (MLflow's default store and ``dvc.lock`` live there).
        manifest: ``data/manifest.csv``, logged with the store as the run's MLflow
            datasets (:func:`actionrec.tracking.lineage.log_data_inputs`); ``None``: not
            logged.
    """

    frames_root: Path
    features_root: Path
    out_dir: Path
    work_dir: Path
    root: Path = Path(".")
    manifest: Path | None = None


@dataclass
class RunHooks:
    """What a caller adds to a training (a sweep's trial): Keras ``callbacks`` after the
    recipe's own (pruning), MLflow ``tags`` of the run (``mlflow.parentRunId``, the
    trial), and the run's ``name`` (default: the architecture)."""

    callbacks: list[keras.callbacks.Callback] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    name: str | None = None


@dataclass
class Prepared:
    """One architecture ready to fit (:func:`prepare`): its settings ``s``, the data, the
    compiled model, and how training spreads over the devices."""

    name: str
    arch: Any  # actionrec.models.registry.Architecture
    s: Any  # its settings (actionrec.models.settings)
    classes: list[str]
    sequence_length: int
    frames: Path  # the frame store of its image size
    store: Path  # what it trains on: the frame store, or its feature store
    spread: Distribution
    global_batch: int
    data: TrainData
    model: keras.Model

    @property
    def uses_features(self) -> bool:
        return self.s.trains_on_features

    @property
    def monitor(self) -> str:
        """What the learning-rate reduction and early stopping watch."""
        return "val_loss" if self.data.val is not None else "loss"


def prepare(name: str, params: Params, classes: list[str], paths: TrainPaths,
            job: multihost.Job) -> Prepared:
    """The recipe's first steps: seeds, the devices, the data (this process's share in a
    multi-host job), the model (the head alone where it trains on cached features),
    compiled with Adam."""
    arch, s = get_architecture(name), params.models.get(name)
    t, c = params.frames.sequence_length, len(classes)
    frames = frames_dir(paths.frames_root, s.image_size)
    set_determinism(params.seed)
    spread = distribution(params.train.distribute)
    global_batch = s.batch_size * spread.replicas
    share = {"shard": (job.process_id, job.num_processes), "devices": spread.replicas}
    if spread.replicas > 1:
        print(f"train@{name}: data-parallel, {spread.description}; global batch "
              f"{global_batch} ({s.batch_size} per device)", flush=True)
    with spread.scope():
        if s.trains_on_features:
            store = paths.features_root / name
            data = _feature_data(store, frames, c, global_batch, params.seed, share)
            model = build_feature_head(arch, s, c, t, data.train)
            lr = s.learning_rate
        else:
            store = frames
            fine_tune = arch.backbone is not None  # the model resizes frames itself
            data = _frame_data(frames, c, global_batch, params.seed,
                               params.train.loader_workers, enlarge=not fine_tune, share=share)
            model = arch.build(s, c, t)
            lr = s.fine_tune_learning_rate if fine_tune else s.learning_rate
        keras.utils.set_random_seed(params.seed)
        compile_model(model, lr, s.beta_1, s.beta_2, c)
    return Prepared(name, arch, s, classes, t, frames, store, spread, global_batch, data, model)


def run_fingerprint(p: Prepared, params: Params, job: multihost.Job,
                    manifest: Path | None) -> dict[str, Any]:
    """What identifies this training (:func:`actionrec.resume.fingerprint`): the settings
    that change its result, its inputs, and the code of every imported actionrec module
    (call it once the model is built: by then the run has imported all it uses)."""
    from actionrec.tracking import runs

    return resume.fingerprint(
        {**runs.flatten(f"models.{p.name}", p.s.model_dump(mode="json")), "seed": params.seed,
         **{f"frames.{k}": v for k, v in params.frames.clip_settings().items()},
         "train.distribute": params.train.distribute, "replicas": p.spread.replicas,
         "processes": job.num_processes,
         "mlflow.experiment": params.experiment_name(), "classes": p.classes},
        [p.frames, *([p.store] if p.uses_features else []), *([manifest] if manifest else [])])


def claim_state(work_dir: Path, fp: dict[str, Any], job: multihost.Job, name: str,
                uri: str) -> tuple[str | None, Path]:
    """Resume: on process 0, keep ``work_dir`` when it holds this same run's state (and
    return the MLflow run it was logging to), else empty it, say why, and end its MLflow
    run as KILLED; then give every process the state (:func:`multihost.share_state`).
    Returns (the MLflow run id to resume, or ``None``; this process's state folder)."""
    run_file = work_dir / "mlflow_run_id"
    run_id = None
    if job.is_chief:
        run_id = run_file.read_text().strip() if run_file.is_file() else None
        reason = resume.claim(work_dir, fp)
        if reason:
            print(f"train@{name}: not resuming the interrupted run in {work_dir} ({reason}); "
                  "training starts afresh", flush=True)
            if run_id:  # never left RUNNING: it will not be resumed
                from actionrec.tracking import runs

                runs.end_run(uri, run_id, "KILLED")
            run_id = None
    return run_id, multihost.share_state(work_dir, job, name)


def run_tags(p: Prepared, params: Params, root: Path, hooks: RunHooks) -> dict[str, str]:
    """The MLflow run's tags: architecture, DVC stage and experiment, profile, git commit,
    the design line, the Keras backend and devices, and the caller's (``hooks.tags``)."""
    from actionrec.tracking import runs

    tags = {"architecture": p.name, "dvc_stage": f"train@{p.name}", "profile": params.profile,
            "git_commit": runs.git_commit(root), "design": p.arch.design,
            **runtime_info()}  # Keras version, backend and its version, devices
    if os.environ.get("DVC_EXP_NAME"):  # `dvc exp run`: the experiment's name in `dvc exp show`
        tags["dvc_experiment"] = os.environ["DVC_EXP_NAME"]
    return {**tags, **hooks.tags}


def run_params(p: Prepared, params: Params, job: multihost.Job) -> dict[str, Any]:
    """The MLflow run's params: the architecture's settings and ``frames.*`` flattened, and
    what the run was (classes, split sizes, data source, devices, global batch)."""
    from actionrec.tracking import runs

    return {
        **runs.flatten("model", p.s.model_dump(mode="json")),
        **runs.flatten("frames", params.frames.clip_settings()),
        "architecture": p.name, "seed": params.seed, "num_classes": len(p.classes),
        "classes": ",".join(p.classes), "n_train": p.data.n_train, "n_val": p.data.n_val,
        "trains_on": "features" if p.uses_features else "frames",
        "data.source": params.data.source, "data.split": params.data.split,
        "profile": params.profile, "train.distribute": params.train.distribute,
        "replicas": p.spread.replicas, "global_batch_size": p.global_batch,
        **({"processes": job.num_processes} if job.num_processes > 1 else {}),
    }


def save_outputs(p: Prepared, params: Params, model: keras.Model, history: pd.DataFrame,
                 out_dir: Path, run_id: str) -> tuple[keras.Model, ModelMeta]:
    """Write ``out_dir/{model.keras, history.csv, meta.json}``, each atomically; the saved
    model is the whole network on uint8 frames (backbone + the trained head where it
    trained on features). Returns it and its :class:`ModelMeta`."""
    with p.spread.scope():
        full = p.arch.build(p.s, len(p.classes), p.sequence_length, head=model) \
            if p.uses_features else model
    model_path, tmp = out_dir / "model.keras", out_dir / ".model.tmp.keras"
    with writing(model_path):
        full.save(tmp)
        tmp.replace(model_path)
    write_csv(out_dir / "history.csv", history)
    meta = ModelMeta(
        architecture=p.name, classes=p.classes, num_classes=len(p.classes),
        sequence_length=p.sequence_length, image_size=p.s.image_size,
        sampling=params.frames.sampling, short_clip=params.frames.short_clip,
        crop=params.frames.crop, trained_on="features" if p.uses_features else "frames",
        epochs_trained=len(history), seed=params.seed, mlflow_run_id=run_id,
        mlflow_experiment=params.experiment_name(), parameters=int(full.count_params()))
    meta.write(out_dir)
    return full, meta


def train_architecture(name: str, params: Params, classes: list[str], paths: TrainPaths,
                       progress: bool = True, uri: str | None = None,
                       hooks: RunHooks | None = None) -> dict[str, Any]:
    """Train architecture ``name`` as the keras-io recipe does — data, model, callbacks,
    fit, save — and log it to MLflow; write ``paths.out_dir/{model.keras, history.csv,
    meta.json, mlflow_run.json}``. Resume (:func:`claim_state`), multi-host
    (:func:`_fit_as_peer`, :func:`fit_recipe`) and MLflow (:func:`run_tags`,
    :func:`run_params`, :mod:`actionrec.tracking`) each live in their own function.

    Args:
        classes: the class names, in label order.
        uri: the tracking URI, resolved once by the stage
            (:func:`actionrec.tracking.store.tracking_uri`; ``None``: resolved here).
        hooks: what a caller adds (a sweep's pruning callback, tags, run name).

    Returns:
        The ``meta.json`` content (classes, input contract, run id, epochs trained); on a
        process other than 0 of a multi-host job only ``epochs_trained`` and
        ``parameters``.
    """
    from actionrec.tracking import lineage, recovery, runs, store

    # store.setup, below, refuses a server that is down (check_reachable) before fit;
    # the `train` stage checks it before anything else is loaded.
    uri = uri or store.tracking_uri(params.mlflow.tracking_uri, paths.root)
    hooks = hooks or RunHooks()
    job = multihost.current()
    if job.is_chief:
        paths.out_dir.mkdir(parents=True, exist_ok=True)

    p = prepare(name, params, classes, paths, job)  # data, model
    run_id, state = claim_state(paths.work_dir, run_fingerprint(p, params, job, paths.manifest),
                                job, name, uri)  # resume only the run these settings started
    callbacks = [*recipe(p.s, p.monitor, state / "state", name, p.data.train,
                         uri if job.is_chief else None), *hooks.callbacks]
    if not job.is_chief:
        return _fit_as_peer(p.model, p.data, p.s.epochs, callbacks, state, job, name, progress)

    store.setup(uri, params.experiment_name(), paths.root)
    tags, logged = run_tags(p, params, paths.root, hooks), run_params(p, params, job)
    splits = ["train", "val"] if p.data.n_val else ["train"]
    inputs = None if paths.manifest is None else {
        "manifest": str(paths.manifest), "splits": splits, "store": str(p.store)}
    with runs.training_run(hooks.name or name, run_id, tags,
                           params.mlflow.system_metrics_interval_s) as run:
        (paths.work_dir / "mlflow_run_id").write_text(run.info.run_id)
        if run_id is None:  # a new run: its datasets and params (a resumed one has them)
            if inputs is not None:
                lineage.log_data_inputs(paths.manifest, splits, p.store, root=paths.root)
            runs.log_params(logged)
        model, history = fit_recipe(p.model, p.data, p.s.epochs, callbacks, job, name,
                                    progress)
        p.spread.close()
        full, meta = save_outputs(p, params, model, history, paths.out_dir, run.info.run_id)
        probs = _example_probs(full, p.data.example_clip, p.spread.replicas)
        registered = f"{runs.MODEL_PREFIX}{name}" if params.mlflow.register_models else None
        # Everything the run needs is on disk before the final logging: with the server
        # gone, `actionrec track <out_dir>` logs it later without training again.
        recovery.write_pending(paths.out_dir, uri=uri, experiment=params.experiment_name(),
                               run_id=run.info.run_id, arch=name, registered=registered,
                               params=logged, tags=tags, inputs=inputs,
                               example=p.data.example_clip, probs=probs, classes=classes)
        resume.clear(paths.work_dir)  # training is done; never repeat it
        recovery.finish_run(paths.out_dir, uri, paths.root)
    return meta.model_dump(mode="json")
