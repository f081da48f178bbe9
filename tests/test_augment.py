"""Training-time clip augmentation and epoch-exact batches, on a real frame store."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from actionrec.config import FrameSettings
from actionrec.data.datasets import ClipAugmenter, FrameSequence, SyncEpoch, split_index
from actionrec.data.frames import extract_frames
from actionrec.data.splits import build_manifest
from actionrec.data.validation import probe_videos

SIZE = 32


@pytest.fixture(scope="module")
def store(synth_dir: Path, tmp_path_factory) -> Path:
    """A frame store (T = 6, 32 px) extracted from the synthetic .avi files."""
    manifest, classes, _ = build_manifest(synth_dir / "ucfTrainTestlist", synth_dir / "UCF-101",
                                          1, None, ["SitDown", "StandUp", "Wave"], 0.34, 0)
    probed = probe_videos(list(manifest["path"]), synth_dir / "UCF-101", 2, progress=False)
    out = tmp_path_factory.mktemp("frames")
    extract_frames(manifest, probed, classes, synth_dir / "UCF-101", [SIZE],
                   FrameSettings(sequence_length=6, workers=2), out, 0.0, out / "report.json",
                   progress=False)
    return out / str(SIZE)


def _batch(store: Path, n: int = 8) -> np.ndarray:
    seq = FrameSequence(store, split_index(store, "train").iloc[:n], 3, n)
    return seq[0][0]


def test_flip_mirrors_whole_clips_or_leaves_them(store):
    clips = _batch(store)
    out = ClipAugmenter(flip=True)(clips, seed=7)
    assert out.shape == clips.shape and out.dtype == np.uint8
    flipped = [np.array_equal(o, c[:, :, ::-1]) for o, c in zip(out, clips, strict=True)]
    kept = [np.array_equal(o, c) for o, c in zip(out, clips, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))  # every frame of a clip alike
    assert any(flipped) and any(kept)


def test_shift_and_zoom_move_every_frame_of_a_clip_alike(store):
    clips = _batch(store)
    still = np.repeat(clips[:, :1], clips.shape[1], axis=1)  # T copies of the first frame
    out = ClipAugmenter(flip=True, translation=0.2, zoom=0.2)(still, seed=3)
    assert (out == out[:, :1]).all()  # one transform per clip, the same for all its frames
    changed = [not np.array_equal(o, c) for o, c in zip(out, still, strict=True)]
    assert sum(changed) >= 6  # 8 clips: a near-identity draw is rare
    # Real frames stay images of the same scene: most pixels move by little.
    moved = np.abs(ClipAugmenter(translation=0.05)(clips, 0).astype(int) - clips).mean()
    assert 0 < moved < 40


def test_augmentation_is_a_function_of_its_seed(store):
    clips = _batch(store)
    aug = ClipAugmenter(flip=True, translation=0.1, zoom=0.1)
    assert np.array_equal(aug(clips, 11), aug(clips, 11))
    assert not np.array_equal(aug(clips, 11), aug(clips, 12))
    assert not ClipAugmenter() and ClipAugmenter()(clips, 1) is clips


def test_sequence_batches_depend_on_seed_epoch_and_index_only(store):
    rows = split_index(store, "train")
    aug = ClipAugmenter(flip=True, translation=0.1)

    def seq():
        return FrameSequence(store, rows, 3, 4, shuffle=True, seed=5, augment=aug)

    a, b = seq(), seq()
    b.set_epoch(3)
    a.on_epoch_end(), a.on_epoch_end(), a.on_epoch_end()  # three epochs on: epoch 3
    assert np.array_equal(a[1][0], b[1][0]) and np.array_equal(a[1][1], b[1][1])
    c = seq()
    assert not np.array_equal(c[1][0], b[1][0])  # epoch 0 differs from epoch 3


class _Recording(FrameSequence):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.served: list[tuple[int, int]] = []

    def __getitem__(self, i):
        self.served.append((self.epoch, i))
        return super().__getitem__(i)


@pytest.mark.parametrize("sync", [True, False])
def test_a_resumed_fit_serves_the_batches_of_its_epoch(store, sync):
    """``fit(initial_epoch=2)``, as after BackupAndRestore, must train on epoch 2's batches."""
    seq = _Recording(store, split_index(store, "train"), 3, 4, shuffle=True, seed=1)
    model = keras.Sequential([keras.Input((6, SIZE, SIZE, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    model.fit(seq, epochs=3, initial_epoch=2, verbose=0, callbacks=[SyncEpoch(seq)] if sync else [])
    trained = seq.served[-len(seq):]  # the epoch's batches (Keras may peek at some first)
    assert sorted(i for _, i in trained) == list(range(len(seq)))
    served = {e for e, _ in trained}
    assert served == {2} if sync else served != {2}  # without SyncEpoch: a fresh run's epoch
