"""Batches for Keras from the frame and feature stores, streamed from disk.

- :class:`FrameSequence`: ``(B, T, S, S, 3)`` uint8 clips read from a frame store
  (``data/frames/<size>``) batch by batch; memory holds one batch, not the dataset.
- :class:`FeatureSequence`: ``((B, T, D) float32, (B, T) bool)`` backbone features read
  from a feature store (``data/features/<arch>``, :class:`FeatureStore`) batch by batch.
- :class:`FeatureBatches`: the same from features already in memory (benchmarks, tests).

Shuffling is deterministic: epoch ``e`` uses ``numpy.random.default_rng([seed, e])``, so
a resumed run sees the batches an uninterrupted run would. Augmentation is not done here
but inside the model's training step
(:class:`~actionrec.models.layers.ClipAugmentation`), on the accelerator.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from actionrec.data.frames import ShardStore, open_store, valid_mask


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """``(N,)`` int labels -> ``(N, C)`` float32 one-hot rows."""
    out = np.zeros((len(labels), num_classes), np.float32)
    out[np.arange(len(labels)), labels.astype(int)] = 1.0
    return out


def split_index(store: str | Path, split: str) -> pd.DataFrame:
    """Rows of ``<store>/index.csv`` for ``split``, in stored order.

    Raises:
        FileNotFoundError: the store has no ``index.csv`` (run ``extract_frames``).
    """
    index = pd.read_csv(Path(store) / "index.csv")
    return index[index["split"] == split].reset_index(drop=True)


class ClipBatches(keras.utils.PyDataset):
    """Batches of one split, in a deterministic shuffled order, optionally one process's
    share of every global batch. Subclasses load the samples (:meth:`_load`).

    Order: epoch ``e`` serves ``numpy.random.default_rng([seed, e])``'s permutation
    (``shuffle``) or the stored order; ``epoch`` is the epoch :meth:`__getitem__` serves.
    Keras advances it through :meth:`on_epoch_end`, and :class:`SyncEpoch` sets it when
    training resumes mid-way.

    Multi-device and multi-process (``shard=(index, count)``, ``devices``): batch ``i`` of
    the global order holds ``batch_size`` samples (the global batch); the last one is cut
    to a multiple of ``devices`` (the data-parallel replicas of all processes: each needs
    an equal slice), so at most ``devices - 1`` samples sit out an epoch, different ones
    each epoch when shuffled. Process ``index`` of ``count`` serves the ``index``-th of
    ``count`` equal slices of each global batch, so the processes' shares, put together
    in process order (``jax.make_array_from_process_local_data``), are the batch one
    process would have served. ``devices`` must be a multiple of ``count``.
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool = False, seed: int = 0,
                 shard: tuple[int, int] = (0, 1), devices: int = 1, **kwargs: Any):
        super().__init__(**kwargs)
        index, count = shard
        if not 0 <= index < count or devices % count or batch_size % devices:
            raise ValueError(f"shard {shard}, {devices} devices and global batch {batch_size}: "
                             "the devices must be a multiple of the processes, the batch "
                             "a multiple of the devices")
        self.n = n
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.shard = (index, count)
        usable_tail = (n % batch_size) - (n % batch_size) % devices
        self.n_used = n - n % batch_size + usable_tail
        self.epoch = 0
        self.order = self._order()

    def _order(self) -> np.ndarray:
        idx = np.arange(self.n)
        if self.shuffle:
            np.random.default_rng([self.seed, self.epoch]).shuffle(idx)
        return idx

    def __len__(self) -> int:
        return (self.n_used + self.batch_size - 1) // self.batch_size

    def selection(self, i: int) -> np.ndarray:
        """Indices (into the split's rows) of this process's share of batch ``i``."""
        start = i * self.batch_size
        size = min(self.batch_size, self.n_used - start)
        index, count = self.shard
        share = size // count
        return self.order[start + index * share:start + (index + 1) * share]

    def __getitem__(self, i: int) -> tuple[Any, np.ndarray]:
        return self._load(self.selection(i))

    def _load(self, sel: np.ndarray) -> tuple[Any, np.ndarray]:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Serve epoch ``epoch``'s order from now on."""
        if epoch != self.epoch:
            self.epoch = epoch
            self.order = self._order()

    def on_epoch_end(self) -> None:
        self.set_epoch(self.epoch + 1)


class FrameSequence(ClipBatches):
    """Clips of one split of a frame store, as Keras batches (:class:`ClipBatches`).

    Each item is ``(x, y)``: ``x`` ``(B, T, S, S, 3)`` uint8 RGB (``S`` = the store's
    requested size; its stored size when ``enlarge`` is off), ``y`` ``(B, C)`` float32
    one-hot. The last batch may be smaller.

    ``workers`` threads (Keras' ``PyDataset`` enqueuer; NumPy's file reads release the
    GIL) read up to ``max_queue_size`` batches ahead of the training step, under any
    backend. Batches stay a function of (seed, epoch, index): Keras starts the enqueuer
    of an epoch after the callbacks' ``on_epoch_begin`` (where :class:`SyncEpoch` sets
    the epoch) and stops it before :meth:`on_epoch_end`, and delivers batches in order.
    ``enlarge``: see :meth:`~actionrec.data.frames.FrameStore.read`.
    """

    def __init__(self, store: str | Path, rows: pd.DataFrame, num_classes: int,
                 batch_size: int, shuffle: bool = False, seed: int = 0, enlarge: bool = True,
                 **kwargs: Any):
        self.enlarge = enlarge
        self.store = Path(store)
        self.clips = rows["clip"].tolist()
        self.labels = rows["label"].to_numpy()
        self.num_classes = num_classes
        super().__init__(len(self.clips), batch_size, shuffle, seed, **kwargs)

    def _load(self, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        store = open_store(self.store)
        x = np.empty((len(sel), *store.clip_shape(self.enlarge)), np.uint8)
        for row, j in zip(x, sel, strict=True):
            store.read(self.clips[j], self.enlarge, out=row)
        return x, one_hot(self.labels[sel], self.num_classes)


class FeatureBatches(ClipBatches):
    """Cached features of one split as Keras batches (:class:`ClipBatches`): each item is
    ``((features (B, T, D) float32, mask (B, T) bool), y (B, C) float32)`` from in-memory
    arrays (a tuple: TensorFlow's ``PyDataset`` adapter takes no list)."""

    def __init__(self, features: np.ndarray, mask: np.ndarray, y: np.ndarray,
                 batch_size: int, shuffle: bool = False, seed: int = 0, **kwargs: Any):
        self.features, self.mask, self.y = features, mask, y
        super().__init__(len(y), batch_size, shuffle, seed, **kwargs)

    def _load(self, sel: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        return (self.features[sel], self.mask[sel]), self.y[sel]


class SyncEpoch(keras.callbacks.Callback):
    """Keeps a :class:`ClipBatches` on Keras' epoch number.

    ``fit`` resumed by the ``EpochCheckpoint`` starts at epoch ``k > 0`` while a new
    sequence starts at 0; this callback makes epoch ``k`` see the shuffle order and
    clips it would have seen without the interruption.
    """

    def __init__(self, sequence: ClipBatches):
        super().__init__()
        self.sequence = sequence

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.sequence.set_epoch(epoch)


class FeatureStore(ShardStore):
    """An architecture's feature store (``data/features/<arch>``, written by
    :func:`actionrec.features.extract_features`), read clip by clip (:class:`~actionrec.data.
    frames.ShardStore`): shards of ``(n, T, D)`` float16 features times
    ``2**meta["scale_log2"]``, zeros on padded slots. Use ``open_store(path, FeatureStore)``
    to share one instance per process."""

    what = "feature store"

    @property
    def rebuild(self) -> str:  # type: ignore[override]
        arch = self.meta.get("architecture", "<arch>")
        return f"rebuild it: `dvc repro --force extract_features@{arch}`"

    def split(self, split: str) -> pd.DataFrame:
        """The rows of ``index.csv`` for ``split``, in stored order."""
        return self.index[self.index["split"] == split].reset_index(drop=True)

    def batch(self, clips: list[str], n_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(features (B, T, D) float32, mask (B, T) bool)`` of ``clips`` (``n_valid``: their
        ``(B,)`` valid frame counts): the stored float16 values divided by
        ``2**scale_log2`` (exact: a power of two), i.e. the backbone's own output as the
        assembled model computes it.

        Raises:
            DatasetError: a clip is not in the store, or its shard is missing, truncated
                or corrupt.
        """
        t, d = self.meta["sequence_length"], self.meta["feature_dim"]
        stored = np.empty((len(clips), t, d), np.float16)
        for row, clip in zip(stored, clips, strict=True):
            self.read_stored(clip, out=row)
        feats = stored.astype(np.float32)
        if self.meta.get("scale_log2", 0):
            feats *= np.float32(2.0 ** -self.meta["scale_log2"])
        return feats, valid_mask(n_valid, t)


class FeatureSequence(ClipBatches):
    """The features of one split of a feature store as Keras batches (:class:`ClipBatches`):
    each item is ``((features (B, T, D) float32, mask (B, T) bool), y (B, C) float32)``, read
    batch by batch (:meth:`FeatureStore.batch`), so memory holds one batch of a
    Kinetics-sized split, not the split. Reading threads as :class:`FrameSequence`'s."""

    def __init__(self, store: str | Path, rows: pd.DataFrame, num_classes: int,
                 batch_size: int, shuffle: bool = False, seed: int = 0, **kwargs: Any):
        self.store = Path(store)
        self.clips = rows["clip"].tolist()
        self.n_valid = rows["n_valid"].to_numpy()
        self.labels = rows["label"].to_numpy()
        self.num_classes = num_classes
        super().__init__(len(self.clips), batch_size, shuffle, seed, **kwargs)

    def _load(self, sel: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        store = open_store(self.store, FeatureStore)
        feats = store.batch([self.clips[j] for j in sel], self.n_valid[sel])
        return feats, one_hot(self.labels[sel], self.num_classes)

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(features, mask)`` of every clip of the split (all processes' shares), in
        stored order, ``batch_size`` clips at a time (for
        :func:`~actionrec.models.heads.streamed_feature_stats`)."""
        for start in range(0, self.n, self.batch_size):
            yield self._load(np.arange(start, min(start + self.batch_size, self.n)))[0]
