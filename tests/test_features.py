"""Cached backbone features (features.py): reading ahead on threads stores what the loop
stores, and that is the feature model's output on the stored frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from actionrec.config import FrameSettings
from actionrec.data.frames import extract_frames, read_clip
from actionrec.data.validation import probe_videos
from tests.helpers import synth_manifest

FRAMES = FrameSettings(sequence_length=6, workers=2)


def test_extract_features_reads_ahead_and_enlarges_in_the_model(synth_dir, tmp_path):
    """extract_features on a store kept at the clips' 64 px for InceptionV3's 75 px: with
    two reading threads it stores exactly what it stores reading in the loop, and that is
    the feature model's output on the stored frames (enlarged inside the model). No
    validation split (`data.val_fraction: 0`, as the sample profile): none is stored, and
    training gets none (it then monitors the training loss)."""
    from actionrec.features import extract_features
    from actionrec.models.heads import backbone_feature_model
    from actionrec.models.settings import InceptionV3GRUSettings
    from actionrec.training import _feature_data

    manifest, classes = synth_manifest(synth_dir, val_fraction=0.0)
    assert set(manifest["split"]) == {"train", "test"}
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
    assert not (tmp_path / "w2" / "val.npy").exists()
    data = _feature_data(tmp_path / "w2", out / "75", len(classes), 8, 0,
                         {"shard": (0, 1), "devices": 1})
    assert data.val is None and data.n_val == 0 and data.n_train == len(np.load(
        tmp_path / "w2" / "train.npy", mmap_mode="r"))
    rows = pd.read_csv(tmp_path / "w2" / "train.csv")
    clip = read_clip(out / "75", rows["clip"].iloc[0], enlarge=False)
    assert clip.shape[1] == 64  # stored at the clips' side, not at 75 px
    model = seeded(backbone_feature_model, get_architecture("inceptionv3_gru").backbone, s)
    expected = model.predict(clip, verbose=0)
    got = np.load(tmp_path / "w2" / "train.npy")[0].astype(np.float32)
    got *= np.float32(2.0 ** -metas[0]["scale_log2"])
    n = rows["n_valid"].iloc[0]
    assert np.allclose(got[:n], expected[:n], rtol=2e-3, atol=1e-3 * np.abs(expected).max())
