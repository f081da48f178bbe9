"""Recognise actions in video files with a trained model: top-k per clip or a timeline.

    actionrec predict clip.avi --model models/lrcn
    actionrec predict videos/ --model "models:/actionrec-lrcn@champion" --json
    actionrec predict long.mp4 --model models/lrcn --window 2 --stride 1 --plot out/

A model is a ``models/<arch>`` folder or its ``model.keras`` (with the ``meta.json``
that training wrote beside it), or an MLflow model URI (``runs:/<run id>/model``,
``models:/actionrec-<arch>/<version>``, ``models:/actionrec-<arch>@champion``).
Frames are sampled and preprocessed exactly as for training, from the model's own
``meta.json`` (sequence length ``T``, image size ``S``, sampling, short-clip policy,
crop): the same :func:`~actionrec.data.video.view_indices` (view 0: ``sample_indices``) and
:func:`~actionrec.data.video.crop_resize`, never re-typed settings. (One difference
by design: a size above the video's native crop, such as EfficientNetB7's 600 px, is
enlarged from the native crop here, where training enlarged a 224 px copy.)

Whole clip: ``T`` frames spread over the clip, one prediction. Sliding windows
(``window`` and ``stride`` in seconds): the same sampling inside each window, one
prediction per window, a timeline of ``(start s, end s, action, probability)``.

Memory: every frame is shrunk to ``S x S`` as it is decoded, and only the windows
that are still open hold frames (``ceil(window / stride)`` of them, ``T x S x S x 3``
bytes each), so a long 1080p video costs no more than a short one
(``benchmarks/predict.py``).

Frame counts come from decoding, never from the container header; the video is
decoded twice (count, then sample), as in the pipeline.
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actionrec.data.video import (
    VIDEO_EXTENSIONS,
    VideoDecodeError,
    crop_resize,
    iter_frames,
    probe,
    view_indices,
)
from actionrec.errors import ActionrecError
from actionrec.model_meta import MetaError, ModelMeta

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


class PredictError(ActionrecError):
    """A model could not be loaded, or an argument of ``predict`` is wrong."""


@dataclass(frozen=True)
class InputContract:
    """How a model's input is made from a video, as training made it (``meta.json``).

    Attributes:
        classes: class names, index = output column.
        sequence_length: ``T``, frames per clip.
        image_size: ``S``, square side in pixels.
        sampling: ``uniform`` or ``first`` (:func:`~actionrec.data.video.sample_indices`).
        short_clip: ``pad`` or ``loop``, for clips of fewer than ``T`` frames.
        crop: ``center`` or ``none`` (:func:`~actionrec.data.video.crop_resize`).
    """

    classes: tuple[str, ...]
    sequence_length: int
    image_size: int
    sampling: str
    short_clip: str
    crop: str

    @classmethod
    def from_meta(cls, meta: dict[str, Any], source: str) -> InputContract:
        """Read the contract from a ``meta.json`` mapping (:class:`ModelMeta`).

        Raises:
            PredictError: a key is missing or invalid (the model was not saved by
                actionrec training).
        """
        try:
            m = ModelMeta.from_mapping(meta, source)
        except MetaError as err:
            raise PredictError(str(err)) from None
        return cls(tuple(m.classes), m.sequence_length, m.image_size, m.sampling,
                   m.short_clip, m.crop)


@dataclass
class Predictor:
    """A loaded model and the contract of its input.

    Attributes:
        predict_batch: ``(N, T, S, S, 3)`` uint8 RGB -> ``(N, C)`` float32 probabilities.
        contract: the input contract from the model's ``meta.json``.
        meta: the whole ``meta.json`` (architecture, MLflow run id...).
        source: what it was loaded from, for messages.
    """

    predict_batch: Callable[[np.ndarray], np.ndarray]
    contract: InputContract
    meta: dict[str, Any]
    source: str


def is_model_uri(ref: str) -> bool:
    """True for an MLflow URI (``runs:/``, ``models:/``, ``file:///``...), not a local path."""
    return bool(_URI.match(ref)) and not Path(ref).exists()


def _keras_predict(model) -> Callable[[np.ndarray], np.ndarray]:
    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(x), dtype=np.float32)
    return run


def load_predictor(ref: str, tracking_uri: str | None = None) -> Predictor:
    """Load a model from a ``models/<arch>`` folder, a ``.keras`` file or an MLflow URI.

    Args:
        ref: a folder holding ``model.keras`` + ``meta.json``, a ``.keras`` file with
            ``meta.json`` beside it, or an MLflow model URI.
        tracking_uri: the MLflow tracking store for ``models:/`` and ``runs:/`` URIs
            (``None``: MLflow's own default, i.e. ``$MLFLOW_TRACKING_URI``); unused for a path.

    Raises:
        PredictError: nothing loadable at ``ref``; the message says what was looked for.
    """
    import json

    if is_model_uri(ref):
        from actionrec.tracking.runs import ModelNotFound, load_python_model
        from actionrec.tracking.store import tracking_uri as resolve

        try:
            wrapped = load_python_model(ref, tracking_uri or resolve(None, Path(".")))
        except ModelNotFound as err:
            raise PredictError(str(err)) from None
        if not hasattr(wrapped, "meta") or not hasattr(wrapped, "model"):
            raise PredictError(f"{ref!r} is an MLflow model, but not one logged by actionrec")
        meta = dict(wrapped.meta)
        return Predictor(_keras_predict(wrapped.model), InputContract.from_meta(meta, ref),
                         meta, ref)

    path = Path(ref)
    model_file = path / "model.keras" if path.is_dir() else path
    if not model_file.is_file():
        raise PredictError(f"no model at {ref!r}: give a models/<arch> folder, its model.keras, "
                           "or an MLflow URI such as models:/actionrec-lrcn@champion")
    if model_file.suffix != ".keras":
        raise PredictError(f"{model_file} is not a .keras model file")
    meta_file = model_file.parent / "meta.json"
    if not meta_file.is_file():
        raise PredictError(f"{meta_file} is missing: predict reads the frame sampling and "
                           "classes from the meta.json that training writes beside the model")
    meta = json.loads(meta_file.read_text())
    contract = InputContract.from_meta(meta, str(meta_file))

    import keras

    import actionrec.models.layers  # noqa: F401  (registers the custom layers)

    try:
        model = keras.models.load_model(model_file, safe_mode=True)
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as err:
        raise PredictError(f"cannot load {model_file} (not a Keras 3 model file?): "
                           f"{err}") from None
    return Predictor(_keras_predict(model), contract, meta, str(model_file))


# --- windows ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Window:
    """A span of frames ``[start, stop)`` and the frame index of each sequence slot.

    ``indices`` is int64 ``(n_valid,)`` of absolute frame numbers in the video: slot
    ``t`` of the sequence holds frame ``indices[t]``; slots ``n_valid:`` stay zero
    (padding, masked by the model).
    """

    start: int
    stop: int
    indices: np.ndarray
    view: int = 0  # which temporal view of the span (actionrec.data.video.view_indices)

    @property
    def last(self) -> int:
        """The highest frame index this window needs."""
        return int(self.indices.max())


def plan_windows(n_frames: int, contract: InputContract, window: int | None = None,
                 stride: int | None = None, views: int = 1) -> list[Window]:
    """Windows over a clip of ``n_frames`` decoded frames.

    Args:
        window, stride: in frames; ``window=None`` gives one window over the whole clip.
            Windows start every ``stride`` frames; when the last one stops short of the
            end, one more window ends at the last frame, so the timeline covers the clip.
            A clip shorter than ``window`` is one window.
        views: temporal views of each span (:func:`~actionrec.data.video.view_indices`,
            the same views as ``evaluate.views``); view 0 is the span's one sequence.

    Returns:
        Windows in order of start, each span's views in order.
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if window is None or window >= n_frames:
        spans = [(0, n_frames)]
    else:
        stride = max(1, stride or window)
        starts = list(range(0, n_frames - window + 1, stride))
        if starts[-1] + window < n_frames:
            starts.append(n_frames - window)
        spans = [(s, s + window) for s in starts]
    out = []
    for start, stop in spans:
        for view in range(views):
            idx, _ = view_indices(stop - start, contract.sequence_length, contract.sampling,
                                  contract.short_clip, view, views)
            out.append(Window(start, stop, start + idx, view))
    return out


def iter_window_clips(path: str | Path, windows: list[Window],
                      contract: InputContract) -> Iterator[tuple[Window, np.ndarray]]:
    """Decode ``path`` once and yield each window's sequence as soon as it is complete.

    Yields:
        ``(window, clip)`` in window order; ``clip`` is ``(T, S, S, 3)`` uint8 RGB with
        zero slots after the frames that decoded. A window none of whose frames decoded
        (the file ended early) is not yielded.

    Raises:
        VideoDecodeError: the file cannot be opened.
    """
    t, s = contract.sequence_length, contract.image_size
    slots: dict[int, list[tuple[int, int]]] = {}
    for w, win in enumerate(windows):
        for slot, frame in enumerate(win.indices):
            slots.setdefault(int(frame), []).append((w, slot))
    open_clips: dict[int, np.ndarray] = {}  # windows that got a frame and are not yielded
    done = 0
    for index, frame in iter_frames(path, np.fromiter(slots, np.int64)):
        small = crop_resize(frame, s, contract.crop)
        for w, slot in slots[index]:
            if w not in open_clips:
                open_clips[w] = np.zeros((t, s, s, 3), np.uint8)
            open_clips[w][slot] = small
        while done < len(windows) and windows[done].last <= index:
            if done in open_clips:
                yield windows[done], open_clips.pop(done)
            done += 1
    for w in range(done, len(windows)):  # the file ended before these were complete
        if w in open_clips:
            yield windows[w], open_clips.pop(w)


# --- results ---------------------------------------------------------------------------

@dataclass
class Segment:
    """One window of a timeline: seconds, the top action and its probability."""

    start_s: float
    end_s: float
    action: str
    probability: float
    probabilities: list[float] = field(repr=False)
    frames: int = 0  # frames of the video in the window (fewer than T: padded or looped)


@dataclass
class VideoResult:
    """The answer for one video, or why there is none.

    Attributes:
        video: the path as given.
        error: ``None`` when answered; else what was wrong with the file.
        top_k: ``[(action, probability)]``, most probable first (whole clip, or the
            mean of the windows' probabilities with ``--window``).
        n_frames: decoded frames; fps: from the container; duration_s: n_frames / fps.
        timeline: one :class:`Segment` per window (``--window`` only).
        padded: ``None``, or when the clip (or a window) had fewer frames than the model's
            ``T``: ``{"frames": the fewest frames a window had, "sequence_length": T,
            "filled_by": "zero padding" | "looping"}`` (``frames.short_clip`` at
            training time: the answer rests on fewer frames than the model was trained on).
    """

    video: str
    error: str | None = None
    top_k: list[tuple[str, float]] = field(default_factory=list)
    n_frames: int = 0
    fps: float = 0.0
    duration_s: float = 0.0
    timeline: list[Segment] | None = None
    padded: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe mapping (the ``--json`` output of one video)."""
        out: dict[str, Any] = {"video": self.video, "ok": self.ok}
        if not self.ok:
            out["error"] = self.error
            return out
        out.update(n_frames=self.n_frames, fps=round(self.fps, 3),
                   duration_s=round(self.duration_s, 3),
                   top_k=[{"action": a, "probability": round(p, 6)} for a, p in self.top_k],
                   padded=self.padded)
        if self.timeline is not None:
            out["timeline"] = [{"start_s": round(g.start_s, 3), "end_s": round(g.end_s, 3),
                                "action": g.action, "probability": round(g.probability, 6)}
                               for g in self.timeline]
        return out


def _top_k(probs: np.ndarray, classes: tuple[str, ...], k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [(classes[i], float(probs[i])) for i in order]


def predict_video(predictor: Predictor, path: str | Path, top_k: int = 3,
                  window_s: float | None = None, stride_s: float | None = None,
                  fps: float | None = None, batch_size: int = 8,
                  views: int = 1) -> VideoResult:
    """Predict the actions of one video; never raises for a bad file.

    Args:
        window_s, stride_s: sliding windows in seconds (``None``: the whole clip);
            ``stride_s`` defaults to ``window_s``.
        fps: frames per second to use instead of the container's (for a header with
            none, or a wrong one); only windows and durations use it.
        batch_size: windows per model call.
        views: temporal views of the clip (or of each window), their probabilities
            averaged: the video-level answer of ``evaluate.views``.

    Returns:
        A :class:`VideoResult`; ``result.error`` says why a file gave no answer (missing,
        empty, not a video, no decodable frame, no frame rate for windows).
    """
    c = predictor.contract
    try:
        info = probe(path)
    except VideoDecodeError as err:
        return VideoResult(str(path), error=str(err))
    rate = fps or info.fps
    valid_rate = rate > 0 and math.isfinite(rate)
    result = VideoResult(str(path), n_frames=info.n_frames, fps=rate if valid_rate else 0.0,
                         duration_s=info.n_frames / rate if valid_rate else 0.0)
    win = stride = None
    if window_s is not None:
        if not valid_rate:
            result.error = (f"{path}: the container gives no frame rate, so seconds cannot be "
                            "turned into frames; pass --fps")
            return result
        win = max(1, round(window_s * rate))
        stride = max(1, round((stride_s or window_s) * rate))
    windows = plan_windows(info.n_frames, c, win, stride, views)

    by_span: dict[tuple[int, int], list[np.ndarray]] = {}  # each span's views' probabilities
    batch: list[tuple[Window, np.ndarray]] = []

    def flush() -> None:
        probs = predictor.predict_batch(np.stack([clip for _, clip in batch]))
        for (w, _), p in zip(batch, probs, strict=True):
            by_span.setdefault((w.start, w.stop), []).append(np.asarray(p, np.float64))
        batch.clear()

    try:
        for item in iter_window_clips(path, windows, c):
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
    except VideoDecodeError as err:
        result.error = str(err)
        return result
    if batch:
        flush()
    segments: list[Segment] = []
    for (first, last), probs in sorted(by_span.items()):
        p = np.mean(probs, axis=0)  # the span's views averaged (one view: itself)
        i = int(np.argmax(p))
        segments.append(Segment(first / rate if valid_rate else 0.0,
                                last / rate if valid_rate else 0.0, c.classes[i],
                                float(p[i]), p.tolist(), frames=last - first))
    if not segments:
        result.error = f"no frame could be decoded from {path}"
        return result
    # The clip-level answer: the mean of the windows' probabilities (one window without
    # --window: the whole clip).
    mean = np.mean([g.probabilities for g in segments], axis=0)
    result.top_k = _top_k(mean, c.classes, top_k)
    fewest = min(g.frames for g in segments)
    if fewest < c.sequence_length:
        result.padded = {"frames": fewest, "sequence_length": c.sequence_length,
                         "filled_by": "looping" if c.short_clip == "loop" else "zero padding"}
    if window_s is not None:
        result.timeline = segments
    return result


def find_videos(inputs: list[str]) -> tuple[list[Path], list[VideoResult]]:
    """Expand files and folders (recursively, by extension) into the videos to predict.

    Returns:
        ``(videos, problems)``: a missing path, or a folder holding no video, becomes a
        :class:`VideoResult` with its error instead of stopping the run.
    """
    videos: list[Path] = []
    problems: list[VideoResult] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*")
                           if f.is_file() and f.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                problems.append(VideoResult(item, error=(
                    f"no video in folder {item} (looked for {', '.join(VIDEO_EXTENSIONS)})")))
            videos += found
        elif p.exists():
            videos.append(p)
        else:
            problems.append(VideoResult(item, error=f"no such file or folder: {item}"))
    return videos, problems


def plot_timeline(result: VideoResult, classes: tuple[str, ...], path: Path) -> None:
    """PNG of a windowed prediction: each class's probability over time (top) and the
    top-1 action of every window as a coloured band (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from actionrec.io import atomic_open

    segs = result.timeline or []
    centres = [(g.start_s + g.end_s) / 2 for g in segs]
    probs = np.array([g.probabilities for g in segs]).reshape(len(segs), len(classes))
    colours = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, (ax, band) = plt.subplots(2, 1, figsize=(10, 4.2), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    for i, name in enumerate(classes):
        ax.plot(centres, probs[:, i], marker="o", ms=3, color=colours(i % colours.N),
                label=name)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("probability")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    ax.set_title(f"{Path(result.video).name}: actions over time")
    # The band tiles the time axis: each window from the midpoints to its neighbours'
    # centres (the first from its start, the last to its end).
    edges = [segs[0].start_s if segs else 0.0]
    edges += [(a + b) / 2 for a, b in zip(centres, centres[1:], strict=False)]
    edges += [segs[-1].end_s if segs else 0.0]
    for k, g in enumerate(segs):
        i = classes.index(g.action)
        band.axvspan(edges[k], edges[k + 1], color=colours(i % colours.N),
                     alpha=0.25 + 0.75 * g.probability, lw=0)
        band.text((edges[k] + edges[k + 1]) / 2, 0.5, g.action, ha="center", va="center",
                  fontsize=7, rotation=90 if len(segs) > 12 else 0, clip_on=True)
    band.set_yticks([])
    band.set_xlabel("time (s)")
    band.set_ylabel("top-1")
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)
