"""The frame store: every clip decoded once into fixed-length uint8 sequences, in shards.

Layout written by :func:`extract_frames` (one tree per image size that the
configured architectures need)::

    <out>/<size>/shards/<split>-<k>.npy   (n, T, s, s, 3) uint8 RGB, s = stored size:
                                           up to frames.clips_per_shard clips of one split
    <out>/<size>/index.csv                 one row per stored clip
    <out>/<size>/meta.json                 requested and stored size, T, sampling, shards

``index.csv`` columns: ``clip`` (the clip's key, ``<split>/<Class>/<video>``), ``video``,
``class_name``, ``label``, ``split``, ``group``, ``n_frames`` (decoded frames in the
video), ``n_valid`` (slots of the sequence that hold a frame; the mask is ``arange(T) <
n_valid``), ``shard`` (its file, relative to ``<out>/<size>``), ``position`` (its row in
the shard) and ``xxh3`` (its bytes' XXH3-64 digest, hex). A shard is a plain ``.npy``
array, memory-mapped on read (:class:`FrameStore`), so training reads any clip in any
order without holding the dataset in memory, and a multi-host process reads only its own
share. Every read checks the clip's digest, and opening a shard checks its length: a
corrupt or truncated shard is an error that names it, never zeros. A clip that could not
be decoded keeps its slot (zeros) and has no row. Why shards, and why ``.npy``:
docs/data.md ("The frame store").

Pixels are never stored upsampled. A size larger than the videos' native crop
(EfficientNetB7's 600 px against UCF101's 240 px) shares the frames of another tree: its
``meta.json`` names that tree (``files_in``: the largest requested size that fits the
native crop, e.g. 224; else the size's own tree, stored at the native side), its
shards are hard links to that tree's (the same bytes: no extra disk, and DVC's
cache keeps them once), and :meth:`FrameStore.read` enlarges on read. Storing upsampled
frames would write 6x the bytes for no information and make the stage I/O bound (3-4x a
bare decode instead of ~1.1x; see docs/benchmarks.md).

The views store (``data/views``, :func:`extract_views`) has the same layout for the test
clips' other temporal views: clip keys ``test/<Class>/<video>.v<k>`` for view ``k`` of
``evaluate.views`` (view 0 is the frame store's sequence), a ``view`` column in its
``index.csv`` and ``views`` in its ``meta.json``.

Every ``<out>/<size>`` folder is thus complete on its own: a stage that reads one size
depends on that folder alone (``data/frames/${item.image_size}`` in ``dvc.yaml``), and
a change to another size leaves it bit-identical, so the stages that read it stay cached.

**Resume.** Shards are built in ``<out>/../.partial/<out name>/`` (not a DVC output, so
``dvc repro`` does not delete it), one task a shard (:func:`_extract_shard`): its clips
decoded in order, each into its slot of the memory-mapped shard; then the shard is
renamed and its rows saved beside it; only when every shard is done does the store take them. A
killed extraction thus resumes without decoding the finished shards again. A finished
shard is reused only by a run of the same clips (path, decoded frame count, file size),
sizes, ``frames.*`` and extraction code (its name carries a digest of those); anything
else is decoded anew. Fault injection (tests): ``$ACTIONREC_EXTRACT_FAILPOINT=<k>``
kills the process (SIGKILL) right after its ``k``-th shard of this run is done.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from actionrec.config import FrameSettings
from actionrec.data.video import VideoDecodeError, crop_resize, read_frames, view_indices
from actionrec.errors import DatasetError
from actionrec.io import atomic_open, write_csv, write_json, writing
from actionrec.parallel import imap_progress

INDEX_COLUMNS = ["clip", "video", "class_name", "label", "split", "group", "n_frames",
                 "n_valid", "shard", "position", "xxh3"]
SHARDS_DIR = "shards"
FAILPOINT_ENV = "ACTIONREC_EXTRACT_FAILPOINT"


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


def _read_header(fh: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    with _HEADER_LOCK:
        major, _ = np.lib.format.read_magic(fh)
        read_header = (np.lib.format.read_array_header_1_0 if major == 1
                       else np.lib.format.read_array_header_2_0)
        return read_header(fh)


def load_npy(path: str | Path) -> np.ndarray:
    """Read a ``.npy`` file written by :func:`save_npy` (no pickles), safe in threads.

    Returns:
        The array, e.g. one clip ``(T, s, s, 3)`` uint8 of the per-file layout that
        benchmarks/frame_store.py measures shards against.
    """
    with open(path, "rb") as fh:
        shape, fortran_order, dtype = _read_header(fh)
        count = int(np.prod(shape, dtype=np.int64))
        data = np.fromfile(fh, dtype=dtype, count=count)
    return data.reshape(shape, order="F" if fortran_order else "C")


def save_npy(path: Path, array: np.ndarray) -> None:
    """``np.save`` to a temporary sibling, then rename (atomic; no fsync, see atomic_open)."""
    with atomic_open(path, "wb", fsync=False) as fh:
        np.save(fh, array, allow_pickle=False)


def digest(clip: np.ndarray) -> str:
    """A clip's integrity digest: XXH3-64 of its C-ordered bytes, 16 hex digits.

    XXH3 (python-xxhash) runs at memory speed, ~0.05 ms for a (20, 224, 224, 3) clip
    where zlib's CRC-32 takes ~0.75 ms (docs/benchmarks.md, "The frame store"): checked on
    every read, it costs training's input nothing measurable."""
    import xxhash

    return xxhash.xxh3_64_hexdigest(np.ascontiguousarray(clip))


#: What to do about a frame store shard that is missing, truncated or corrupt.
_REBUILD = "rebuild it: `dvc repro --force extract_frames` (or `dvc checkout` its folder)"


def _open_shard(path: Path, hint: str = _REBUILD) -> np.ndarray:
    """A shard as a read-only memory map (``(n, T, s, s, 3)`` uint8 in a frame store).

    Raises:
        DatasetError: the file is missing, not a ``.npy`` array, or shorter than its
            header says (truncated); the message ends with ``hint``.
    """
    try:
        with open(path, "rb") as fh:
            shape, fortran_order, dtype = _read_header(fh)
            offset = fh.tell()
    except FileNotFoundError:
        raise DatasetError(f"shard {path} is missing; {hint}") from None
    except ValueError as err:
        raise DatasetError(f"shard {path} is not a .npy array ({err}); {hint}") from None
    need = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = path.stat().st_size
    if have < need:
        raise DatasetError(f"shard {path} is truncated: {have} of its {need} bytes; {hint}")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                     order="F" if fortran_order else "C")


class ShardStore:
    """A store of one fixed-shape array per clip in ``.npy`` shards, read clip by clip: the
    frame store (:class:`FrameStore`) and the feature store
    (:class:`~actionrec.data.datasets.FeatureStore`).

    Args:
        path: the folder holding ``meta.json``, ``index.csv`` (columns ``clip``, ``shard``,
            ``position``, ``xxh3`` among others) and ``shards/``.

    Attributes:
        meta: ``meta.json``'s content.
        index: ``index.csv``, one row per stored clip.

    Shards are opened (memory-mapped) on first use and stay open; reads are safe from
    several threads. Subclasses set ``what`` (the store's name in errors) and ``rebuild``
    (how to rebuild a bad shard).
    """

    what = "store"
    rebuild = "rebuild the stage that writes it"

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.meta: dict[str, Any] = json.loads((self.path / "meta.json").read_text())
        self.index = pd.read_csv(self.path / "index.csv", dtype={"xxh3": str})
        self._where = dict(zip(self.index["clip"], zip(
            self.index["shard"], self.index["position"], self.index["xxh3"], strict=True),
            strict=True)) if len(self.index) else {}
        self._shards: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def _shard(self, name: str) -> np.ndarray:
        with self._lock:
            if name not in self._shards:
                self._shards[name] = _open_shard(self.path / name, self.rebuild)
            return self._shards[name]

    def read_stored(self, clip: str, out: np.ndarray | None = None) -> np.ndarray:
        """One clip's array as stored (a copy; ``out``: the array to copy into, of the
        stored shape and dtype), its digest checked.

        Raises:
            DatasetError: the clip is not in the store, or its bytes do not match their
                digest (a corrupt shard, named), or its shard is missing or truncated.
        """
        try:
            shard, position, expected = self._where[clip]
        except KeyError:
            raise DatasetError(f"clip {clip!r} is not in the {self.what} {self.path} "
                               "(index.csv)") from None
        stored = self._shard(shard)[position]
        data = out if out is not None else np.empty(stored.shape, stored.dtype)
        np.copyto(data, stored)
        if digest(data) != expected:
            raise DatasetError(
                f"shard {self.path / shard} is corrupt: clip {clip!r} (position {position}) "
                f"does not match its XXH3 digest in index.csv; {self.rebuild}")
        return data


class FrameStore(ShardStore):
    """One image size of a frame (or views) store, read clip by clip (:class:`ShardStore`).

    Args:
        path: ``<out>/<size>`` (holds ``meta.json``, ``index.csv`` and ``shards/``).

    Attributes:
        meta: ``meta.json``'s content (``size``, ``stored_size``, ``sequence_length``...).
        index: ``index.csv`` (see the module docstring), one row per stored clip.

    Use :func:`open_store` to share one instance per process.
    """

    what = "frame store"
    rebuild = _REBUILD

    def clip_shape(self, enlarge: bool = True) -> tuple[int, int, int, int]:
        """``(T, S, S, 3)`` of what :meth:`read` returns (``S``: the requested size, or the
        stored one when ``enlarge`` is off)."""
        side = self.meta["size"] if enlarge else self.meta["stored_size"]
        return (self.meta["sequence_length"], side, side, 3)

    def read(self, clip: str, enlarge: bool = True, out: np.ndarray | None = None) -> np.ndarray:
        """One stored sequence, at its requested size or as stored.

        Args:
            clip: the ``clip`` column of ``index.csv``.
            enlarge: bring frames stored smaller than the requested size up to it, on the
                host (OpenCV ``INTER_LINEAR``). ``False``: the frames as stored, ``(T, s,
                s, 3)`` with ``s = meta["stored_size"]``, for a model that resizes them
                itself (:class:`~actionrec.models.layers.ResizeFrames`: the backbone
                models).
            out: a ``(T, S, S, 3)`` uint8 array to read into (a batch's row: one copy
                fewer), as :meth:`clip_shape`.

        Returns:
            ``(T, size, size, 3)`` uint8 RGB (``enlarge``), else ``(T, s, s, 3)``; ``out``
            where given.

        Raises:
            DatasetError: the clip is not in the store, or its bytes do not match their
                digest (a corrupt shard, named), or its shard is missing or truncated.
        """
        size = self.meta["size"]
        as_stored = self.meta["stored_size"] == size or not enlarge
        data = self.read_stored(clip, out if as_stored else None)
        if as_stored:
            return data
        import cv2

        big = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR)
                        for f in data])
        if out is None:
            return big
        out[...] = big
        return out


_STORES: dict[tuple[str, type], tuple[tuple[int, int], ShardStore]] = {}
_STORES_LOCK = threading.Lock()
S = TypeVar("S", bound=ShardStore)
T = TypeVar("T")


def open_store(path: str | Path, kind: type[S] = FrameStore) -> S:  # type: ignore[assignment]
    """The process's ``kind`` (a :class:`FrameStore` by default) of ``path``, opened once
    (anew when its ``index.csv`` changed)."""
    path = Path(path).resolve()
    stat = (path / "index.csv").stat()
    version = (stat.st_mtime_ns, stat.st_size)
    with _STORES_LOCK:
        known = _STORES.get((str(path), kind))
        if known is None or known[0] != version:  # a rewritten store replaces the old one
            known = _STORES[(str(path), kind)] = (version, kind(path))
        return known[1]  # type: ignore[return-value]


def read_clip(store: str | Path, clip: str, enlarge: bool = True) -> np.ndarray:
    """``open_store(store).read(clip, enlarge)``: one stored sequence (see
    :meth:`FrameStore.read` for the shapes and errors)."""
    return open_store(store).read(clip, enlarge)


def clip_key(split: str, class_name: str, video: str, view: int = 0) -> str:
    """A stored sequence's key: ``<split>/<Class>/<video>`` for view 0 (the frame store),
    ``<split>/<Class>/<video>.v<k>`` for view ``k`` (the views store)."""
    return f"{split}/{class_name}/{video}{f'.v{view}' if view else ''}"


def shard_name(split: str, k: int) -> str:
    """Shard ``k`` (0-based) of a split, relative to ``<out>/<size>``."""
    return f"{SHARDS_DIR}/{split}-{k:05d}.npy"


def _runs(rows: pd.DataFrame, clips_per_shard: int) -> Iterator[tuple[str, int, pd.DataFrame]]:
    """``(split, k, rows of shard k)``: each split's rows, in order, in runs of
    ``clips_per_shard`` (the one rule for which clip goes in which shard)."""
    for split, part in rows.groupby("split", sort=False):
        for k, start in enumerate(range(0, len(part), clips_per_shard)):
            yield split, k, part.iloc[start:start + clips_per_shard]


def write_store(path: str | Path, rows: pd.DataFrame, clips: np.ndarray,
                meta: dict[str, Any], clips_per_shard: int) -> None:
    """Write an in-memory set of clips as one size of a frame store (tests, benchmarks).

    Args:
        rows: one row per clip with ``video, class_name, label, split, group, n_frames,
            n_valid`` (a ``view`` column too, for a views store); the store's order is
            theirs.
        clips: ``(N, T, s, s, 3)`` uint8, ``clips[i]`` the clip of ``rows.iloc[i]``.
        meta: ``meta.json``'s content.
        clips_per_shard: the most clips of one split in a shard.
    """
    path = Path(path)
    rows = rows.reset_index(drop=True).copy()
    views = rows["view"] if "view" in rows else pd.Series(0, index=rows.index)
    rows["clip"] = [clip_key(s, c, v, int(k)) for s, c, v, k in
                    zip(rows["split"], rows["class_name"], rows["video"], views, strict=True)]
    rows["shard"], rows["position"], rows["xxh3"] = "", 0, ""
    for split, k, run in _runs(rows, clips_per_shard):
        at = run.index.to_numpy()
        save_npy(path / shard_name(split, k), np.ascontiguousarray(clips[at]))
        rows.loc[at, "shard"] = shard_name(split, k)
        rows.loc[at, "position"] = np.arange(len(at))
        rows.loc[at, "xxh3"] = [digest(clips[i]) for i in at]
    columns = [*INDEX_COLUMNS, *(["view"] if "view" in rows else [])]
    write_csv(path / "index.csv", rows[columns])
    write_json(path / "meta.json", meta)


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


def valid_mask(n_valid: np.ndarray, t: int) -> np.ndarray:
    """``(B, T)`` bool: slot ``j`` of clip ``i`` holds a frame (``j < n_valid[i]``; the
    index's ``n_valid``, ``(B,)`` int)."""
    return np.arange(t)[None, :] < np.asarray(n_valid)[:, None]


# The work folder of a sharded stage (extract_frames, extract_views, extract_features):
# shards built one task each, a finished one reused by a rerun of the same work.

def work_folder(out: Path) -> Path:
    """``<out>/../.partial/<out name>``: where the stage writing ``out`` builds its shards;
    not a DVC output, so ``dvc repro`` (which deletes ``out``) keeps it."""
    return out.parent / ".partial" / out.name


def unit_key(fingerprint: dict[str, Any]) -> str:
    """16 hex digits of the SHA-256 of ``fingerprint`` as key-sorted JSON: what names a unit
    of work, so that a finished unit is reused only by the same work."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def code_digest(*module_files: str) -> str:
    """SHA-256 (hex) of the given source files' bytes, in order: the code that decides a
    stage's output bytes."""
    h = hashlib.sha256()
    for module_file in module_files:
        h.update(Path(module_file).read_bytes())
    return h.hexdigest()


def clear_stale(work: Path, wanted: set[str]) -> None:
    """Create ``work``; delete the files in it (any depth) of units not in ``wanted`` (other
    settings' work) and every unfinished ``*.partial.npy``."""
    work.mkdir(parents=True, exist_ok=True)
    for stale in work.rglob("*"):
        if stale.is_file() and (stale.name.endswith(".partial.npy")
                                or stale.name.split(".")[0] not in wanted):
            stale.unlink()


def open_partial(path: Path, dtype: Any, shape: tuple[int, ...]) -> np.memmap:
    """A new ``.npy`` of ``shape`` and ``dtype`` at ``path`` (``<unit>.partial.npy``),
    memory-mapped for writing in place, its blocks allocated now (a mapped page the disk has
    no room for would be a SIGBUS later).

    Raises:
        OutputError: the file cannot be created or allocated (a full disk, ``ulimit -f``),
            naming it.
    """
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        with open(path, "r+b") as fh:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
    return array


def finish_partial(path: Path) -> None:
    """Rename ``<unit>.partial.npy`` to ``<unit>.npy`` (its writer has dropped its memory
    map; not msync-ed: the pages are the file's in the page cache, as :func:`save_npy`)."""
    done = path.with_name(path.name.replace(".partial.npy", ".npy"))
    with writing(done):
        os.replace(path, done)


def until_failpoint(results: Iterable[T]) -> Iterator[T]:
    """``results`` as they come; with ``$ACTIONREC_EXTRACT_FAILPOINT=<k>`` (:func:`failpoint`)
    this process is killed (SIGKILL) right after the ``k``-th."""
    kill_after = failpoint()
    for finished, result in enumerate(results, 1):
        yield result
        if kill_after is not None and finished >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)


def remove_work(work: Path) -> None:
    """Delete ``work`` (the store has taken its shards), and ``.partial`` when it is empty."""
    shutil.rmtree(work, ignore_errors=True)
    if work.parent.name == ".partial" and work.parent.is_dir() and not any(work.parent.iterdir()):
        work.parent.rmdir()


@dataclass(frozen=True)
class _Shard:
    """One shard to build: its clips decoded in order into a slot each, in every tree."""

    unit: str  # its name in the work folder (the shard's key and a digest)
    clips: tuple[dict[str, Any], ...]  # path, video, class_name, label, split, group, ...
    video_root: str
    trees: tuple[tuple[int, int], ...]  # (tree, stored side)
    settings: FrameSettings
    work: str
    views: int = 1


def _decode(shard: _Shard, row: dict[str, Any]) -> list[np.ndarray] | str:
    """The BGR frames of one clip's view, or why none could be decoded."""
    s = shard.settings
    path = str(Path(shard.video_root) / row["path"])
    try:
        indices, _ = view_indices(row["n_frames"], s.sequence_length, s.sampling,
                                  s.short_clip, row["view"], shard.views)
        decoded = read_frames(path, indices)
    except VideoDecodeError as err:
        return str(err)
    return decoded or f"no frame could be decoded from {path}"


def _extract_shard(shard: _Shard) -> list[dict[str, Any]]:
    """Build one shard in the work folder and return its clips' results; never raises on
    bad video (the clip's slot stays zeros and its result says why).

    Each clip is decoded once and written, cropped and resized, into its slot of every
    tree's memory-mapped ``<unit>.partial.npy``; then the files are renamed to
    ``<unit>.npy`` and the results saved as ``<unit>.json`` (the shard is done)."""
    s, work = shard.settings, Path(shard.work)
    arrays = {tree: open_partial(work / str(tree) / f"{shard.unit}.partial.npy", np.uint8,
                                 (len(shard.clips), s.sequence_length, side, side, 3))
              for tree, side in shard.trees}
    results = []
    for position, row in enumerate(shard.clips):
        out = {**row, "unit": shard.unit, "position": position}
        decoded = _decode(shard, row)
        if isinstance(decoded, str):
            results.append({**out, "ok": False, "error": decoded})
            continue
        digests = {}
        for tree, side in shard.trees:
            clip = arrays[tree][position]
            for t, frame in enumerate(decoded):
                crop_resize(frame, side, s.crop, out=clip[t])
            digests[str(tree)] = digest(clip)
        results.append({**out, "ok": True, "error": "", "n_valid": len(decoded),
                        "xxh3": digests, "clip": clip_key(row["split"], row["class_name"],
                                                        row["video"], row["view"])})
    # unmapped, not msync-ed (msync per shard cost 7 % of the stage)
    clip = None  # the last clip's view keeps its mapping open
    arrays.clear()
    for tree, _ in shard.trees:
        finish_partial(work / str(tree) / f"{shard.unit}.partial.npy")
    write_json(work / f"{shard.unit}.json", results)
    return results


def _code_digest() -> str:
    """:func:`code_digest` of the code that decides a stored clip's bytes (this module,
    video.py)."""
    from actionrec.data import video

    return code_digest(__file__, video.__file__)


def _plan_units(entries: pd.DataFrame, clips_per_shard: int, fingerprint: dict[str, Any]
                ) -> list[tuple[str, str, pd.DataFrame]]:
    """``[(shard name in the store, unit name in the work folder, its entries)]``: each
    split's entries, in order, in runs of ``clips_per_shard``; the unit name is the shard's
    key with a digest of the fingerprint and its clips (path, frames, file size, view)."""
    units = []
    for split, k, chunk in _runs(entries, clips_per_shard):
        key = unit_key({**fingerprint, "clips": chunk[["path", "n_frames", "bytes", "view"]]
                        .astype(str).values.tolist()})
        units.append((shard_name(split, k), f"{split}-{k:05d}-{key}", chunk))
    return units


def failpoint() -> int | None:
    """``$ACTIONREC_EXTRACT_FAILPOINT`` (tests): kill an extraction stage after this many
    shards of this run are done; ``None`` when unset.

    Raises:
        ValueError: the value is not a count >= 1.
    """
    value = os.environ.get(FAILPOINT_ENV)
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{FAILPOINT_ENV}={value!r}: expected a shard count >= 1")
    return int(value)


def _build_shards(units: list[tuple[str, str, pd.DataFrame]], trees: tuple[tuple[int, int], ...],
                  settings: FrameSettings, video_root: Path, work: Path, views: int,
                  desc: str, progress: bool) -> tuple[list[dict[str, Any]], int]:
    """Every unit's shards in ``work``, on ``frames.engine`` (resuming the finished ones);
    returns the clips' results and how many units were already done."""
    clear_stale(work, {unit for _, unit, _ in units})
    results: list[dict[str, Any]] = []
    pending: list[_Shard] = []
    for _, unit, chunk in units:
        done = work / f"{unit}.json"
        if done.exists() and all((work / str(tree) / f"{unit}.npy").exists() for tree, _ in trees):
            results += json.loads(done.read_text())
            continue
        clips = tuple(chunk.drop(columns=["bytes"]).to_dict("records"))
        pending.append(_Shard(unit, clips, str(video_root), trees, settings, str(work), views))
    resumed = len(units) - len(pending)
    if resumed:
        print(f"{desc}: resuming, {resumed} of {len(units)} shards already extracted "
              f"({work})")
    for built in until_failpoint(imap_progress(
            _extract_shard, pending, settings.workers, desc=desc, progress=progress,
            total=sum(len(p.clips) for p in pending), count=len, engine=settings.engine)):
        results += built
    return results, resumed


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
        settings: ``frames.*`` (``clips_per_shard``: the most clips of a split per shard).
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
    trees = tuple(sorted({(files_in, st) for files_in, st in plan.values()}))
    results: list[dict[str, Any]] = []
    entries = []
    for row in table.to_dict("records"):
        base = {k: row[k] for k in ("path", "video", "class_name", "label", "split", "group")}
        base["n_frames"] = int(row["n_frames"]) if pd.notna(row["n_frames"]) else 0
        if not row.get("readable", False) or base["n_frames"] < 1:
            results.append({**base, "ok": False, "error": "unreadable in the validate probe"})
            continue
        size = (video_root / row["path"]).stat().st_size
        entries += [{**base, "view": view, "bytes": size} for view in view_numbers]
    columns = ["path", "video", "class_name", "label", "split", "group", "n_frames", "view",
               "bytes"]
    entries_df = (pd.DataFrame(entries, columns=columns)
                  .sort_values(["split", "class_name", "video", "view"], kind="stable"))
    fingerprint = {"trees": trees, "views": views, "code": _code_digest(),
                   "frames": settings.clip_settings(), "clips_per_shard": settings.clips_per_shard}
    units = _plan_units(entries_df, settings.clips_per_shard, fingerprint)
    work = work_folder(out)
    built, resumed = _build_shards(
        units, trees, settings, video_root, work, views,
        "extract frames" if view_numbers == (0,) else "extract views", progress)
    results += built

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
        "shards_per_size": len(units), "shards_resumed": resumed,
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
    _publish(out, plan, units, work, done, settings, views, view_numbers != (0,))
    return report


def _publish(out: Path, plan: dict[int, tuple[int, int]],
             units: list[tuple[str, str, pd.DataFrame]], work: Path, done: pd.DataFrame,
             settings: FrameSettings, views: int, stored_views: bool) -> None:
    """Move the finished shards from ``work`` into ``out/<size>/shards`` (hard links for a
    size served by another tree), write each size's index and meta, empty ``work``."""
    shard_of = {unit: shard for shard, unit, _ in units}
    for size, (files_in, _) in sorted(plan.items(), key=lambda p: p[0] != p[1][0]):
        shutil.rmtree(frames_dir(out, size), ignore_errors=True)
        for shard, unit, _ in units:
            dst = frames_dir(out, size) / shard
            if files_in == size:
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(work / str(size) / f"{unit}.npy", dst)
            else:
                link_or_copy(frames_dir(out, files_in) / shard, dst)
    columns = [*INDEX_COLUMNS, "view"] if stored_views else INDEX_COLUMNS
    for size, (files_in, st) in plan.items():
        if len(done):
            index = done.assign(shard=done["unit"].map(shard_of),
                                xxh3=[c[str(files_in)] for c in done["xxh3"]])
            index = index.sort_values(["split", "class_name", "video", "view"])[columns]
        else:
            index = pd.DataFrame(columns=columns)
        write_csv(frames_dir(out, size) / "index.csv", index)
        write_json(frames_dir(out, size) / "meta.json", {
            "size": size, "files_in": str(files_in), "stored_size": st,
            "sequence_length": settings.sequence_length,
            "sampling": settings.sampling, "short_clip": settings.short_clip,
            "crop": settings.crop, "dtype": "uint8", "layout": "THWC", "color": "RGB",
            "clips_per_shard": settings.clips_per_shard,
            **({"views": views} if stored_views else {}),
        })
    remove_work(work)


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
