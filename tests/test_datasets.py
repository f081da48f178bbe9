"""Training batches (data/datasets.py: FrameSequence, epoch-exact batches that a resumed fit
serves again) and the clip augmentation applied to them inside the model
(models/layers.ClipAugmentation), on a real frame store."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from actionrec.checkpoint import EpochCheckpoint
from actionrec.config import FrameSettings
from actionrec.data.datasets import FeatureBatches, FrameSequence, SyncEpoch, split_index
from actionrec.data.frames import extract_frames
from actionrec.data.validation import probe_videos
from actionrec.models import get_architecture
from actionrec.models.layers import ClipAugmentation
from tests.helpers import synth_manifest

SIZE = 32


@pytest.fixture(scope="module")
def store(synth_dir: Path, tmp_path_factory) -> Path:
    """A frame store (T = 6, 32 px) extracted from the synthetic .avi files."""
    manifest, classes = synth_manifest(synth_dir)
    probed = probe_videos(list(manifest["path"]), synth_dir / "UCF-101", 2, progress=False)
    out = tmp_path_factory.mktemp("frames")
    extract_frames(manifest, probed, classes, synth_dir / "UCF-101", [SIZE],
                   FrameSettings(sequence_length=6, workers=2), out, 0.0, out / "report.json",
                   progress=False)
    return out / str(SIZE)


def _batch(store: Path, n: int = 8) -> np.ndarray:
    seq = FrameSequence(store, split_index(store, "train").iloc[:n], 3, n)
    return seq[0][0]


def _augment(clips: np.ndarray, seed: int, **options) -> np.ndarray:
    """What one training step's ClipAugmentation makes of ``clips``."""
    out = ClipAugmentation(**options, seed=seed)(clips, training=True)
    return keras.ops.convert_to_numpy(out)


@pytest.mark.backends
def test_flip_mirrors_whole_clips_or_leaves_them(store):
    clips = _batch(store)
    out = _augment(clips, 7, flip=True)
    assert out.shape == clips.shape and out.dtype == np.uint8
    flipped = [np.array_equal(o, c[:, :, ::-1]) for o, c in zip(out, clips, strict=True)]
    kept = [np.array_equal(o, c) for o, c in zip(out, clips, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))  # every frame of a clip alike
    assert any(flipped) and any(kept)


@pytest.mark.backends
def test_shift_and_zoom_move_every_frame_of_a_clip_alike(store):
    clips = _batch(store)
    still = np.repeat(clips[:, :1], clips.shape[1], axis=1)  # T copies of the first frame
    out = _augment(still, 3, flip=True, translation=0.2, zoom=0.2)
    assert (out == out[:, :1]).all()  # one transform per clip, the same for all its frames
    changed = [not np.array_equal(o, c) for o, c in zip(out, still, strict=True)]
    assert sum(changed) >= 6  # 8 clips: a near-identity draw is rare
    # Real frames stay images of the same scene: most pixels move by little.
    moved = np.abs(_augment(clips, 0, translation=0.05).astype(int) - clips).mean()
    assert 0 < moved < 40


@pytest.mark.backends
def test_augmentation_is_a_function_of_its_seed_and_idle_in_inference(store):
    clips = _batch(store)
    options = {"flip": True, "translation": 0.1, "zoom": 0.1}
    assert np.array_equal(_augment(clips, 11, **options), _augment(clips, 11, **options))
    assert not np.array_equal(_augment(clips, 11, **options), _augment(clips, 12, **options))
    layer = ClipAugmentation(**options, seed=11)
    first, second = (keras.ops.convert_to_numpy(layer(clips, training=True)) for _ in range(2))
    assert not np.array_equal(first, second)  # each step draws anew
    assert np.array_equal(keras.ops.convert_to_numpy(layer(clips, training=False)), clips)
    with pytest.raises(ValueError, match="zoom=0.7 is outside"):
        ClipAugmentation(zoom=0.7)


def _lrcn(seed: int = 3) -> keras.Model:
    from actionrec.models.settings import LRCNSettings
    from actionrec.training import compile_model

    keras.utils.set_random_seed(seed)
    s = LRCNSettings(image_size=SIZE, filters=[4], lstm_units=8,
                     augment={"flip": True, "translation": 0.1, "zoom": 0.1})
    model = get_architecture("lrcn").build(s, 3, 6)
    compile_model(model, 1e-3, 0.9, 0.999, 3)
    return model


class _Interrupt(keras.callbacks.Callback):
    """Stops ``fit`` at the end of epoch 0, after the EpochCheckpoint has committed it."""

    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


# Under JAX, the same at the stage: test_backends' LRCN killed and resumed ends as an
# unbroken run (the augmentation, dropout and reading threads of the tiny profile).
@pytest.mark.parametrize("workers", [0, 2])
def test_augmentation_runs_inside_fit_and_a_resumed_run_draws_as_an_unbroken_one(store,
                                                                              tmp_path,
                                                                              workers):
    """The layer is in the model (training only). Two epochs in one go, and two epochs
    interrupted after the first and resumed by the EpochCheckpoint in a new model, end
    on the same weights: the seed states of the transforms and of dropout travel with the
    committed state. Without them (weights and optimizer alone) the resumed run ends
    elsewhere. The same with batches read ahead by two threads (train.loader_workers)."""
    rows = split_index(store, "train")
    model = _lrcn()
    assert isinstance(model.get_layer("augment"), ClipAugmentation)
    clips = FrameSequence(store, rows, 3, len(rows))[0][0]
    probs = model.predict(clips, verbose=0)
    assert np.array_equal(model.predict(clips, verbose=0), probs)  # inference: no draws

    def fit(m, state, *extra, keep=EpochCheckpoint):
        seq = FrameSequence(store, rows, 3, 4, shuffle=True, seed=1, workers=workers,
                            max_queue_size=4)
        m.fit(seq, epochs=2, verbose=0, shuffle=False, callbacks=[  # as training does
            keep(state, []), SyncEpoch(seq), *extra])

    unbroken = _lrcn()
    fit(unbroken, tmp_path / "unbroken")
    with pytest.raises(KeyboardInterrupt):
        fit(_lrcn(), tmp_path / "resumed", _Interrupt())
    resumed = _lrcn()
    fit(resumed, tmp_path / "resumed")
    for a, b in zip(unbroken.get_weights(), resumed.get_weights(), strict=True):
        assert np.array_equal(a, b)
    states = [keras.ops.convert_to_numpy(m.get_layer("augment").generator.state)
              for m in (unbroken, resumed)]
    assert np.array_equal(*states) and states[0][1] > 0  # the same draws were made

    class WeightsAlone(EpochCheckpoint):  # as Keras' BackupAndRestore keeps them
        def _random_states(self):
            return []

    with pytest.raises(KeyboardInterrupt):
        fit(_lrcn(), tmp_path / "alone", _Interrupt(), keep=WeightsAlone)
    alone = _lrcn()
    fit(alone, tmp_path / "alone", keep=WeightsAlone)
    assert any(not np.array_equal(a, b)
               for a, b in zip(unbroken.get_weights(), alone.get_weights(), strict=True))


@pytest.mark.backends
def test_a_saved_model_with_augmentation_loads_in_safe_mode_and_predicts_alike(store, tmp_path):
    model = _lrcn()
    clips = _batch(store)[:, :6]
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    assert np.allclose(loaded.predict(clips, verbose=0), model.predict(clips, verbose=0),
                       atol=1e-6)


def test_sequence_batches_depend_on_seed_epoch_and_index_only(store):
    rows = split_index(store, "train")

    def seq():
        return FrameSequence(store, rows, 3, 4, shuffle=True, seed=5)

    a, b = seq(), seq()
    b.set_epoch(3)
    a.on_epoch_end(), a.on_epoch_end(), a.on_epoch_end()  # three epochs on: epoch 3
    assert np.array_equal(a[1][0], b[1][0]) and np.array_equal(a[1][1], b[1][1])
    c = seq()
    assert not np.array_equal(c[1][0], b[1][0])  # epoch 0 differs from epoch 3


def test_the_shares_of_the_processes_make_up_the_batch_one_process_serves(store):
    """Multi-host training: process k of P serves the k-th of P equal slices of every global
    batch, so the shares put together in process order are the single process's batch; the
    last batch is cut to a multiple of the devices of all processes (each needs an equal
    slice). Frames and cached features alike."""
    rows = split_index(store, "train").iloc[:11]
    n, batch, devices = len(rows), 8, 2
    assert n % batch % devices, "the store must leave a last batch that is cut"
    whole = FrameSequence(store, rows, 3, batch, shuffle=True, seed=5)
    shares = [FrameSequence(store, rows, 3, batch, shuffle=True, seed=5, shard=(k, 2),
                            devices=devices) for k in range(2)]
    for seq in (whole, *shares):
        seq.set_epoch(2)
    assert len(shares[0]) == len(shares[1]) == len(whole)
    for i in range(len(whole)):
        x, y = whole[i]
        parts = [share[i] for share in shares]
        assert parts[0][0].shape[0] == parts[1][0].shape[0]
        got = np.concatenate([p[0] for p in parts])
        if i < len(whole) - 1:
            assert np.array_equal(got, x)
            assert np.array_equal(np.concatenate([p[1] for p in parts]), y)
        else:  # the last: the first multiple of the devices of it, split in two
            keep = len(x) - len(x) % devices
            assert keep > 0 and np.array_equal(got, x[:keep])
    feats = np.arange(n * 6 * 2, dtype=np.float32).reshape(n, 6, 2)
    mask, y = np.ones((n, 6), bool), np.eye(3, dtype=np.float32)[np.arange(n) % 3]
    share = FeatureBatches(feats, mask, y, batch, shuffle=True, seed=5, shard=(1, 2),
                           devices=4)
    (f, m), label = share[0]
    assert np.array_equal(f, feats[share.order[4:8]]) and m.shape == (4, 6)
    assert np.array_equal(label, y[share.order[4:8]])
    with pytest.raises(ValueError, match="multiple of the processes"):
        FeatureBatches(feats, mask, y, batch, shard=(0, 3), devices=4)


class _Recording(FrameSequence):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.served: list[tuple[int, int]] = []

    def __getitem__(self, i):
        self.served.append((self.epoch, i))
        return super().__getitem__(i)


@pytest.mark.backends
@pytest.mark.parametrize(("sync", "workers"), [(True, 0), (False, 0), (True, 2)])
def test_a_resumed_fit_serves_the_batches_of_its_epoch(store, sync, workers):
    """``fit(initial_epoch=2)``, as after a resume, must train on epoch 2's batches,
    also when threads read them ahead (Keras starts them after SyncEpoch)."""
    seq = _Recording(store, split_index(store, "train"), 3, 4, shuffle=True, seed=1,
                     workers=workers, max_queue_size=4)
    model = keras.Sequential([keras.Input((6, SIZE, SIZE, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    model.fit(seq, epochs=3, initial_epoch=2, verbose=0, callbacks=[SyncEpoch(seq)] if sync else [])
    trained = seq.served[-len(seq):]  # the epoch's batches (Keras may peek at some first)
    assert sorted(i for _, i in trained) == list(range(len(seq)))
    served = {e for e, _ in trained}
    assert served == {2} if sync else served != {2}  # without SyncEpoch: a fresh run's epoch
