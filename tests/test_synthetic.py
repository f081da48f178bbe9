"""The synthetic dataset (data/synthetic.py): real XVID video in UCF101's layout and list
format, deterministic, rendering what it says; groups alike by `variation`; SitDown is
StandUp played backwards; held-out groups rotate over the splits."""

from __future__ import annotations

import cv2
import numpy as np

from actionrec.data.splits import read_split
from actionrec.data.synthetic import ACTIONS, generate, held_out_groups
from actionrec.data.video import load_clip, probe
from tests.helpers import SMALL_SYNTH


def test_layout_and_list_format(synth_dir):
    lists = synth_dir / "ucfTrainTestlist"
    assert (lists / "classInd.txt").read_bytes() == b"1 SitDown\r\n2 StandUp\r\n3 Wave\r\n"
    train = (lists / "trainlist01.txt").read_bytes().decode()
    test = (lists / "testlist01.txt").read_bytes().decode()
    assert train.endswith("\r\n") and "SitDown/v_SitDown_g02_c01.avi 1\r\n" in train
    assert "Wave/v_Wave_g01_c02.avi\r\n" in test and " " not in test  # no labels
    classes, entries = read_split(lists, 1)
    assert {e.group for e in entries if e.split == "test"} == {1}  # low groups are test
    assert len(list((synth_dir / "UCF-101").rglob("*.avi"))) == 3 * 4 * 2
    _, split2 = read_split(lists, 2)
    assert {e.group for e in split2 if e.split == "test"} == {2}


def test_files_are_real_video_decoded_by_opencv(synth_dir):
    path = synth_dir / "UCF-101" / "Wave" / "v_Wave_g02_c01.avi"
    info = probe(path)
    assert SMALL_SYNTH["min_frames"] <= info.n_frames <= SMALL_SYNTH["max_frames"]
    assert (info.width, info.height, info.fps) == (80, 64, 25.0)
    cap = cv2.VideoCapture(str(path))
    tag = int(cap.get(cv2.CAP_PROP_FOURCC)).to_bytes(4, "little").decode()
    assert tag in {"XVID", "FMP4"}  # MPEG-4 Part 2, the codec of the UCF101 .avi files
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (64, 80, 3) and frame.std() > 5  # not a blank frame


def test_generation_is_deterministic(tmp_path, synth_dir):
    params = {**SMALL_SYNTH, "actions": ["wave", "sit_down"], "groups": 2, "clips_per_group": 1}
    generate(tmp_path / "a", progress=False, **params)
    generate(tmp_path / "b", progress=False, **params)
    for f in (tmp_path / "a" / "UCF-101").rglob("*.avi"):
        other = tmp_path / "b" / f.relative_to(tmp_path / "a")
        a, _ = load_clip(f, 8, 32)
        b, _ = load_clip(other, 8, 32)
        assert np.array_equal(a, b)
    changed = {**params, "seed": params["seed"] + 1}
    generate(tmp_path / "c", progress=False, **changed)
    f = next((tmp_path / "a" / "UCF-101" / "Wave").glob("*.avi"))
    a, _ = load_clip(f, 8, 32)
    c, _ = load_clip(tmp_path / "c" / f.relative_to(tmp_path / "a"), 8, 32)
    assert not np.array_equal(a, c)


def test_dataset_clip_renders_the_clip_that_generate_wrote(synth_dir):
    """benchmarks/full_scale.py renders UCF101's own file list through dataset_clip."""
    from actionrec.data.synthetic import dataset_clip

    s = SMALL_SYNTH

    def clip(group: int) -> np.ndarray:  # Wave is class 3 (SitDown, StandUp, Wave)
        return dataset_clip("wave", s["seed"], 3, group, 1, s["min_frames"], s["max_frames"],
                            s["width"], s["height"])

    def blurred(frames) -> np.ndarray:  # the per-pixel noise XVID smooths away, removed
        return np.array([cv2.GaussianBlur(f, (5, 5), 0) for f in frames], np.int16)

    cap = cv2.VideoCapture(str(synth_dir / "UCF-101" / "Wave" / "v_Wave_g02_c01.avi"))
    decoded = []
    while (ok := cap.read())[0]:
        decoded.append(ok[1])
    cap.release()
    frames, other = clip(2), clip(3)
    assert frames.dtype == np.uint8 and frames.shape[1:] == (s["height"], s["width"], 3)
    assert len(decoded) == len(frames)
    assert np.abs(blurred(decoded) - blurred(frames)).mean() < 4  # measured 2.4
    n = min(len(other), len(decoded))
    assert np.abs(blurred(decoded[:n]) - blurred(other[:n])).mean() > 20  # another group: 73


def _corner_colours(root) -> np.ndarray:
    """Mean BGR of the top-left 6x6 pixels of each clip's first decoded frame."""
    corners = []
    for video in sorted((root / "UCF-101").rglob("*.avi")):
        cap = cv2.VideoCapture(str(video))
        ok, frame = cap.read()
        cap.release()
        assert ok, video
        corners.append(frame[:6, :6].reshape(-1, 3).mean(axis=0))
    return np.array(corners)


def test_variation_sets_how_much_groups_differ_in_look(tmp_path):
    """variation 0: every group on the same plain mid-grey background; 1: groups differ."""
    from actionrec.data.synthetic import _group_style

    alike_styles = {_group_style(np.random.default_rng([0, g]), 0.0) for g in range(1, 9)}
    assert {(s.figure_bgr, s.background_bgr) for s in alike_styles} == {
        ((0, 0, 0), (128, 128, 128))}
    params = {**SMALL_SYNTH, "actions": ["wave", "walk"], "groups": 4, "clips_per_group": 1}
    generate(tmp_path / "alike", progress=False, **params, variation=0.0)
    generate(tmp_path / "full", progress=False, **params, variation=1.0)
    alike, full = _corner_colours(tmp_path / "alike"), _corner_colours(tmp_path / "full")
    assert np.ptp(alike, axis=0).max() < 4  # XVID noise only
    assert np.abs(alike - 127.5).max() < 6  # mid grey, through XVID's YUV 4:2:0
    assert np.ptp(full, axis=0).max() > 40


def test_sit_down_is_stand_up_played_backwards():
    timing = {"t0": 0.2, "t1": 0.8, "cycles": 2.0, "phase": 0.1}
    for p in np.linspace(0, 1, 11):
        assert ACTIONS["sit_down"](p, timing) == ACTIONS["stand_up"](1 - p, timing)
    start, end = ACTIONS["sit_down"](0.0, timing), ACTIONS["sit_down"](1.0, timing)
    assert start["thigh_l"] == 0 and end["thigh_l"] > 1.0  # standing -> seated


def test_held_out_groups_rotate_over_splits():
    assert held_out_groups(1, 25, 7) == set(range(1, 8))
    assert held_out_groups(2, 25, 7) == set(range(8, 15))
    assert held_out_groups(3, 6, 2) == {5, 6}
