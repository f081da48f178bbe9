"""Procedural action videos: stick figures rendered with OpenCV, in the UCF101 layout.

Every clip is a real video file (XVID ``.avi`` written by :class:`cv2.VideoWriter`)
so that the whole pipeline — decoding included — runs on it. Output mirrors UCF101:

    <root>/UCF-101/<Class>/v_<Class>_g<GG>_c<CC>.avi
    <root>/ucfTrainTestlist/classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt

with CRLF lines, 1-based labels in the train lists and none in the test lists.

Like UCF101, clips of one group share a "source video": the actor's size, colour,
line width, the background, its clutter, position, tempo, image noise and camera
shake are drawn once per group and only perturbed per clip. A group looks the same
in every class (one actor in one place performing every action), so appearance
says nothing about the class: only the motion does. (Drawn per class *and* group,
a model learns "this background is Wave" from the train groups and is at chance, or
below, on the unseen test groups.) Split ``s`` uses groups
``(s-1)*test_groups+1 .. s*test_groups`` as test (split 1: the lowest groups, the
official rule of g01-g07 test / g08-g25 train), the rest as train.

``sit_down`` and ``stand_up`` are exact time reverses of each other (same pose
sequence, played backwards, same distribution of timings), so any model that
ignores frame order is at chance (50 %) on that pair.

Everything is deterministic from ``seed``: a clip's random stream is
``numpy.random.default_rng([seed, class_index, group, clip])``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from actionrec.config import SYNTHETIC_ACTIONS
from actionrec.errors import DatasetError
from actionrec.io import write_text
from actionrec.parallel import imap_progress

Pose = dict[str, float]


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


def _squat(depth: float) -> Pose:
    """Pose at squat depth 0 (standing) .. 1 (seated): angles in radians."""
    return {
        "torso": math.radians(35) * depth,
        "thigh_l": math.radians(85) * depth,
        "thigh_r": math.radians(80) * depth,
        "shin_l": -math.radians(15) * depth,
        "shin_r": -math.radians(20) * depth,
        "arm_l": math.radians(80) * depth,
        "arm_r": math.radians(75) * depth,
        "fore_l": math.radians(90) * depth,
        "fore_r": math.radians(85) * depth,
        "lift": 0.0,
    }


def _sit_down(p: float, t: dict[str, float]) -> Pose:
    return _squat(_smoothstep((p - t["t0"]) / (t["t1"] - t["t0"])))


def _stand_up(p: float, t: dict[str, float]) -> Pose:
    return _sit_down(1.0 - p, t)


def _wave(p: float, t: dict[str, float]) -> Pose:
    swing = math.sin(2 * math.pi * (t["cycles"] * 1.5 * p + t["phase"]))
    return {
        "torso": 0.0, "thigh_l": 0.05, "thigh_r": -0.05, "shin_l": 0.05, "shin_r": -0.05,
        "arm_l": 0.1, "fore_l": 0.15,
        "arm_r": math.radians(150), "fore_r": math.radians(180) + 0.6 * swing,
        "lift": 0.0,
    }


def _jumping_jack(p: float, t: dict[str, float]) -> Pose:
    open_ = 0.5 - 0.5 * math.cos(2 * math.pi * (t["cycles"] * p + t["phase"]))
    return {
        "torso": 0.0,
        "thigh_l": -0.45 * open_, "thigh_r": 0.45 * open_,
        "shin_l": -0.45 * open_, "shin_r": 0.45 * open_,
        "arm_l": -2.6 * open_ - 0.1, "arm_r": 2.6 * open_ + 0.1,
        "fore_l": -2.8 * open_ - 0.1, "fore_r": 2.8 * open_ + 0.1,
        "lift": 0.08 * math.sin(math.pi * open_),
    }


def _walk(p: float, t: dict[str, float]) -> Pose:
    s = math.sin(2 * math.pi * (t["cycles"] * p + t["phase"]))
    return {
        "torso": 0.08,
        "thigh_l": 0.45 * s, "thigh_r": -0.45 * s,
        "shin_l": 0.45 * s - 0.35 * max(0.0, -s), "shin_r": -0.45 * s - 0.35 * max(0.0, s),
        "arm_l": -0.4 * s, "arm_r": 0.4 * s, "fore_l": -0.2 * s + 0.3, "fore_r": 0.2 * s + 0.3,
        "lift": 0.0,
        "travel": p,
    }


def _punch(p: float, t: dict[str, float]) -> Pose:
    c = t["cycles"] * p + t["phase"]
    left = max(0.0, math.sin(2 * math.pi * c)) ** 2
    right = max(0.0, -math.sin(2 * math.pi * c)) ** 2
    return {
        "torso": 0.1, "thigh_l": 0.25, "thigh_r": -0.2, "shin_l": 0.1, "shin_r": -0.2,
        "arm_l": 0.9 + 0.7 * left, "fore_l": 2.2 - 0.6 * left,
        "arm_r": 0.9 + 0.7 * right, "fore_r": 2.2 - 0.6 * right,
        "lift": 0.0,
    }


def _bend(p: float, t: dict[str, float]) -> Pose:
    b = 0.5 - 0.5 * math.cos(2 * math.pi * (t["cycles"] * 0.6 * p + t["phase"]))
    return {
        "torso": 1.4 * b, "thigh_l": -0.1 * b, "thigh_r": -0.12 * b, "shin_l": 0.0, "shin_r": 0.0,
        "arm_l": 1.4 * b, "arm_r": 1.3 * b, "fore_l": 1.5 * b, "fore_r": 1.4 * b,
        "lift": 0.0,
    }


#: Synthetic action name -> pose function ``(phase in [0, 1], timing) -> pose``.
ACTIONS: dict[str, Callable[[float, dict[str, float]], Pose]] = {
    "sit_down": _sit_down,
    "stand_up": _stand_up,
    "wave": _wave,
    "jumping_jack": _jumping_jack,
    "walk": _walk,
    "punch": _punch,
    "bend": _bend,
}
if tuple(ACTIONS) != SYNTHETIC_ACTIONS:  # the config validates params against that list
    raise ImportError(f"synthetic ACTIONS {tuple(ACTIONS)} != config.SYNTHETIC_ACTIONS")


def class_name(action: str) -> str:
    """UCF101-style CamelCase class name of an action: ``sit_down`` -> ``SitDown``."""
    return "".join(part.capitalize() for part in action.split("_"))


@dataclass(frozen=True)
class GroupStyle:
    """What one group ("source video") looks like; drawn once per group, for every class."""

    scale: float  # figure height / frame height
    thickness: int  # line width in pixels at 120 px frame height (scaled with the frame)
    figure_bgr: tuple[int, int, int]
    background_bgr: tuple[int, int, int]
    gradient: float
    x_center: float  # fraction of width
    ground: float  # fraction of height
    facing: int  # +1 right, -1 left
    cycles: float
    noise_sigma: float
    jitter_px: float
    clutter_seed: int
    clutter: float  # share of the clutter objects that are drawn


def _group_style(rng: np.random.Generator, variation: float = 1.0) -> GroupStyle:
    """Draw one group's look. ``variation`` in [0, 1] shrinks every appearance draw toward
    one value (1: the full ranges below; 0: every group draws a black figure of the same
    size, line width and place on the same mid-grey background, without gradient, noise,
    shake or clutter). The draws themselves do not change, so ``variation=1`` gives
    exactly the unscaled styles."""
    bg = rng.integers(0, 256, size=3)
    contrast = rng.integers(90, 166, size=3)
    style = GroupStyle(
        scale=float(rng.uniform(0.5, 0.75)),
        thickness=int(rng.integers(3, 6)),
        figure_bgr=tuple(int(v) for v in (bg + contrast) % 256),  # contrast with the background
        background_bgr=tuple(int(v) for v in bg),
        gradient=float(rng.uniform(-60, 60)),
        x_center=float(rng.uniform(0.4, 0.6)),  # inside the centre square that is kept
        ground=float(rng.uniform(0.82, 0.95)),
        facing=int(rng.choice([-1, 1])),
        cycles=float(rng.uniform(1.5, 3.0)),
        noise_sigma=float(rng.uniform(0.0, 8.0)),
        jitter_px=float(rng.uniform(0.0, 2.5)),
        clutter_seed=int(rng.integers(0, 2**31)),
        clutter=1.0,
    )
    if variation == 1.0:
        return style

    def toward(value: float, middle: float) -> float:
        return middle + variation * (value - middle)

    return replace(
        style,
        scale=toward(style.scale, 0.625),
        thickness=int(round(toward(style.thickness, 4))),
        # Toward a black figure on a mid-grey background. (Shrinking only the background
        # left the figure dark in some groups and bright in others: at 0.25 the only two
        # all-dark figures were both in test groups, and ConvLSTM failed exactly there.)
        figure_bgr=tuple(int(round(toward(c, 0.0))) for c in style.figure_bgr),
        background_bgr=tuple(int(round(toward(c, 127.5))) for c in bg),
        gradient=toward(style.gradient, 0.0),
        x_center=toward(style.x_center, 0.5),
        ground=toward(style.ground, 0.885),
        noise_sigma=toward(style.noise_sigma, 0.0),
        jitter_px=toward(style.jitter_px, 0.0),
        clutter=variation,
    )


def _background(style: GroupStyle, w: int, h: int, margin: int) -> np.ndarray:
    """Static background: a vertical gradient plus a few rectangles and circles (clutter)."""
    H, W = h + 2 * margin, w + 2 * margin
    ramp = np.linspace(-0.5, 0.5, H, dtype=np.float32)[:, None, None] * style.gradient
    img = np.clip(np.array(style.background_bgr, np.float32) + ramp, 0, 255)
    img = np.ascontiguousarray(np.broadcast_to(img, (H, W, 3)).astype(np.uint8))
    rng = np.random.default_rng(style.clutter_seed)
    # Clutter stays in the outer fifths of the width: the actor (x_center 0.4-0.6 of the
    # width, walking 0.35 of it) is never drawn over an object of arbitrary colour, which
    # could hide its limbs entirely at low resolution.
    band = W // 5
    n_objects = int(rng.integers(2, 6))
    for k in range(n_objects):
        if k >= round(style.clutter * n_objects):
            break
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        left = rng.random() < 0.5
        y0 = int(rng.integers(0, H))
        if rng.random() < 0.5:
            wr, hr = int(rng.integers(3, max(4, band))), int(rng.integers(5, max(6, H // 3)))
            x0 = int(rng.integers(0, max(1, band - wr))) + (0 if left else W - band)
            cv2.rectangle(img, (x0, y0), (x0 + wr, y0 + hr), colour, -1)
        else:
            r = int(rng.integers(2, max(3, band // 2)))
            x0 = int(rng.integers(0, max(1, band - 2 * r))) + r + (0 if left else W - band)
            cv2.circle(img, (x0, y0), r, colour, -1)
    return img


def _draw_figure(img: np.ndarray, pose: Pose, style: GroupStyle, cx: float, ground: float,
                 size: float) -> None:
    """Draw the stick figure in place. Angles are from the vertical, + toward ``facing``."""
    f = style.facing

    def down(a: float, length: float) -> np.ndarray:
        return np.array([f * math.sin(a), math.cos(a)]) * length * size

    def up(a: float, length: float) -> np.ndarray:
        return np.array([f * math.sin(a), -math.cos(a)]) * length * size

    hip = np.zeros(2)
    knees = {s: hip + down(pose[f"thigh_{s}"], 0.25) for s in "lr"}
    feet = {s: knees[s] + down(pose[f"shin_{s}"], 0.25) for s in "lr"}
    neck = hip + up(pose["torso"], 0.32)
    head = neck + up(pose["torso"], 0.1)
    elbows = {s: neck + down(pose[f"arm_{s}"], 0.17) for s in "lr"}
    hands = {s: elbows[s] + down(pose[f"fore_{s}"], 0.16) for s in "lr"}
    # Feet on the ground, then lifted for jumps.
    offset = np.array([cx, ground - max(feet["l"][1], feet["r"][1]) - pose["lift"] * size])

    def pt(v: np.ndarray) -> tuple[int, int]:
        q = (v + offset) * 16  # 4 bits of sub-pixel precision for smooth motion
        return int(round(q[0])), int(round(q[1]))

    c = style.figure_bgr
    t = max(1, round(style.thickness * img.shape[0] / 120))
    segments = [(hip, neck)]
    for s in "lr":
        segments += [(hip, knees[s]), (knees[s], feet[s]), (neck, elbows[s]), (elbows[s], hands[s])]
    for a, b in segments:
        cv2.line(img, pt(a), pt(b), c, t, cv2.LINE_AA, shift=4)
    cv2.circle(img, pt(head), int(0.07 * size * 16), c, t, cv2.LINE_AA, shift=4)


def render_clip(action: str, style: GroupStyle, rng: np.random.Generator, n_frames: int,
                width: int, height: int) -> np.ndarray:
    """Render one clip as BGR frames.

    Returns:
        ``(n_frames, height, width, 3)`` uint8, BGR (OpenCV order).
    """
    margin = 8
    bg = _background(style, width, height, margin)
    t0 = float(rng.uniform(0.05, 0.3))
    timing = {
        "t0": t0,
        "t1": float(rng.uniform(t0 + 0.4, 0.95)),
        "cycles": style.cycles * float(rng.uniform(0.85, 1.15)),
        "phase": float(rng.uniform(0, 1)),
    }
    size = style.scale * height * float(rng.uniform(0.92, 1.08))
    cx0 = (style.x_center + float(rng.uniform(-0.05, 0.05))) * width + margin
    ground = style.ground * height + margin
    walk_span = 0.35 * width
    shake = np.cumsum(rng.normal(0.0, style.jitter_px, size=(n_frames, 2)), axis=0)
    shake = np.clip(shake - shake.mean(axis=0), -margin, margin).round().astype(int)
    frames = np.empty((n_frames, height, width, 3), np.uint8)
    pose_fn = ACTIONS[action]
    for i in range(n_frames):
        p = i / max(1, n_frames - 1)
        pose = pose_fn(p, timing)
        cx = cx0 + style.facing * walk_span * (pose.get("travel", 0.5) - 0.5)
        canvas = bg.copy()
        _draw_figure(canvas, pose, style, cx, ground, size)
        dx, dy = shake[i]
        frame = canvas[margin + dy: margin + dy + height, margin + dx: margin + dx + width]
        if style.noise_sigma > 0:
            noise = rng.standard_normal(frame.shape, dtype=np.float32) * style.noise_sigma
            frame = np.clip(frame + noise, 0, 255).astype(np.uint8)
        frames[i] = frame
    return frames


def write_video(path: Path, frames_bgr: np.ndarray, fps: float) -> None:
    """Write ``(T, H, W, 3)`` uint8 BGR frames as an XVID ``.avi`` (atomic rename).

    Raises:
        DatasetError: OpenCV has no working XVID encoder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    h, w = frames_bgr.shape[1:3]
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"XVID"), float(fps), (w, h))
    if not writer.isOpened():
        raise DatasetError("OpenCV could not open an XVID VideoWriter; is FFmpeg support built in?")
    try:
        for frame in frames_bgr:
            writer.write(frame)
    finally:
        writer.release()
    os.replace(tmp, path)


def held_out_groups(split: int, groups: int, test_groups: int) -> set[int]:
    """1-based groups that are test in split 1, 2 or 3 (split 1 = the lowest groups)."""
    start = ((split - 1) * test_groups) % groups
    return {(start + k) % groups + 1 for k in range(test_groups)}


@dataclass(frozen=True)
class _ClipJob:
    class_index: int
    class_name: str
    action: str
    group: int
    clip: int
    min_frames: int
    max_frames: int
    width: int
    height: int
    fps: float
    seed: int
    video_root: str
    variation: float = 1.0

    @property
    def rel(self) -> str:
        c = self.class_name
        return f"{c}/v_{c}_g{self.group:02d}_c{self.clip:02d}.avi"


def dataset_clip(action: str, seed: int, class_index: int, group: int, clip: int,
                 min_frames: int, max_frames: int, width: int, height: int,
                 variation: float = 1.0) -> np.ndarray:
    """The frames of clip ``clip`` of group ``group`` of class ``class_index`` (1-based),
    exactly as :func:`generate` writes them: the group's look is drawn from
    ``(seed, group)`` (shared by every class), the clip's length and motion from
    ``(seed, class_index, group, clip)``.

    Returns:
        ``(n, height, width, 3)`` uint8 BGR, ``min_frames <= n <= max_frames``.

    Raises:
        KeyError: ``action`` is not a key of :data:`ACTIONS` (:func:`generate` checks
            its actions first and raises DatasetError).
    """
    style = _group_style(np.random.default_rng([seed, group]), variation)
    rng = np.random.default_rng([seed, class_index, group, clip])
    n = int(rng.integers(min_frames, max_frames + 1))
    return render_clip(action, style, rng, n, width, height)


def _write_clip(job: _ClipJob) -> Path:
    path = Path(job.video_root) / job.rel
    frames = dataset_clip(job.action, job.seed, job.class_index, job.group, job.clip,
                          job.min_frames, job.max_frames, job.width, job.height, job.variation)
    write_video(path, frames, job.fps)
    return path


def generate(root: Path, actions: list[str], groups: int, test_groups: int,
             clips_per_group: int, min_frames: int, max_frames: int, width: int, height: int,
             fps: float, seed: int, progress: bool = True, workers: int = 0,
             variation: float = 1.0) -> list[Path]:
    """Write a synthetic dataset in the UCF101 layout under ``root``.

    Args:
        root: output folder; gets ``UCF-101/`` and ``ucfTrainTestlist/``.
        actions: keys of :data:`ACTIONS`; class names are their CamelCase forms and
            labels follow alphabetical order of those names, as in ``classInd.txt``.
        groups, test_groups, clips_per_group: dataset size; groups are ``g01..gNN``.
        min_frames, max_frames: clip length in frames, drawn per clip (inclusive).
        width, height: frame size in pixels; fps: frames per second of the files.
        seed: the only source of randomness (results do not depend on ``workers``).
        variation: how much groups differ in look, 0..1 (see :func:`_group_style`); 1 is
            the full range, lower values make unseen test groups look more like the
            training groups (an easier dataset, e.g. for CI).
        workers: processes rendering clips; 0 = all cores.

    Returns:
        The written video paths.

    Raises:
        DatasetError: an unknown action, or test_groups >= groups.
    """
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise DatasetError(f"unknown synthetic action(s) {unknown}; known: {sorted(ACTIONS)}")
    if not 0 < test_groups < groups:
        raise DatasetError(f"need 0 < test_groups ({test_groups}) < groups ({groups})")
    names = sorted((class_name(a), a) for a in actions)
    jobs = [_ClipJob(ci, cname, action, g, c, min_frames, max_frames, width, height, fps, seed,
                     str(root / "UCF-101"), variation)
            for ci, (cname, action) in enumerate(names, start=1)
            for g in range(1, groups + 1)
            for c in range(1, clips_per_group + 1)]
    paths = sorted(imap_progress(_write_clip, jobs, workers, desc="synthetic clips",
                                 progress=progress))

    lists = root / "ucfTrainTestlist"
    write_text(lists / "classInd.txt", "".join(f"{i} {n}\r\n" for i, (n, _) in enumerate(names, 1)))
    for split in (1, 2, 3):
        test = held_out_groups(split, groups, test_groups)
        train_lines, test_lines = [], []
        for job in jobs:
            if job.group in test:
                test_lines.append(f"{job.rel}\r\n")
            else:
                train_lines.append(f"{job.rel} {job.class_index}\r\n")
        write_text(lists / f"trainlist0{split}.txt", "".join(train_lines))
        write_text(lists / f"testlist0{split}.txt", "".join(test_lines))
    return paths
