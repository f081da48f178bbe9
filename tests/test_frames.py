"""The frame store (data/frames.py) from real video: synthetic .avi and the real UCF101
sample (avi + mp4); sizes above the native crop; which stores a size set needs; the rules
that fail the stage on bad clips."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from actionrec.config import FrameSettings, ValidateSettings
from actionrec.data.frames import extract_frames, plan_stores, read_clip
from actionrec.data.splits import build_manifest
from actionrec.data.validation import probe_videos, validate_dataset
from actionrec.errors import DatasetError
from tests.helpers import synth_manifest

FRAMES = FrameSettings(sequence_length=6, workers=2)


def test_extract_frames_store(synth_copy, tmp_path):
    manifest, classes = synth_manifest(synth_copy)
    broken = manifest["path"].iloc[0]
    (synth_copy / "UCF-101" / broken).write_bytes(b"RIFF" + b"\x00" * 500)
    probed = probe_videos(list(manifest["path"]), synth_copy / "UCF-101", 2, progress=False)
    out = tmp_path / "frames"
    report = extract_frames(manifest, probed, classes, synth_copy / "UCF-101", [16, 40], FRAMES,
                            out, 0.1, tmp_path / "extract.json", progress=False)
    assert report["n_extracted"] == 23 and [e["path"] for e in report["excluded"]] == [broken]
    for size in (16, 40):
        index = pd.read_csv(out / str(size) / "index.csv")
        assert len(index) == 23 and broken not in set(index["video"] + ".avi")
        clip = np.load(out / str(size) / index["file"].iloc[0], mmap_mode="r")
        assert clip.shape == (6, size, size, 3) and clip.dtype == np.uint8
        assert (index["n_valid"] == 6).all()
    # The stored frames are exactly what decoding the clip gives.
    from actionrec.data.video import load_clip

    row = pd.read_csv(out / "16" / "index.csv").iloc[5]
    src = manifest.set_index("video").loc[row["video"], "path"]
    expected, _ = load_clip(synth_copy / "UCF-101" / src, 6, 16)
    assert np.array_equal(np.load(out / "16" / row["file"]), expected)


def test_sizes_above_the_native_crop_are_stored_native_and_enlarged_on_read(synth_dir, tmp_path):
    manifest, classes = synth_manifest(synth_dir)
    probed = probe_videos(list(manifest["path"]), synth_dir / "UCF-101", 2, progress=False)
    out = tmp_path / "frames"
    report = extract_frames(manifest, probed, classes, synth_dir / "UCF-101", [60, 150], FRAMES,
                            out, 0.0, tmp_path / "extract.json", progress=False)
    # The clips are 80x64: 150 px shares the 60 px tree's frames, nothing upsampled is
    # written; its folder holds hard links to them, so it is complete on its own (a DVC
    # dependency on data/frames/150 alone covers every byte the 150 px model reads).
    assert report["stores"] == {"60": {"files_in": "60", "stored_size": 60},
                                "150": {"files_in": "60", "stored_size": 60}}
    big_files = sorted(p.relative_to(out / "150") for p in (out / "150").rglob("*.npy"))
    assert big_files == sorted(p.relative_to(out / "60") for p in (out / "60").rglob("*.npy"))
    assert all((out / "150" / f).samefile(out / "60" / f) for f in big_files)
    file = pd.read_csv(out / "150" / "index.csv")["file"].iloc[0]
    big = read_clip(out / "150", file)
    assert big.shape == (6, 150, 150, 3) and big.dtype == np.uint8
    assert np.array_equal(read_clip(out / "60", file), np.load(out / "60" / file))
    assert np.array_equal(read_clip(out / "150", file, enlarge=False), np.load(out / "60" / file))
    # Alone, a size above the native crop gets a tree stored at the native side.
    report = extract_frames(manifest, probed, classes, synth_dir / "UCF-101", [150], FRAMES,
                            tmp_path / "f2", 0.0, tmp_path / "extract.json", progress=False)
    assert report["stores"] == {"150": {"files_in": "150", "stored_size": 64}}
    assert np.load(tmp_path / "f2" / "150" / file).shape == (6, 64, 64, 3)
    assert read_clip(tmp_path / "f2" / "150", file).shape == (6, 150, 150, 3)


def test_plan_stores():
    assert plan_stores([64, 224, 600], 240) == {64: (64, 64), 224: (224, 224), 600: (224, 224)}
    assert plan_stores([64, 600], 240) == {64: (64, 64), 600: (600, 240)}  # 64 px is too coarse
    assert plan_stores([600], 240) == {600: (600, 240)}
    assert plan_stores([64, 600], 0) == {64: (64, 64), 600: (600, 600)}


def test_extract_fails_when_too_many_clips_are_bad(synth_copy, tmp_path):
    manifest, classes = synth_manifest(synth_copy)
    for p in manifest["path"].iloc[:3]:
        (synth_copy / "UCF-101" / p).write_bytes(b"not a video")
    probed = probe_videos(list(manifest["path"]), synth_copy / "UCF-101", 1, progress=False)
    with pytest.raises(DatasetError, match="3 of 24 clips could not be decoded"):
        extract_frames(manifest, probed, classes, synth_copy / "UCF-101", [16], FRAMES,
                       tmp_path / "frames", 0.05, tmp_path / "extract.json", progress=False)
    assert json.loads((tmp_path / "extract.json").read_text())["n_excluded"] == 3


def test_extract_fails_when_a_class_loses_a_split(synth_copy, tmp_path):
    manifest, classes = synth_manifest(synth_copy)
    val_wave = manifest.loc[(manifest["class_name"] == "Wave") & (manifest["split"] == "val")]
    for p in val_wave["path"]:
        (synth_copy / "UCF-101" / p).write_bytes(b"not a video")
    probed = probe_videos(list(manifest["path"]), synth_copy / "UCF-101", 1, progress=False)
    with pytest.raises(DatasetError, match=r"split 'val' lost every clip of \['Wave'\]"):
        extract_frames(manifest, probed, classes, synth_copy / "UCF-101", [16], FRAMES,
                       tmp_path / "frames", 0.5, tmp_path / "extract.json", progress=False)


def test_real_clips_avi_and_mp4(sample_dir, tmp_path):
    manifest, classes, _ = build_manifest(sample_dir / "ucfTrainTestlist", sample_dir / "UCF-101",
                                          1, None, ["Basketball", "Biking"], 0.0, 0)
    settings = ValidateSettings(min_frames=16, max_frames=2000, min_fps=5, max_fps=60,
                                min_width=64, min_height=64, workers=2)
    passed, md = validate_dataset(manifest, classes, sample_dir / "UCF-101", settings, 0.0,
                                  tmp_path / "reports", tmp_path / "probe.csv", progress=False)
    assert passed, md.read_text()
    report = extract_frames(manifest, pd.read_csv(tmp_path / "probe.csv"), classes,
                            sample_dir / "UCF-101", [32], FRAMES, tmp_path / "frames", 0.0,
                            tmp_path / "extract.json", progress=False)
    assert report["n_extracted"] == 4
    index = pd.read_csv(tmp_path / "frames" / "32" / "index.csv")
    assert sorted(index["video"].str.split("_").str[1]) == ["Basketball"] * 2 + ["Biking"] * 2
