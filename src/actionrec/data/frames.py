"""The frame store: every clip decoded once into fixed-length uint8 sequences.

Layout written by :func:`extract_frames` (one tree per image size that the
configured architectures need)::

    <out>/<size>/<split>/<Class>/<video>.npy   (T, s, s, 3) uint8 RGB, s = stored size
    <out>/<size>/index.csv                     one row per stored clip

    <out>/<size>/meta.json                     requested and stored size, T, sampling

``index.csv`` columns: ``file`` (relative to ``<out>/<size>``), ``video``,
``class_name``, ``label``, ``split``, ``group``, ``n_frames`` (decoded frames in the
video) and ``n_valid`` (slots of the sequence that hold a frame; the mask is
``arange(T) < n_valid``). Each ``.npy`` can be memory-mapped (``np.load(...,
mmap_mode="r")``), so training streams clips without holding the dataset in memory.

Pixels are never stored upsampled. A size larger than the videos' native crop
(EfficientNetB7's 600 px against UCF101's 240 px) shares the frames of another tree: its
``meta.json`` names that tree (``files_in``: the largest requested size that fits the
native crop, e.g. 224; else the size's own tree, stored at the native side), its
``.npy`` files are hard links to that tree's (the same bytes: no extra disk, and DVC's
cache keeps them once), and :func:`read_clip` enlarges on read. Storing upsampled frames
would write 6x the bytes for no information and make the stage I/O bound (3-4x a bare
decode instead of ~1.1x; see docs/benchmarks.md).

The views store (``data/views``, :func:`extract_views`) has the same layout for the test
clips' other temporal views: ``test/<Class>/<video>.v<k>.npy`` for view ``k`` of
``evaluate.views`` (view 0 is the frame store's sequence), a ``view`` column in its
``index.csv`` and ``views`` in its ``meta.json``.

Every ``<out>/<size>`` folder is thus complete on its own: a stage that reads one size
depends on that folder alone (``data/frames/${item.image_size}`` in ``dvc.yaml``), and
a change to another size leaves it bit-identical, so the stages that read it stay cached.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from actionrec.config import FrameSettings
from actionrec.data.video import VideoDecodeError, crop_resize, read_frames, view_indices
from actionrec.errors import DatasetError
from actionrec.io import atomic_open, write_csv, write_json
from actionrec.parallel import imap_progress

INDEX_COLUMNS = ["file", "video", "class_name", "label", "split", "group", "n_frames", "n_valid"]


def frames_dir(frames_root: str | Path, size: int) -> Path:
    """The folder of one image size in the frame store: ``<frames_root>/<size>``.

    Args:
        frames_root: the stage output ``data/frames``.
        size: the square image size in pixels (an architecture's ``image_size``).
    """
    return Path(frames_root) / str(int(size))


def link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` a hard link to ``src`` (a copy where the file system has none),
    atomically: a temporary sibling, then a rename over any old ``dst``."""
    import os
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


#: NumPy parses a ``.npy`` header with ``ast.literal_eval``, i.e. ``compile()``; under
#: CPython 3.11 two threads compiling at once can fail with "SystemError: AST constructor
#: recursion depth mismatch" (seen here: Keras' PyDataset reader threads, data-parallel
#: training). The header is parsed under this lock; the data is read outside it.
_HEADER_LOCK = threading.Lock()


def load_npy(path: str | Path) -> np.ndarray:
    """Read a ``.npy`` file written by :func:`save_npy` (no pickles), safe in threads.

    Returns:
        The array, e.g. ``(T, s, s, 3)`` uint8 for a stored clip.
    """
    with open(path, "rb") as fh:
        with _HEADER_LOCK:
            major, _ = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if major == 1
                           else np.lib.format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(fh)
        count = int(np.prod(shape, dtype=np.int64))
        data = np.fromfile(fh, dtype=dtype, count=count)
    return data.reshape(shape, order="F" if fortran_order else "C")


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` to a temporary sibling, then rename (atomic; no fsync, see atomic_open)."""
    with atomic_open(path, "wb", fsync=False) as fh:
        np.save(fh, array, allow_pickle=False)


def read_clip(store: str | Path, file: str, meta: dict[str, Any] | None = None,
              enlarge: bool = True) -> np.ndarray:
    """One stored sequence, at its requested size or as stored.

    Args:
        store: ``<out>/<size>`` (holds ``meta.json`` and ``index.csv``).
        file: the ``file`` column of ``index.csv``.
        meta: ``meta.json``'s content, if already read (saves a file read per clip).
        enlarge: bring frames stored smaller than the requested size up to it, on the
            host (OpenCV ``INTER_LINEAR``). ``False``: the frames as stored, ``(T, s, s,
            3)`` with ``s = meta["stored_size"]``, for a model that resizes them itself
            (:class:`~actionrec.models.layers.ResizeFrames`: the backbone models).

    Returns:
        ``(T, size, size, 3)`` uint8 RGB (``enlarge``), else ``(T, s, s, 3)``.
    """
    import cv2

    store = Path(store)
    if meta is None:
        meta = json.loads((store / "meta.json").read_text())
    clip = load_npy(store / file)
    size = meta["size"]
    if clip.shape[1] == size or not enlarge:
        return clip
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in clip])


def plan_stores(sizes: list[int], native: int,
                min_ratio: float = 0.9) -> dict[int, tuple[int, int]]:
    """Which tree holds the frames of each requested size, and at what side.

    Args:
        sizes: requested square sizes, pixels.
        native: smallest short side of the dataset's videos, pixels (0 if unknown).

    Returns:
        ``{size: (files_in, stored_size)}``. A size that fits ``native`` is stored as
        is (``(size, size)``). A larger one is served by the largest requested size
        that fits, when that keeps at least ``min_ratio`` of the native side
        (``(224, 224)`` for 600 px when 224 is requested and the videos are 240 px:
        93 %), else by a tree of its own at the native side (``(size, native)``).
    """
    fitting = [s for s in sizes if native <= 0 or s <= native]
    best = max(fitting, default=0)
    plan = {}
    for size in sizes:
        if size in fitting:
            plan[size] = (size, size)
        elif best >= min_ratio * native:
            plan[size] = (best, best)
        else:
            plan[size] = (size, native)
    return plan


@dataclass(frozen=True)
class _Job:
    row: dict[str, Any]
    video_path: str
    n_frames: int
    sizes: tuple[tuple[int, int], ...]  # (tree, stored side)
    settings: FrameSettings
    out: str
    links: tuple[tuple[int, int], ...] = ()  # (size, tree): size's files are links to tree's
    view: int = 0  # which temporal view of ``views`` (actionrec.data.video.view_indices)
    views: int = 1


def view_file(split: str, class_name: str, video: str, view: int = 0) -> str:
    """A stored sequence's path in its tree: ``<split>/<Class>/<video>.npy`` for view 0
    (the frame store), ``<video>.v<k>.npy`` for view ``k`` (the views store)."""
    return f"{split}/{class_name}/{video}{f'.v{view}' if view else ''}.npy"


def _extract_one(job: _Job) -> dict[str, Any]:
    """Decode one clip once and store a sequence per size; never raises on bad video."""
    s, row = job.settings, job.row
    try:
        indices, _ = view_indices(job.n_frames, s.sequence_length, s.sampling, s.short_clip,
                                  job.view, job.views)
        decoded = read_frames(job.video_path, indices)
        if not decoded:
            raise VideoDecodeError(f"no frame could be decoded from {job.video_path}")
    except VideoDecodeError as err:
        return {**row, "ok": False, "error": str(err)}
    rel = view_file(row["split"], row["class_name"], row["video"], job.view)
    for tree, stored in job.sizes:
        clip = np.empty((s.sequence_length, stored, stored, 3), np.uint8)
        clip[len(decoded):] = 0
        for t, frame in enumerate(decoded):
            crop_resize(frame, stored, s.crop, out=clip[t])
        save_npy(frames_dir(job.out, tree) / rel, clip)
    for size, tree in job.links:
        link_or_copy(frames_dir(job.out, tree) / rel, frames_dir(job.out, size) / rel)
    return {**row, "ok": True, "error": "", "file": rel, "n_valid": len(decoded),
            "view": job.view}


def extract_frames(manifest: pd.DataFrame, probed: pd.DataFrame, classes: list[str],
                   video_root: Path, sizes: list[int], settings: FrameSettings, out: Path,
                   max_bad_fraction: float, report_path: Path,
                   progress: bool = True, views: int = 1,
                   view_numbers: tuple[int, ...] = (0,)) -> dict[str, Any]:
    """Decode every manifest clip into the frame store at ``out`` (see module doc).

    Args:
        manifest: the ``subsample`` manifest (``path``, ``video``, ``class_name``,
            ``label``, ``group``, ``split``...).
        probed: the ``validate`` probe (``path``, ``readable``, ``n_frames``, ``width``,
            ``height``): a clip known to be unreadable is not decoded again, the known
            frame count lets one decoding pass pick evenly spaced frames, and the
            smallest frame side caps the stored size.
        sizes: square image sizes in pixels, one tree each.
        max_bad_fraction: the largest share of clips that may be undecodable.
        report_path: JSON report of the run (counts, excluded clips and why).
        views, view_numbers: store these temporal views of each clip, of ``views``
            (:func:`~actionrec.data.video.view_indices`); the frame store holds view 0
            alone, the views store (:func:`extract_views`) views ``1 .. views - 1``,
            with a ``view`` column in its index and ``views`` in its meta.json.

    Returns:
        The report dict.

    Raises:
        DatasetError: more than ``max_bad_fraction`` of the clips are bad, or a
            class loses every clip of a split (the report is written first).
    """
    table = manifest.merge(probed[["path", "readable", "n_frames", "width", "height"]],
                           on="path", how="left")
    readable = table[table["readable"].fillna(False).astype(bool)]
    native = int(np.minimum(readable["width"], readable["height"]).min()) if len(readable) else 0
    plan = plan_stores(sizes, native)
    stored = tuple(sorted({(files_in, st) for files_in, st in plan.values()}))
    links = tuple(sorted((size, f) for size, (f, _) in plan.items() if f != size))
    jobs, results = [], []
    for row in table.to_dict("records"):
        base = {k: row[k] for k in ("path", "video", "class_name", "label", "split", "group")}
        base["n_frames"] = int(row["n_frames"]) if pd.notna(row["n_frames"]) else 0
        if not row.get("readable", False) or base["n_frames"] < 1:
            results.append({**base, "ok": False, "error": "unreadable in the validate probe"})
            continue
        jobs += [_Job(base, str(video_root / row["path"]), base["n_frames"], stored,
                      settings, str(out), links, view, views) for view in view_numbers]
    results += imap_progress(_extract_one, jobs, settings.workers,
                             desc="extract frames" if view_numbers == (0,) else "extract views",
                             progress=progress)

    done = pd.DataFrame([r for r in results if r["ok"]])
    bad = [{"path": r["path"], "class_name": r["class_name"], "split": r["split"],
            "error": r["error"]} for r in results if not r["ok"]]
    report: dict[str, Any] = {
        "n_clips": len(table), "n_extracted": len(done), "n_excluded": len(bad),
        "excluded": sorted(bad, key=lambda b: b["path"]), "sizes": list(sizes),
        "stores": {str(size): {"files_in": str(f), "stored_size": st}
                   for size, (f, st) in plan.items()},
        "sequence_length": settings.sequence_length, "sampling": settings.sampling,
        "short_clip": settings.short_clip, "crop": settings.crop,
        "n_padded": int((done["n_valid"] < settings.sequence_length).sum()) if len(done) else 0,
    }
    write_json(report_path, report)
    if len(table) and len(bad) / len(table) > max_bad_fraction:
        raise DatasetError(
            f"{len(bad)} of {len(table)} clips could not be decoded "
            f"(> data.max_bad_fraction={max_bad_fraction}); see {report_path}"
        )
    for split in sorted(set(table["split"])) if view_numbers else ():
        have = set(done.loc[done["split"] == split, "class_name"]) if len(done) else set()
        lost = [c for c in classes if c not in have and c in set(table["class_name"])]
        if lost:
            raise DatasetError(f"split {split!r} lost every clip of {lost}; see {report_path}")
    stored_views = view_numbers != (0,)
    columns = [*INDEX_COLUMNS, "view"] if stored_views else INDEX_COLUMNS
    index = (done.sort_values(["split", "class_name", "video", "view"])[columns] if len(done)
             else pd.DataFrame(columns=columns))
    for size, (files_in, st) in plan.items():
        write_csv(frames_dir(out, size) / "index.csv", index)
        write_json(frames_dir(out, size) / "meta.json", {
            "size": size, "files_in": str(files_in), "stored_size": st,
            "sequence_length": settings.sequence_length,
            "sampling": settings.sampling, "short_clip": settings.short_clip,
            "crop": settings.crop, "dtype": "uint8", "layout": "THWC", "color": "RGB",
            **({"views": views} if stored_views else {}),
        })
    return report


def extract_views(manifest: pd.DataFrame, probed: pd.DataFrame, classes: list[str],
                  video_root: Path, sizes: list[int], settings: FrameSettings, views: int,
                  out: Path, max_bad_fraction: float, report_path: Path,
                  progress: bool = True) -> dict[str, Any]:
    """The views store ``out`` (``data/views``): temporal views ``1 .. views - 1`` of every
    **test** clip, per image size, laid out as the frame store (view 0 is the frame
    store's sequence). ``evaluate@<arch>`` averages a test video's views' probabilities.
    Training never reads it, so changing ``evaluate.views`` retrains nothing. With
    ``views == 1`` the store holds only each size's empty ``index.csv`` and ``meta.json``.

    Raises:
        DatasetError: as :func:`extract_frames`.
    """
    test = manifest[manifest["split"] == "test"]
    return extract_frames(test, probed, classes, video_root, sizes, settings, out,
                          max_bad_fraction, report_path, progress, views,
                          tuple(range(1, views)))
