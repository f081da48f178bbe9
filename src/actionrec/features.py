"""``extract_features``: run a frozen ImageNet backbone once over every stored frame.

Output, per architecture with a backbone (``data/features/<arch>/``)::

    <split>.npy   (N, T, D) float16 — pooled backbone features times 2**scale_log2,
                  zeros on padded slots
    <split>.csv   the frame-store index rows, same order (file, video, label, n_valid...)
    meta.json     backbone, image_size, weights, feature_dim, sequence_length, scale_log2

Features are stored multiplied by a power of two (``scale_log2``, chosen from the first
training batch so that their RMS is near 1; 0 for ImageNet weights, whose features are
of order 1). Random backbones (``weights: null``) give features of order 1e-4
(InceptionV3) to 1e-6 (EfficientNetB7), below float16's normal range (6.1e-5), where
float16 keeps only a few bits; scaled, every value keeps float16's 11 significant
bits. The scale is a power of two, so undoing it (:func:`~actionrec.data.datasets.
load_features`) is exact.

The head then trains on these features for every epoch instead of running the
backbone again (benchmarks/train.py measures the speed-up).
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from actionrec.data.frames import read_clip
from actionrec.errors import ConfigError
from actionrec.io import write_csv, write_json, writing
from actionrec.models import get_architecture
from actionrec.models.heads import storage_scale_log2
from actionrec.models.settings import BackboneSettings

SPLITS = ("train", "val", "test")


def _read_ahead(read: Callable[[int], np.ndarray], n: int, workers: int) -> Iterator[np.ndarray]:
    """``read(0), read(1), ... read(n - 1)`` in order, with up to ``workers`` of them being
    read by threads while the caller works on the current one (``workers`` < 2: in the
    caller's thread, one at a time)."""
    if workers < 2:
        yield from (read(i) for i in range(n))
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="read-clips") as pool:
        pending = deque(pool.submit(read, i) for i in range(min(workers, n)))
        for i in range(n):
            chunk = pending.popleft().result()
            if i + workers < n:
                pending.append(pool.submit(read, i + workers))
            yield chunk


def extract_features(arch_name: str, settings: BackboneSettings, frame_store: Path, out: Path,
                     progress: bool = True, workers: int = 2) -> dict:
    """Backbone features of every clip of ``frame_store`` into ``out``.

    Clips are read as stored (224 px for a 600 px backbone) by ``workers`` threads, up to
    ``workers`` chunks ahead of the backbone (``train.loader_workers``), and brought to the
    backbone's size inside the feature model, on the device
    (:func:`~actionrec.models.heads.backbone_feature_model`).

    Args:
        arch_name: a registered architecture with a backbone.
        settings: its params section (image size, weights, feature batch size).
        frame_store: ``data/frames/<image_size>``.
        workers: reading threads; < 2: read in the loop.

    Returns:
        The ``meta.json`` content.

    Raises:
        ConfigError: the architecture has no backbone, or its weights are unavailable.
    """
    from actionrec.models.backbones import BACKBONES
    from actionrec.models.heads import backbone_feature_model

    arch = get_architecture(arch_name)
    if arch.backbone is None:
        raise ConfigError(f"{arch_name} has no backbone; it trains on frames directly")
    bb = BACKBONES[arch.backbone]
    model = backbone_feature_model(arch.backbone, settings)
    frame_meta = json.loads((frame_store / "meta.json").read_text())
    index = pd.read_csv(frame_store / "index.csv")
    t = frame_meta["sequence_length"]
    clips_per_batch = max(1, settings.backbone.feature_batch_size // t)
    out.mkdir(parents=True, exist_ok=True)
    scale_log2: int | None = None
    bar = tqdm(total=len(index), desc=f"features {arch.backbone}", unit="clip",
               disable=not progress)
    for split in SPLITS:
        rows = index[index["split"] == split].reset_index(drop=True)
        if rows.empty:
            continue
        # written in place, memory-mapped: a Kinetics-sized split (650k x 20 x 2560
        # float16, 67 GB) never sits in memory; renamed into place when complete
        partial = out / f".{split}.npy.partial"
        with writing(partial):
            feats = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float16,
                                              shape=(len(rows), t, bb.feature_dim))
        starts = range(0, len(rows), clips_per_batch)

        def read(k: int, rows=rows, starts=starts) -> np.ndarray:
            clips = rows["clip"].iloc[starts[k]:starts[k] + clips_per_batch]
            return np.stack([read_clip(frame_store, c, enlarge=False) for c in clips])

        for start, clips in zip(starts, _read_ahead(read, len(starts), workers), strict=True):
            chunk = rows.iloc[start:start + clips_per_batch]
            flat = clips.reshape(-1, *clips.shape[2:])
            f = np.asarray(model.predict_on_batch(flat)).reshape(len(chunk), t, -1)
            valid = np.arange(t)[None, :] < chunk["n_valid"].to_numpy()[:, None]
            if scale_log2 is None:
                scale_log2 = storage_scale_log2(f[valid])
            f = np.where(valid[..., None], f * np.float32(2.0 ** scale_log2), 0)
            feats[start:start + len(chunk)] = f.astype(np.float16)
            bar.update(len(chunk))
        del feats  # unmapped (no msync: as save_npy, the page cache holds it)
        with writing(out / f"{split}.npy"):
            os.replace(partial, out / f"{split}.npy")
        write_csv(out / f"{split}.csv", rows)
    bar.close()
    meta = {"architecture": arch_name, "backbone": arch.backbone, "feature_dim": bb.feature_dim,
            "image_size": settings.image_size, "weights": settings.backbone.weights,
            "sequence_length": t, "dtype": "float16", "scale_log2": scale_log2 or 0}
    write_json(out / "meta.json", meta)
    return meta
