"""Decoding and sampling clips with OpenCV (data/video.py): frame indices, the centred RGB
crop, real UCF101 avi and mp4, short clips padded with a mask, bad files refused."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from actionrec.data.video import (
    VideoDecodeError,
    crop_resize,
    load_clip,
    probe,
    sample_indices,
    view_indices,
)


@pytest.mark.parametrize(
    ("n", "t", "mode", "policy", "expected", "valid"),
    [
        (100, 5, "uniform", "pad", [10, 30, 50, 70, 90], 5),
        (100, 5, "first", "pad", [0, 1, 2, 3, 4], 5),
        (3, 5, "uniform", "pad", [0, 1, 2], 3),
        (3, 5, "uniform", "loop", [0, 1, 2, 0, 1], 5),
        (5, 5, "uniform", "pad", [0, 1, 2, 3, 4], 5),
    ],
)
def test_sample_indices(n, t, mode, policy, expected, valid):
    idx, n_valid = sample_indices(n, t, mode, policy)
    assert idx.tolist() == expected and n_valid == valid


def test_uniform_sampling_spans_the_whole_clip():
    for n in range(20, 400, 37):
        idx, _ = sample_indices(n, 20)
        assert idx[0] < n / 20 and idx[-1] >= n - n / 20 - 1
        assert np.all(np.diff(idx) > 0)


@pytest.mark.parametrize("n", [8, 29, 40, 150, 1337])
@pytest.mark.parametrize("mode", ["uniform", "first"])
def test_view_0_is_the_single_view_and_the_others_look_elsewhere(n, mode):
    """View 0 of any V is sample_indices' sequence, bit for bit (V = 1 changes nothing);
    every view is T frames of the clip in order; with n / T >= V frames per segment the V
    uniform grids are disjoint, and the first-T windows start 0 .. n - T."""
    t = 8
    single = sample_indices(n, t, mode)
    for views in (1, 2, 5):
        grids = [view_indices(n, t, mode, "pad", k, views) for k in range(views)]
        assert np.array_equal(grids[0][0], single[0]) and grids[0][1] == single[1]
        for idx, valid in grids:
            assert valid == t and len(idx) == t and idx.min() >= 0 and idx.max() < n
            assert np.all(np.diff(idx) > 0) or n == t
        if mode == "uniform" and n / t >= views:
            assert len({int(i) for idx, _ in grids for i in idx}) == views * t
        if mode == "first" and views > 1:
            assert grids[-1][0][-1] == n - 1


def test_a_short_clip_has_one_view_and_a_bad_view_number_is_refused():
    short = sample_indices(5, 8, "uniform", "loop")
    assert all(np.array_equal(view_indices(5, 8, "uniform", "loop", k, 3)[0], short[0])
               for k in range(3))
    with pytest.raises(ValueError, match="view 3 is not one of 0..2"):
        view_indices(40, 8, "uniform", "pad", 3, 3)


def test_crop_resize_is_rgb_and_centred():
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[:, :40] = (255, 0, 0)  # blue band (BGR) on the left edge, outside the centre square
    frame[100:140, 140:180] = (0, 0, 255)  # red square in the middle
    out = crop_resize(frame, 24)
    assert out.shape == (24, 24, 3) and out.dtype == np.uint8
    assert out[12, 12].tolist() == [255, 0, 0]  # red, now in RGB order
    assert out[:, 0, 2].max() == 0  # the blue band was cropped away
    squashed = crop_resize(frame, 24, crop="none")
    assert squashed[12, 0, 2] > 200


def test_real_sample_clips_decode_and_mp4_counts_come_from_decoding(sample_dir):
    clips = sorted((sample_dir / "UCF-101").rglob("v_*"))
    assert {p.suffix for p in clips} == {".avi", ".mp4"}
    header_wrong = 0
    for path in clips:
        info = probe(path)
        cap = cv2.VideoCapture(str(path))
        header = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        header_wrong += header != info.n_frames
        assert info.n_frames >= 29 and info.fps > 20
        frames, n_valid = load_clip(path, 20, 64)
        assert frames.shape == (20, 64, 64, 3) and frames.dtype == np.uint8 and n_valid == 20
        assert frames.std() > 10
    assert header_wrong >= 1, "expected at least one clip whose header frame count is wrong"


def test_short_clip_is_padded_with_a_mask(synth_dir):
    path = synth_dir / "UCF-101" / "Wave" / "v_Wave_g02_c01.avi"
    n = probe(path).n_frames
    frames, n_valid = load_clip(path, n + 6, 16)
    assert n_valid == n and not frames[n:].any() and frames[:n].any()
    looped, n_valid = load_clip(path, n + 6, 16, short_clip="loop")
    assert n_valid == n + 6 and np.array_equal(looped[n], looped[0])


@pytest.mark.parametrize("content", [b"", b"this is not a video\n" * 100])
def test_bad_files_raise_a_decode_error(tmp_path, content):
    path = tmp_path / "bad.avi"
    path.write_bytes(content)
    with pytest.raises(VideoDecodeError):
        probe(path)
    with pytest.raises(VideoDecodeError, match="no such file"):
        probe(tmp_path / "missing.avi")
