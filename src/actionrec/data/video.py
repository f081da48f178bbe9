"""Video decoding with OpenCV: probing, frame sampling, centre crop and resize.

Frame counts come from decoding (``grab()`` until it fails), never from
``CAP_PROP_FRAME_COUNT``, which is wrong — even negative — for some UCF101 clips
re-encoded as MP4. Frames are returned RGB, as Keras' ``preprocess_input``
functions expect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: File extensions treated as video when a folder is searched (``actionrec predict DIR``,
#: the ``local`` source): the containers OpenCV's FFmpeg backend decodes, animated GIF
#: included. A file named on its own is tried whatever its extension.
VIDEO_EXTENSIONS = (".avi", ".mp4", ".m4v", ".mkv", ".webm", ".mov", ".mpg", ".mpeg",
                    ".3gp", ".wmv", ".flv", ".ogv", ".gif")


class VideoDecodeError(Exception):
    """A file could not be opened or yielded no frame. ``str(err)`` says why."""


@dataclass(frozen=True)
class VideoInfo:
    """What decoding a whole file tells: frames by count of decoded frames, fps from the header."""

    n_frames: int
    fps: float
    width: int
    height: int


@contextlib.contextmanager
def open_video(path: str | Path) -> Iterator[cv2.VideoCapture]:
    """Open ``path`` with OpenCV; always released.

    Raises:
        VideoDecodeError: the file is missing or OpenCV cannot open it.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise VideoDecodeError(f"empty file: {path}")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoDecodeError(f"OpenCV cannot open {path} (not a video, or unknown codec)")
        yield cap
    finally:
        cap.release()


def probe(path: str | Path) -> VideoInfo:
    """Decode the whole file to count its frames.

    Raises:
        VideoDecodeError: unreadable, or no frame decodes.
    """
    with open_video(path) as cap:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        n = 0
        while cap.grab():
            n += 1
    if n == 0:
        raise VideoDecodeError(f"no frame could be decoded from {path}")
    return VideoInfo(n_frames=n, fps=fps, width=width, height=height)


def sample_indices(n_frames: int, length: int, mode: str = "uniform",
                   short_clip: str = "pad") -> tuple[np.ndarray, int]:
    """Which frame indices make a sequence of ``length`` frames.

    Args:
        n_frames: decoded frames in the clip (>= 1).
        length: the sequence length ``T``.
        mode: ``"uniform"`` — ``T`` frames evenly spaced over the whole clip (the
            centre of each of ``T`` equal segments, as in TSN-style sampling);
            ``"first"`` — the first ``T`` frames (the Keras CNN-RNN example).
        short_clip: for ``n_frames < T``: ``"pad"`` — every frame once, the rest of the
            sequence zero frames marked invalid by the mask; ``"loop"`` — frames
            repeated from the start until ``T`` are filled (all valid).

    Returns:
        ``(indices, n_valid)``: ``indices`` is int64 ``(n_valid,)``, ascending except
        when looping; the sequence's first ``n_valid`` slots hold those frames.

    Raises:
        ValueError: a non-positive count or an unknown mode.
    """
    if n_frames < 1 or length < 1:
        raise ValueError(f"need n_frames >= 1 and length >= 1, got {n_frames}, {length}")
    if mode not in ("uniform", "first"):
        raise ValueError(f"unknown sampling mode {mode!r}")
    if short_clip not in ("pad", "loop"):
        raise ValueError(f"unknown short_clip policy {short_clip!r}")
    if n_frames < length:
        if short_clip == "loop":
            return np.arange(length, dtype=np.int64) % n_frames, length
        return np.arange(n_frames, dtype=np.int64), n_frames
    if mode == "first":
        return np.arange(length, dtype=np.int64), length
    edges = np.linspace(0, n_frames, length + 1)
    return np.floor((edges[:-1] + edges[1:]) / 2).astype(np.int64), length


def view_indices(n_frames: int, length: int, mode: str = "uniform", short_clip: str = "pad",
                 view: int = 0, views: int = 1) -> tuple[np.ndarray, int]:
    """The frame indices of temporal view ``view`` of ``views`` of a clip.

    View 0 is :func:`sample_indices`' sequence, exactly; the others cover the same clip at
    other times, so that a video-level answer averages several looks (the practice of
    TSN's and MMAction2's multi-clip testing: several samplings of each test video, their
    class scores averaged; MMAction2 ``SampleFrames(num_clips=V, test_mode=True)``):

    - ``uniform``: the grid of ``T`` segment centres, shifted by ``view / views`` of a
      segment and wrapped within its segment: frame ``floor((j + o) * n / T)`` for slot
      ``j`` with ``o = (0.5 + view / views) mod 1``. ``views`` interleaved grids: with
      ``n / T`` frames per segment, each view takes other frames when ``n / T >= views``.
    - ``first``: ``T`` consecutive frames from a start spread evenly over the clip
      (``round(view * (n - T) / (views - 1))``; view 0 starts at frame 0).

    A clip shorter than ``T`` has one way to be sampled: every view is view 0.

    Raises:
        ValueError: as :func:`sample_indices`, or ``view`` not in ``[0, views)``.
    """
    if not 0 <= view < views:
        raise ValueError(f"view {view} is not one of 0..{views - 1}")
    indices, n_valid = sample_indices(n_frames, length, mode, short_clip)
    if view == 0 or n_frames < length:
        return indices, n_valid
    if mode == "first":
        start = round(view * (n_frames - length) / (views - 1))
        return np.arange(start, start + length, dtype=np.int64), length
    offset = (0.5 + view / views) % 1.0
    idx = np.floor((np.arange(length) + offset) * (n_frames / length)).astype(np.int64)
    return np.minimum(idx, n_frames - 1), length


def crop_resize(frame_bgr: np.ndarray, size: int, crop: str = "center",
                out: np.ndarray | None = None) -> np.ndarray:
    """Square RGB frame of ``size`` x ``size`` from a BGR frame.

    ``crop="center"`` takes the largest centred square first (keeps aspect ratio);
    ``"none"`` squashes the whole frame. Shrinking by ``k >= 2`` first averages
    ``k x k`` pixel blocks (``INTER_AREA`` at an integer factor: anti-aliased and
    about 4x faster than ``INTER_AREA`` at the exact, fractional factor), then
    ``INTER_LINEAR`` covers the remaining factor below 2 (also used to enlarge).

    Args:
        out: optional ``(size, size, 3)`` uint8 C-contiguous array to write into
            (saves a copy when filling a sequence).

    Returns:
        ``(size, size, 3)`` uint8 RGB (``out`` when given).
    """
    h, w = frame_bgr.shape[:2]
    if crop == "center":
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        frame_bgr = frame_bgr[y0:y0 + s, x0:x0 + s]
        h = w = s
    k = min(h, w) // size
    if k >= 2:
        frame_bgr = cv2.resize(frame_bgr, (w // k, h // k), interpolation=cv2.INTER_AREA)
    if frame_bgr.shape[:2] != (size, size):
        frame_bgr = cv2.resize(frame_bgr, (size, size), interpolation=cv2.INTER_LINEAR)
    if out is None:
        return cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
    cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB, dst=out)
    return out


def iter_frames(path: str | Path, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, frame)`` for each distinct wanted index, ascending, in one pass.

    Frames not wanted are only ``grab()``-ed, not converted, so a pass costs about a
    bare decode and holds one full-size frame at a time (a caller that shrinks each
    frame as it comes keeps memory flat, whatever the resolution or length). Stops
    early when the file ends before the last wanted index.

    Yields:
        ``(index, frame)``: ``frame`` is ``(H, W, 3)`` uint8 **BGR**, as OpenCV decodes.

    Raises:
        VideoDecodeError: the file cannot be opened.
    """
    wanted = sorted(set(int(i) for i in indices))
    with open_video(path) as cap:
        i, k = 0, 0
        while k < len(wanted) and cap.grab():
            if i == wanted[k]:
                ok, frame = cap.retrieve()
                if ok:
                    yield i, frame
                k += 1
            i += 1


def read_frames(path: str | Path, indices: np.ndarray) -> list[np.ndarray]:
    """Decode the frames at ``indices`` (any order, repeats allowed) in one pass.

    Returns the BGR frames in the order of ``indices``; may return fewer when the file
    ends early (the caller decides what that means). See :func:`iter_frames`.

    Raises:
        VideoDecodeError: the file cannot be opened.
    """
    got = dict(iter_frames(path, indices))
    return [got[int(i)] for i in indices if int(i) in got]


def load_clip(path: str | Path, length: int, size: int, mode: str = "uniform",
              short_clip: str = "pad", crop: str = "center",
              n_frames: int | None = None) -> tuple[np.ndarray, int]:
    """Decode a clip into a fixed-length RGB sequence.

    Args:
        path: the video file.
        length: sequence length ``T``; size: output side in pixels.
        mode, short_clip: see :func:`sample_indices`; crop: see :func:`crop_resize`.
        n_frames: the decoded frame count if already known (from :func:`probe`);
            otherwise the file is decoded twice (count, then sample).

    Returns:
        ``(frames, n_valid)``: ``frames`` is ``(T, size, size, 3)`` uint8 RGB whose
        slots ``n_valid:`` are zeros; the mask is ``arange(T) < n_valid``.

    Raises:
        VideoDecodeError: unreadable or empty file.
    """
    if n_frames is None:
        n_frames = probe(path).n_frames
    indices, _ = sample_indices(n_frames, length, mode, short_clip)
    decoded = read_frames(path, indices)
    if not decoded:
        raise VideoDecodeError(f"no frame could be decoded from {path}")
    # A file that ends before its probed count keeps the frames it gave; the rest is padding.
    out = np.zeros((length, size, size, 3), np.uint8)
    for t, frame in enumerate(decoded):
        out[t] = crop_resize(frame, size, crop)
    return out, len(decoded)
