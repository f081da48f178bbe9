"""``extract_features``: run a frozen ImageNet backbone once over every stored frame.

Output, per architecture with a backbone (``data/features/<arch>/``), laid out as the frame
store (:mod:`actionrec.data.frames`) and read by
:class:`~actionrec.data.datasets.FeatureStore`::

    shards/<split>-<k>.npy  (n, T, D) float16: the pooled backbone features of the clips
                            of frame shard <split>-<k>, in index order, times
                            2**scale_log2, zeros on padded slots
    index.csv               the frame store's rows (clip, video, label, split, group,
                            n_valid...), with ``shard``, ``position`` and ``xxh3`` (the
                            XXH3-64 of the clip's features) of this store
    meta.json               architecture, backbone, image_size, weights, feature_dim,
                            sequence_length, dtype, scale_log2

Features are stored multiplied by a power of two (``scale_log2``, chosen from the first
batch of the training split before any shard is computed, so that their RMS is near 1; 0
for ImageNet weights, whose features are of order 1). Random backbones (``weights:
null``) give features of order 1e-4 (InceptionV3) to 1e-6 (EfficientNetB7), below
float16's normal range (6.1e-5), where float16 keeps only a few bits; scaled, every value
keeps float16's 11 significant bits. The scale is a power of two, so undoing it
(:class:`~actionrec.data.datasets.FeatureStore`) is exact.

**The work** is one task per frame shard (:func:`_extract_shard`), on ``frames.engine``:
``local`` runs the tasks one after the other in this process (the backbone already uses
every core), ``ray`` runs them on Ray Data actors (:func:`actionrec.parallel.ray_map`),
each of which builds the backbone once and keeps it for all its shards: on
``$RAY_ADDRESS``'s cluster, or on a Ray started here. Both write the same bytes. Each task
writes its shard into ``data/features/.partial/<arch>/`` (not a DVC output: ``dvc repro``
keeps it) and renames it when done, so a killed extraction resumes without running the
backbone over the finished shards again (a finished shard is reused only by a run of the
same frames, backbone settings, scale and code: its name carries their digest).
``$ACTIONREC_EXTRACT_FAILPOINT=<k>`` kills the process after its ``k``-th shard (tests).

The head then trains on these features for every epoch instead of running the
backbone again (benchmarks/train.py measures the speed-up).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from actionrec.data.frames import (
    clear_stale,
    code_digest,
    digest,
    finish_partial,
    open_partial,
    open_store,
    remove_work,
    unit_key,
    until_failpoint,
    valid_mask,
    work_folder,
)
from actionrec.errors import ConfigError
from actionrec.io import write_csv, write_json
from actionrec.models import get_architecture
from actionrec.models.heads import storage_scale_log2
from actionrec.models.settings import BackboneSettings
from actionrec.parallel import imap_progress

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


_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def feature_model(arch_name: str, settings: BackboneSettings):
    """The architecture's feature model (:func:`~actionrec.models.heads.
    backbone_feature_model`: ``(N, H, W, 3)`` uint8 frames -> ``(N, D)`` float32), built
    once per process and settings: a Ray actor keeps it for every shard it is given.

    Raises:
        ConfigError: the backbone's weights are unavailable.
    """
    from actionrec.models.heads import backbone_feature_model

    key = (arch_name, settings.model_dump_json())
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = backbone_feature_model(get_architecture(arch_name).backbone,
                                                  settings)
        return _MODELS[key]


def _raw_features(model, clips: np.ndarray) -> np.ndarray:
    """``(B, T, s, s, 3)`` uint8 -> ``(B, T, D)`` float32: the feature model, per frame."""
    flat = clips.reshape(-1, *clips.shape[2:])
    return np.asarray(model.predict_on_batch(flat)).reshape(*clips.shape[:2], -1)


@dataclass(frozen=True)
class _FeatureShard:
    """One feature shard to compute: the features of one frame shard's stored clips."""

    unit: str  # its name in the work folder (the shard's key and a digest)
    clips: tuple[str, ...]  # the frame store's clip keys, in index order
    n_valid: tuple[int, ...]
    arch: str
    settings: BackboneSettings
    frame_store: str
    work: str
    scale_log2: int
    readers: int  # reading threads ahead of the backbone


def _extract_shard(task: _FeatureShard, done: Callable[[int], Any] | None = None
                   ) -> tuple[str, list[dict[str, Any]]]:
    """Compute one shard into ``<work>/<unit>.partial.npy`` (memory-mapped), rename it to
    ``<unit>.npy`` and save its rows (clip, position, xxh3) as ``<unit>.json``; returns the
    unit and the rows. Clips are read as stored, ``task.readers`` batches ahead of the
    backbone; ``done(n)`` after each backbone call of ``n`` clips (a progress bar)."""
    model = feature_model(task.arch, task.settings)
    store = open_store(task.frame_store)
    t = store.meta["sequence_length"]
    per_call = max(1, task.settings.backbone.feature_batch_size // t)
    work = Path(task.work)
    partial = work / f"{task.unit}.partial.npy"
    feats = open_partial(partial, np.float16, (len(task.clips), t, model.output_shape[-1]))
    starts = range(0, len(task.clips), per_call)

    def read(k: int) -> np.ndarray:
        return np.stack([store.read(c, enlarge=False)
                         for c in task.clips[starts[k]:starts[k] + per_call]])

    scale = np.float32(2.0 ** task.scale_log2)
    for start, clips in zip(starts, _read_ahead(read, len(starts), task.readers), strict=True):
        f = _raw_features(model, clips)
        valid = valid_mask(task.n_valid[start:start + len(clips)], t)
        feats[start:start + len(clips)] = np.where(valid[..., None], f * scale, 0).astype(
            np.float16)
        if done is not None:
            done(len(clips))
    rows = [{"clip": c, "position": i, "xxh3": digest(feats[i])}
            for i, c in enumerate(task.clips)]
    del feats  # unmapped, then renamed
    finish_partial(partial)
    write_json(work / f"{task.unit}.json", rows)
    return task.unit, rows


def _code_digest() -> str:
    """sha256 of the code that decides the stored features (this module, the feature
    model, the backbones and their layers)."""
    from actionrec.models import backbones, heads, layers

    return code_digest(__file__, heads.__file__, backbones.__file__, layers.__file__)


def _weights_identity(weights: str | None) -> Any:
    """What identifies the backbone's weights: the setting, and a local file's size and
    modification time."""
    if weights in (None, "imagenet") or not Path(weights).is_file():
        return weights
    stat = Path(weights).stat()
    return [weights, stat.st_size, stat.st_mtime_ns]


def _first_scale(model, store, per_call: int, t: int) -> int:
    """``scale_log2`` from the features of the training split's first batch (the first
    split's when there is no training split) of the frame ``store``, chosen before any
    shard is computed."""
    index = store.index
    split = next((s for s in SPLITS if (index["split"] == s).any()), None)
    if split is None:
        return 0
    first = index[index["split"] == split].iloc[:per_call]
    clips = np.stack([store.read(c, enlarge=False) for c in first["clip"]])
    f = _raw_features(model, clips)
    return storage_scale_log2(f[valid_mask(first["n_valid"].to_numpy(), t)])


def extract_features(arch_name: str, settings: BackboneSettings, frame_store: Path, out: Path,
                     progress: bool = True, readers: int = 2, engine: str = "local",
                     workers: int = 0) -> dict:
    """Backbone features of every clip of ``frame_store`` into the feature store ``out``
    (see the module docstring for the layout, the engines and resuming).

    Clips are read as stored (224 px for a 600 px backbone) by ``readers`` threads, up to
    ``readers`` batches ahead of the backbone (``train.loader_workers``), and brought to
    the backbone's size inside the feature model, on the device
    (:func:`~actionrec.models.heads.backbone_feature_model`). A backbone call takes
    ``settings.backbone.feature_batch_size // T`` clips (at least one).

    Args:
        arch_name: a registered architecture with a backbone.
        settings: its params section (image size, weights, feature batch size).
        frame_store: ``data/frames/<image_size>``.
        out: ``data/features/<arch>``.
        readers: reading threads; < 2: read in the loop.
        engine: ``local`` (this process) or ``ray`` (``frames.engine``).
        workers: Ray actors (each with its own backbone) for the ``ray`` engine, as
            ``frames.workers`` (0: one per available core here; on a cluster, one per
            CPU of it); unused by ``local``.

    Returns:
        The ``meta.json`` content.

    Raises:
        ConfigError: the architecture has no backbone, or its weights are unavailable.
    """
    from actionrec.models.backbones import BACKBONES

    arch = get_architecture(arch_name)
    if arch.backbone is None:
        raise ConfigError(f"{arch_name} has no backbone; it trains on frames directly")
    bb = BACKBONES[arch.backbone]
    model = feature_model(arch_name, settings)
    store = open_store(frame_store)
    t = store.meta["sequence_length"]
    index = store.index
    per_call = max(1, settings.backbone.feature_batch_size // t)
    scale_log2 = _first_scale(model, store, per_call, t)
    fingerprint = {"arch": arch_name, "image_size": settings.image_size,
                   "backbone": settings.backbone.model_dump(),
                   "weights": _weights_identity(settings.backbone.weights),
                   "scale_log2": scale_log2, "code": _code_digest()}
    work = work_folder(out)
    units = []  # (shard, unit, its rows of the index)
    for shard, rows in index.groupby("shard", sort=False):
        key = unit_key({**fingerprint, "frames": rows[["clip", "n_valid", "xxh3"]]
                        .astype(str).values.tolist()})
        units.append((shard, f"{Path(shard).stem}-{key}", rows))
    results = _run_shards(units, arch_name, settings, frame_store, work, scale_log2, readers,
                          engine, workers, progress, f"features {arch.backbone}")
    _publish(out, units, work, index, results)
    meta = {"architecture": arch_name, "backbone": arch.backbone, "feature_dim": bb.feature_dim,
            "image_size": settings.image_size, "weights": settings.backbone.weights,
            "sequence_length": t, "dtype": "float16", "scale_log2": scale_log2}
    write_json(out / "meta.json", meta)
    return meta


def _run_shards(units: list[tuple[str, str, pd.DataFrame]], arch_name: str,
                settings: BackboneSettings, frame_store: Path, work: Path, scale_log2: int,
                readers: int, engine: str, workers: int, progress: bool,
                desc: str) -> dict[str, list[dict[str, Any]]]:
    """Every unit's shard in ``work`` (the finished ones reused); ``{unit: its rows}``."""
    clear_stale(work, {unit for _, unit, _ in units})
    results: dict[str, list[dict[str, Any]]] = {}
    pending = []
    for _, unit, rows in units:
        if (work / f"{unit}.json").exists() and (work / f"{unit}.npy").exists():
            results[unit] = json.loads((work / f"{unit}.json").read_text())
            continue
        pending.append(_FeatureShard(unit, tuple(rows["clip"]),
                                     tuple(int(n) for n in rows["n_valid"]), arch_name,
                                     settings, str(frame_store.resolve()), str(work),
                                     scale_log2, readers))
    if len(pending) < len(units):
        print(f"{desc}: resuming, {len(units) - len(pending)} of {len(units)} shards already "
              f"extracted ({work})")
    total = sum(len(p.clips) for p in pending)
    if engine == "local":  # in this process: the bar moves with every backbone call
        bar = tqdm(total=total, desc=desc, unit="clip", disable=not progress)
        built = (_extract_shard(task, bar.update) for task in pending)
    else:  # a bar that moves shard by shard, as the actors finish them
        bar = contextlib.nullcontext()
        built = imap_progress(_extract_shard, pending, workers, desc, progress=progress,
                              total=total, count=lambda r: len(r[1]), engine=engine,
                              actors=True)
    with bar:
        for unit, rows in until_failpoint(built):
            results[unit] = rows
    return results


def _publish(out: Path, units: list[tuple[str, str, pd.DataFrame]], work: Path,
             index: pd.DataFrame, results: dict[str, list[dict[str, Any]]]) -> None:
    """Move the finished shards from ``work`` into ``out/shards``, write ``index.csv`` (the
    frame store's rows with this store's shard, position and digest), empty ``work``."""
    shutil.rmtree(out / "shards", ignore_errors=True)
    placed = {}
    for shard, unit, _ in units:
        dst = out / shard
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(work / f"{unit}.npy", dst)
        placed.update({r["clip"]: (shard, r["position"], r["xxh3"]) for r in results[unit]})
    rows = index.copy()
    if len(rows):
        rows["shard"], rows["position"], rows["xxh3"] = zip(*(placed[c] for c in rows["clip"]),
                                                            strict=True)
    write_csv(out / "index.csv", rows)
    remove_work(work)
