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
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from actionrec.data.frames import read_clip, save_npy
from actionrec.errors import ConfigError
from actionrec.io import write_csv, write_json
from actionrec.models import get_architecture
from actionrec.models.heads import storage_scale_log2
from actionrec.models.settings import BackboneSettings

SPLITS = ("train", "val", "test")


def extract_features(arch_name: str, settings: BackboneSettings, frame_store: Path, out: Path,
                     progress: bool = True) -> dict:
    """Backbone features of every clip of ``frame_store`` into ``out``.

    Args:
        arch_name: a registered architecture with a backbone.
        settings: its params section (image size, weights, feature batch size).
        frame_store: ``data/frames/<image_size>``.

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
        feats = np.zeros((len(rows), t, bb.feature_dim), np.float16)
        for start in range(0, len(rows), clips_per_batch):
            chunk = rows.iloc[start:start + clips_per_batch]
            clips = np.stack([read_clip(frame_store, f, frame_meta) for f in chunk["file"]])
            flat = clips.reshape(-1, *clips.shape[2:])
            f = np.asarray(model.predict_on_batch(flat)).reshape(len(chunk), t, -1)
            valid = np.arange(t)[None, :] < chunk["n_valid"].to_numpy()[:, None]
            if scale_log2 is None:
                scale_log2 = storage_scale_log2(f[valid])
            f = np.where(valid[..., None], f * np.float32(2.0 ** scale_log2), 0)
            feats[start:start + len(chunk)] = f.astype(np.float16)
            bar.update(len(chunk))
        save_npy(out / f"{split}.npy", feats)
        write_csv(out / f"{split}.csv", rows)
    bar.close()
    meta = {"architecture": arch_name, "backbone": arch.backbone, "feature_dim": bb.feature_dim,
            "image_size": settings.image_size, "weights": settings.backbone.weights,
            "sequence_length": t, "dtype": "float16", "scale_log2": scale_log2 or 0}
    write_json(out / "meta.json", meta)
    return meta
