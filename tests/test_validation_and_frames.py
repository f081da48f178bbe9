"""The Great Expectations suite and the frame store, on real (synthetic and UCF101) video."""

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

SETTINGS = ValidateSettings(min_frames=16, max_frames=500, min_fps=5, max_fps=60, min_width=64,
                            min_height=64, workers=2)
FRAMES = FrameSettings(sequence_length=6, workers=2)


def _manifest(root, val_fraction=0.34):
    manifest, classes, _ = build_manifest(root / "ucfTrainTestlist", root / "UCF-101", 1, None,
                                          ["SitDown", "StandUp", "Wave"], val_fraction, 0)
    return manifest, classes


def test_clean_dataset_passes(synth_dir, tmp_path):
    manifest, classes = _manifest(synth_dir)
    passed, md = validate_dataset(manifest, classes, synth_dir / "UCF-101", SETTINGS, 0.0,
                                  tmp_path / "reports", tmp_path / "probe.csv", progress=False)
    assert passed, md.read_text()
    report = json.loads((tmp_path / "reports" / "validation.json").read_text())
    assert report["success"] and report["n_clips"] == 24 and len(report["results"]) >= 18
    probe = pd.read_csv(tmp_path / "probe.csv")
    assert probe["readable"].all() and probe["n_frames"].between(20, 28).all()


def test_group_in_two_splits_and_missing_class_are_reported(synth_dir, tmp_path):
    manifest, classes = _manifest(synth_dir)
    leak = manifest.index[(manifest["class_name"] == "Wave") & (manifest["split"] == "train")][0]
    manifest.loc[leak, "split"] = "test"  # one clip of a train group moved to test
    only_val = manifest.index[(manifest["class_name"] == "SitDown") & (manifest["split"] == "val")]
    manifest = manifest.drop(only_val)  # SitDown now missing from val
    passed, md = validate_dataset(manifest, classes, synth_dir / "UCF-101", SETTINGS, 0.0,
                                  tmp_path / "reports", tmp_path / "probe.csv", progress=False)
    text = md.read_text()
    assert not passed and "**FAILED**" in text
    assert "## FAIL: no group (class, gGG) has clips in two splits" in text
    group = manifest.loc[leak, "group"]
    assert f"Wave/g{group:02d}" in text  # names the offending group
    assert "## FAIL: every class has clips in val" in text and "SitDown" in text


def test_unreadable_videos_beyond_the_tolerance_fail(synth_copy, tmp_path):
    manifest, classes = _manifest(synth_copy)
    broken = manifest["path"].iloc[3]
    (synth_copy / "UCF-101" / broken).write_bytes(b"\x00" * 1000)
    # 1 of 24 = 4.2 %: fails at 2 % tolerance, passes at 5 %.
    passed, md = validate_dataset(manifest, classes, synth_copy / "UCF-101", SETTINGS, 0.02,
                                  tmp_path / "r1", tmp_path / "probe.csv", progress=False)
    assert not passed and broken in md.read_text() and "## Unreadable videos" in md.read_text()
    passed, _ = validate_dataset(manifest, classes, synth_copy / "UCF-101", SETTINGS, 0.05,
                                 tmp_path / "r2", tmp_path / "probe.csv", progress=False)
    assert passed


def test_frame_bounds_fail_with_the_rows(synth_dir, tmp_path):
    manifest, classes = _manifest(synth_dir)
    strict = SETTINGS.model_copy(update={"min_frames": 25})
    passed, md = validate_dataset(manifest, classes, synth_dir / "UCF-101", strict, 0.0,
                                  tmp_path / "reports", tmp_path / "probe.csv", progress=False)
    probe = pd.read_csv(tmp_path / "probe.csv")
    short = probe.loc[probe["n_frames"] < 25, "path"]
    assert not passed and len(short) > 0
    assert all(p in md.read_text() for p in short)


def test_extract_frames_store(synth_copy, tmp_path):
    manifest, classes = _manifest(synth_copy)
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
    manifest, classes = _manifest(synth_dir)
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


def test_extract_features_reads_ahead_and_enlarges_in_the_model(synth_dir, tmp_path):
    """extract_features on a store kept at the clips' 64 px for InceptionV3's 75 px: with
    two reading threads it stores exactly what it stores reading in the loop, and that is
    the feature model's output on the stored frames (enlarged inside the model)."""
    from actionrec.features import extract_features
    from actionrec.models.heads import backbone_feature_model
    from actionrec.models.settings import InceptionV3GRUSettings

    manifest, classes = _manifest(synth_dir)
    probed = probe_videos(list(manifest["path"]), synth_dir / "UCF-101", 2, progress=False)
    out = tmp_path / "frames"
    extract_frames(manifest, probed, classes, synth_dir / "UCF-101", [75], FRAMES, out, 0.0,
                   tmp_path / "extract.json", progress=False)
    s = InceptionV3GRUSettings(image_size=75, backbone={"weights": None,
                                                       "feature_batch_size": 12})
    import keras

    from actionrec.models import get_architecture

    def seeded(f, *args, **kwargs):  # random backbone weights: the same ones each time
        keras.utils.set_random_seed(0)
        return f(*args, **kwargs)

    metas = [seeded(extract_features, "inceptionv3_gru", s, out / "75", tmp_path / f"w{w}",
                    progress=False, workers=w) for w in (0, 2)]
    assert metas[0] == metas[1]
    for split in ("train", "test"):
        a, b = (np.load(tmp_path / f"w{w}" / f"{split}.npy") for w in (0, 2))
        assert np.array_equal(a, b) and a.shape[1:] == (FRAMES.sequence_length, 2048)
    rows = pd.read_csv(tmp_path / "w2" / "train.csv")
    clip = np.load(out / "75" / rows["file"].iloc[0])
    assert clip.shape[1] == 64  # stored at the clips' side, not at 75 px
    model = seeded(backbone_feature_model, get_architecture("inceptionv3_gru").backbone, s)
    expected = model.predict(clip, verbose=0)
    got = np.load(tmp_path / "w2" / "train.npy")[0].astype(np.float32)
    got *= np.float32(2.0 ** -metas[0]["scale_log2"])
    n = rows["n_valid"].iloc[0]
    assert np.allclose(got[:n], expected[:n], rtol=2e-3, atol=1e-3 * np.abs(expected).max())


def test_plan_stores():
    assert plan_stores([64, 224, 600], 240) == {64: (64, 64), 224: (224, 224), 600: (224, 224)}
    assert plan_stores([64, 600], 240) == {64: (64, 64), 600: (600, 240)}  # 64 px is too coarse
    assert plan_stores([600], 240) == {600: (600, 240)}
    assert plan_stores([64, 600], 0) == {64: (64, 64), 600: (600, 600)}


def test_extract_fails_when_too_many_clips_are_bad(synth_copy, tmp_path):
    manifest, classes = _manifest(synth_copy)
    for p in manifest["path"].iloc[:3]:
        (synth_copy / "UCF-101" / p).write_bytes(b"not a video")
    probed = probe_videos(list(manifest["path"]), synth_copy / "UCF-101", 1, progress=False)
    with pytest.raises(DatasetError, match="3 of 24 clips could not be decoded"):
        extract_frames(manifest, probed, classes, synth_copy / "UCF-101", [16], FRAMES,
                       tmp_path / "frames", 0.05, tmp_path / "extract.json", progress=False)
    assert json.loads((tmp_path / "extract.json").read_text())["n_excluded"] == 3


def test_extract_fails_when_a_class_loses_a_split(synth_copy, tmp_path):
    manifest, classes = _manifest(synth_copy)
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
    settings = SETTINGS.model_copy(update={"max_frames": 2000})
    passed, md = validate_dataset(manifest, classes, sample_dir / "UCF-101", settings, 0.0,
                                  tmp_path / "reports", tmp_path / "probe.csv", progress=False)
    assert passed, md.read_text()
    report = extract_frames(manifest, pd.read_csv(tmp_path / "probe.csv"), classes,
                            sample_dir / "UCF-101", [32], FRAMES, tmp_path / "frames", 0.0,
                            tmp_path / "extract.json", progress=False)
    assert report["n_extracted"] == 4
    index = pd.read_csv(tmp_path / "frames" / "32" / "index.csv")
    assert sorted(index["video"].str.split("_").str[1]) == ["Basketball"] * 2 + ["Biking"] * 2
