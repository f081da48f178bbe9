"""The frame store (data/frames.py) from real video: synthetic .avi and the real UCF101
sample (avi + mp4); its shards, their digests and lengths checked; a killed extraction
resumed by shard; the Ray engine against the local one; sizes above the native crop; which
stores a size set needs; the rules that fail the stage on bad clips."""

from __future__ import annotations

import json
import os

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
    settings = FRAMES.model_copy(update={"clips_per_shard": 5})
    report = extract_frames(manifest, probed, classes, synth_copy / "UCF-101", [16, 40],
                            settings, out, 0.1, tmp_path / "extract.json", progress=False)
    assert report["n_extracted"] == 23 and [e["path"] for e in report["excluded"]] == [broken]
    per_split = manifest.groupby("split").size()
    for size in (16, 40):
        index = pd.read_csv(out / str(size) / "index.csv")
        assert len(index) == 23 and broken not in set(index["video"] + ".avi")
        # each split in runs of 5 clips, in the index's order: shard k, positions 0..4
        shards = sorted(p.name for p in (out / str(size) / "shards").iterdir())
        assert shards == sorted(f"{split}-{k:05d}.npy" for split, n in per_split.items()
                                for k in range(-(-n // 5)))
        first = np.load(out / str(size) / index["shard"].iloc[0], mmap_mode="r")
        assert first.shape == (5, 6, size, size, 3) and first.dtype == np.uint8
        assert (index["n_valid"] == 6).all()
        assert not (tmp_path / ".partial").exists()  # the work folder is gone
    # The stored frames are exactly what decoding the clip gives, where the index says.
    from actionrec.data.video import load_clip

    row = pd.read_csv(out / "16" / "index.csv").iloc[5]
    src = manifest.set_index("video").loc[row["video"], "path"]
    expected, _ = load_clip(synth_copy / "UCF-101" / src, 6, 16)
    assert np.array_equal(np.load(out / "16" / row["shard"])[row["position"]], expected)
    assert np.array_equal(read_clip(out / "16", row["clip"]), expected)
    # The broken clip's slot is zeros and no row points at it.
    assert report["n_clips"] - report["n_extracted"] == 1


def test_a_corrupt_or_truncated_shard_is_named_not_read_as_zeros(synth_dir, tmp_path):
    manifest, classes = synth_manifest(synth_dir)
    probed = probe_videos(list(manifest["path"]), synth_dir / "UCF-101", 2, progress=False)
    store = tmp_path / "frames" / "16"
    extract_frames(manifest, probed, classes, synth_dir / "UCF-101", [16],
                   FRAMES.model_copy(update={"clips_per_shard": 4}), tmp_path / "frames", 0.0,
                   tmp_path / "extract.json", progress=False)
    index = pd.read_csv(store / "index.csv")
    row = index.iloc[1]
    shard = store / row["shard"]
    ok = read_clip(store, row["clip"])
    # one flipped byte inside clip 1 of its shard
    data = bytearray(shard.read_bytes())
    at = len(data) - (4 - row["position"]) * ok.nbytes + 1000
    data[at] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match=rf"shard {shard} is corrupt: clip .*{row['video']}"):
        read_clip(store, row["clip"])
    other = index[(index["shard"] == row["shard"]) & (index.index != 1)].iloc[0]
    assert read_clip(store, other["clip"]).shape == ok.shape  # the shard's other clips read
    # cut to half: refused when the shard is opened, naming it
    last = index.iloc[-1]
    cut = store / last["shard"]
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    with pytest.raises(DatasetError, match=rf"shard {cut} is truncated: \d+ of its \d+ bytes"):
        read_clip(store, last["clip"])


def test_a_killed_extraction_resumes_without_decoding_its_finished_shards(synth_dir, tmp_path):
    """The stage's process is killed (SIGKILL) after its 2nd finished shard; the rerun
    decodes only the clips of the other shards, and the store equals an unbroken run's."""
    import subprocess
    import sys

    manifest, classes = synth_manifest(synth_dir)
    probed = probe_videos(list(manifest["path"]), synth_dir / "UCF-101", 2, progress=False)
    manifest.to_csv(tmp_path / "manifest.csv", index=False)
    probed.to_csv(tmp_path / "probe.csv", index=False)
    settings = FRAMES.model_copy(update={"clips_per_shard": 3, "workers": 1})
    script = f"""
import json, sys
import pandas as pd
from pathlib import Path
import actionrec.data.frames as frames
from actionrec.config import FrameSettings
decoded = []
read = frames.read_frames
frames.read_frames = lambda path, idx: decoded.append(Path(path).name) or read(path, idx)
try:
    frames.extract_frames(pd.read_csv({str(tmp_path / 'manifest.csv')!r}),
        pd.read_csv({str(tmp_path / 'probe.csv')!r}), {classes!r},
        Path({str(synth_dir / 'UCF-101')!r}), [16, 40],
        FrameSettings(**{settings.model_dump()!r}), Path(sys.argv[1]), 0.0,
        Path(sys.argv[1] + '.json'), progress=False)
finally:
    Path(sys.argv[1] + '.decoded').write_text(json.dumps(decoded))
"""
    def run(out: str, failpoint: str | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "ACTIONREC_EXTRACT_FAILPOINT"}
        if failpoint:
            env["ACTIONREC_EXTRACT_FAILPOINT"] = failpoint
        return subprocess.run([sys.executable, "-c", script, out], env=env,
                              capture_output=True, text=True, timeout=300)

    killed = run(str(tmp_path / "frames"), "2")
    assert killed.returncode == -9, killed.stderr
    work = tmp_path / ".partial" / "frames"
    assert len(list(work.glob("*.json"))) == 2 and not (tmp_path / "frames").exists()
    resumed = run(str(tmp_path / "frames"))
    assert resumed.returncode == 0, resumed.stderr
    n_shards = sum(-(-n // 3) for n in manifest.groupby("split").size())
    assert f"resuming, 2 of {n_shards} shards already extracted" in resumed.stdout
    assert len(json.loads((tmp_path / "frames.decoded").read_text())) == 24 - 2 * 3
    assert run(str(tmp_path / "unbroken")).returncode == 0
    for size in ("16", "40"):
        a, b = tmp_path / "frames" / size, tmp_path / "unbroken" / size
        assert (a / "index.csv").read_text() == (b / "index.csv").read_text()
        for shard in (b / "shards").iterdir():
            assert (a / "shards" / shard.name).read_bytes() == shard.read_bytes()
    assert not work.exists()


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
    row = pd.read_csv(out / "150" / "index.csv").iloc[0]
    file = row["clip"]
    stored = np.load(out / "60" / row["shard"])[row["position"]]
    big = read_clip(out / "150", file)
    assert big.shape == (6, 150, 150, 3) and big.dtype == np.uint8
    assert np.array_equal(read_clip(out / "60", file), stored)
    assert np.array_equal(read_clip(out / "150", file, enlarge=False), stored)
    # Alone, a size above the native crop gets a tree stored at the native side.
    report = extract_frames(manifest, probed, classes, synth_dir / "UCF-101", [150], FRAMES,
                            tmp_path / "f2", 0.0, tmp_path / "extract.json", progress=False)
    assert report["stores"] == {"150": {"files_in": "150", "stored_size": 64}}
    assert np.load(tmp_path / "f2" / "150" / row["shard"]).shape[1:] == (6, 64, 64, 3)
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


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray cluster of two nodes (one CPU each) on 127.0.0.1, started once for this
    module (~5 s; ``ray.cluster_utils.Cluster``, Ray's own test cluster: one raylet per
    node, as ``ray start`` on two hosts): its address, for ``$RAY_ADDRESS``."""
    from actionrec.parallel import local_ray_on_loopback

    local_ray_on_loopback()  # every node on 127.0.0.1, and `localhost` resolved to it
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    assert cluster.address.startswith("127.0.0.1:")
    yield cluster.address
    cluster.shutdown()


def test_the_ray_engine_stores_the_same_frames_and_features_as_the_local_one(
        synth_copy, tmp_path, ray_cluster, monkeypatch, capsys):
    """frames.engine: ray on the two-node cluster that $RAY_ADDRESS names, against local,
    on the same clips: the frame store (Ray tasks, a clip the probe missed found bad in
    both) and then the feature store (Ray actors, one a node, each building the backbone
    once), byte for byte."""
    from actionrec.features import extract_features
    from actionrec.models.settings import VGG16BiLSTMSettings

    manifest, classes = synth_manifest(synth_copy)
    broken = manifest["path"].iloc[3]
    (synth_copy / "UCF-101" / broken).write_bytes(b"RIFF" + b"\x00" * 500)  # found in the shard
    probed = probe_videos(list(manifest["path"]), synth_copy / "UCF-101", 2, progress=False)
    probed.loc[probed["path"] == broken, ["readable", "n_frames"]] = True, 40  # the probe missed it
    stores = {}
    vgg16 = VGG16BiLSTMSettings(image_size=40, backbone={"weights": None})
    for engine, workers in (("local", 1), ("ray", 2)):
        if engine == "ray":
            monkeypatch.setenv("RAY_ADDRESS", ray_cluster)
        settings = FRAMES.model_copy(update={"clips_per_shard": 4, "engine": engine,
                                             "workers": workers})
        out = tmp_path / engine
        report = extract_frames(manifest, probed, classes, synth_copy / "UCF-101", [16, 40],
                                settings, out / "frames", 0.1, tmp_path / f"{engine}.json",
                                progress=False)
        assert [e["path"] for e in report["excluded"]] == [broken]
        extract_features("vgg16_bilstm", vgg16, out / "frames" / "40", out / "features",
                         progress=False, engine=engine, workers=workers)
        stores[engine] = {p.relative_to(out): p.read_bytes() for p in out.rglob("*")
                          if p.is_file()}
    assert stores["ray"] == stores["local"]
    shards = pd.read_csv(tmp_path / "ray" / "frames" / "40" / "index.csv")["shard"].nunique()
    assert sum(p.parts[0] == "features" for p in stores["ray"]) == 2 + shards > 6
    # the features' actors ran on both nodes of the cluster
    assert f"ray: {shards} actor calls on 2 nodes of the cluster at $RAY_ADDRESS" in \
        capsys.readouterr().out
