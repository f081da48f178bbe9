"""The feature store (features.py, FeatureStore): one shard of features per frame shard,
what the feature model computes on the stored frames; reading ahead on threads stores the
same bytes; a corrupt feature shard named; a killed extraction resumed by shard. (The Ray
engine against the local one: test_frames, which starts Ray once.)"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from actionrec.config import FrameSettings
from actionrec.data.frames import extract_frames, read_clip
from actionrec.data.validation import probe_videos
from actionrec.errors import DatasetError
from tests.helpers import synth_manifest

FRAMES = FrameSettings(sequence_length=6, workers=2, clips_per_shard=5)
ARCH = "inceptionv3_gru"


def _settings():
    from actionrec.models.settings import InceptionV3GRUSettings

    # 12 frames a backbone call: 2 clips, so a shard of 5 ends on a call of 1
    return InceptionV3GRUSettings(image_size=75, backbone={"weights": None,
                                                           "feature_batch_size": 12})


@pytest.fixture(scope="module")
def frame_store(synth_dir, tmp_path_factory):
    """Frames at the clips' 64 px in shards of 5, for InceptionV3's 75 px; no validation
    split (`data.val_fraction: 0`, as the sample profile)."""
    manifest, classes = synth_manifest(synth_dir, val_fraction=0.0)
    assert set(manifest["split"]) == {"train", "test"}
    probed = probe_videos(list(manifest["path"]), synth_dir / "UCF-101", 2, progress=False)
    out = tmp_path_factory.mktemp("features") / "frames"
    extract_frames(manifest, probed, classes, synth_dir / "UCF-101", [75], FRAMES, out, 0.0,
                   out.parent / "extract.json", progress=False)
    return out / "75", len(classes)


@pytest.fixture(scope="module")
def features(frame_store):
    """The frame store's features, two reading threads ahead of the backbone."""
    from actionrec.features import extract_features

    out = frame_store[0].parent.parent / "features"
    return out, extract_features(ARCH, _settings(), frame_store[0], out, progress=False,
                                 readers=2)


def test_a_feature_shard_per_frame_shard_holds_the_feature_models_output(frame_store, features,
                                                                         tmp_path):
    """Each frame shard gets a feature shard of the same name, its clips in index order;
    read back (FeatureStore), a clip's features are the feature model's output on its
    stored frames (enlarged inside the model), padding zero. Two reading threads store
    exactly what reading in the loop stores. Training gets no validation split when there
    is none (it then monitors the training loss)."""
    from actionrec.data.datasets import FeatureStore
    from actionrec.data.frames import open_store
    from actionrec.features import extract_features, feature_model
    from actionrec.training import _feature_data

    frames, n_classes = frame_store
    b, meta = features
    a = tmp_path / "in-the-loop"
    assert extract_features(ARCH, _settings(), frames, a, progress=False, readers=0) == meta
    assert meta["feature_dim"] == 2048
    frame_index = pd.read_csv(frames / "index.csv")
    index = pd.read_csv(b / "index.csv")
    assert (index.drop(columns=["position", "xxh3"]).equals(
        frame_index.drop(columns=["position", "xxh3"])))
    assert sorted(p.name for p in (b / "shards").iterdir()) == sorted(
        p.name for p in (frames / "shards").iterdir())
    for shard in (b / "shards").iterdir():
        assert (a / "shards" / shard.name).read_bytes() == shard.read_bytes()
    assert not (tmp_path / ".partial").exists() and not (b.parent / ".partial").exists()

    row = index[index["position"] == 1].iloc[1]  # a clip inside the second shard
    clip = read_clip(frames, row["clip"], enlarge=False)
    assert clip.shape[1] == 64  # stored at the clips' side, not at 75 px
    expected = feature_model(ARCH, _settings()).predict(clip, verbose=0)
    store = open_store(b, FeatureStore)
    got, mask = store.batch([row["clip"]], np.array([row["n_valid"]]))
    n = row["n_valid"]
    assert mask[0].sum() == n and not got[0, n:].any()
    assert np.allclose(got[0, :n], expected[:n], rtol=2e-3, atol=1e-3 * np.abs(expected).max())

    data = _feature_data(b, frames, n_classes, 8, 0, {"shard": (0, 1), "devices": 1})
    assert data.val is None and data.n_val == 0
    assert data.n_train == (index["split"] == "train").sum()

    # one flipped byte in a feature shard (of the in-the-loop copy): named, with the stage
    # that rebuilds it
    store = open_store(a, FeatureStore)
    shard = a / row["shard"]
    raw = bytearray(shard.read_bytes())
    n_in_shard = (index["shard"] == row["shard"]).sum()
    raw[len(raw) - (n_in_shard - row["position"]) * got[0].size * 2 + 100] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match=rf"shard {shard} is corrupt: .*extract_features@{ARCH}"):
        store.batch([row["clip"]], np.array([n]))


#: The killed run, in a process of its own (the failpoint kills it with SIGKILL).
SCRIPT = """
import sys
from pathlib import Path
from actionrec.features import extract_features
from actionrec.models.settings import InceptionV3GRUSettings
extract_features("inceptionv3_gru", InceptionV3GRUSettings.model_validate_json(sys.argv[3]),
                 Path(sys.argv[1]), Path(sys.argv[2]), progress=False)
"""


def test_a_killed_feature_extraction_resumes_without_its_finished_shards(frame_store, features,
                                                                        tmp_path, monkeypatch,
                                                                        capsys):
    """Killed (SIGKILL) after its first finished shard, the rerun (in this process) runs the
    backbone over the other shards' clips only (and the first batch again, which sets the
    scale), and its store equals an unbroken run's byte for byte."""
    import actionrec.features as extraction

    frames, _ = frame_store
    index = pd.read_csv(frames / "index.csv")
    out = tmp_path / "features"
    env = {**os.environ, "ACTIONREC_EXTRACT_FAILPOINT": "1"}
    killed = subprocess.run([sys.executable, "-c", SCRIPT, str(frames), str(out),
                             _settings().model_dump_json()], env=env, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    work = tmp_path / ".partial" / "features"
    assert len(list(work.glob("*.json"))) == 1 and not out.exists()

    computed = []
    raw = extraction._raw_features
    monkeypatch.setattr(extraction, "_raw_features",
                        lambda model, clips: computed.append(len(clips)) or raw(model, clips))
    monkeypatch.delenv("ACTIONREC_EXTRACT_FAILPOINT", raising=False)
    extraction.extract_features(ARCH, _settings(), frames, out, progress=False)
    n_shards = index["shard"].nunique()
    assert f"resuming, 1 of {n_shards} shards already extracted" in capsys.readouterr().out
    first_shard = (index["shard"] == index["shard"].iloc[0]).sum()
    assert sum(computed) == 2 + len(index) - first_shard  # the scale's batch, then the rest
    unbroken = features[0]
    for name in ("index.csv", "meta.json"):
        assert (out / name).read_text() == (unbroken / name).read_text()
    for shard in (unbroken / "shards").iterdir():
        assert (out / "shards" / shard.name).read_bytes() == shard.read_bytes()
    assert not work.exists()
