"""The five architectures: shapes, safe-mode save/load, the cached-feature path, offline weights."""

from __future__ import annotations

import socket

import keras
import numpy as np
import pytest

from actionrec.errors import ConfigError
from actionrec.models import REGISTRY, SETTINGS, get_architecture
from actionrec.models import settings as S
from actionrec.models.backbones import WEIGHTS_HOST, build_backbone
from actionrec.models.heads import backbone_feature_model, feature_stats, storage_scale_log2

T, C = 6, 3
TINY = {
    "lrcn": S.LRCNSettings(image_size=32),
    "convlstm": S.ConvLSTMSettings(image_size=32, filters=[4, 8]),
    "inceptionv3_gru": S.InceptionV3GRUSettings(image_size=75, backbone={"weights": None}),
    "efficientnetb7_lstm": S.EfficientNetB7LSTMSettings(image_size=32, backbone={"weights": None}),
    "vgg16_bilstm": S.VGG16BiLSTMSettings(image_size=32, backbone={"weights": None}),
}


def _clips(size: int, n: int = 2, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, T, size, size, 3), dtype=np.uint8)


def test_registry_holds_the_five_and_each_model_file_registers_its_own():
    from actionrec.config import ARCHITECTURES, ModelsSettings

    assert list(SETTINGS) == list(TINY) == list(ARCHITECTURES) == list(ModelsSettings.model_fields)
    for name in TINY:
        arch = get_architecture(name)  # imports actionrec/models/<name>.py
        assert arch.name == name and arch.settings is SETTINGS[name] and REGISTRY[name] is arch
    with pytest.raises(KeyError, match="known"):
        get_architecture("resnet_lstm")


def test_a_model_file_must_use_its_registered_settings_class():
    from actionrec.models.registry import Architecture, register, settings_for

    with pytest.raises(ValueError, match="settings_for"):
        register(Architecture(name="not_in_settings", settings=S.LRCNSettings, build=print))
    with pytest.raises(ValueError, match="two settings classes"):
        settings_for("lrcn")(S.ConvLSTMSettings)


@pytest.mark.backends
@pytest.mark.parametrize("name", ["lrcn", "convlstm", "vgg16_bilstm"])
def test_build_predict_save_load_safe_mode(name, tmp_path):
    arch, s = get_architecture(name), TINY[name]
    model = arch.build(s, C, T)
    side = None if arch.backbone else s.image_size  # backbones resize frames of any side
    assert model.input_shape == (None, T, side, side, 3)
    x = _clips(s.image_size)
    probs = model.predict(x, verbose=0)
    assert probs.shape == (2, C) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert np.allclose(loaded.predict(x, verbose=0), probs, atol=1e-6)


# InceptionV3 and VGG16; VGG16 under JAX too (`backends`; InceptionV3 there took 28 s
# for the same code of ours, and test_backends extracts its features under JAX).
# EfficientNetB7's whole network goes through that code too (backbone_feature_model, the
# enlarging layer, the head); building B7 twice took 56 s here, and test_tiny_run checks
# its saved whole network against its head on the tiny run's cached features (float16
# storage of 1e-6 features included).
@pytest.mark.parametrize("name", [
    "inceptionv3_gru",
    pytest.param("vgg16_bilstm", marks=pytest.mark.backends)])
def test_whole_network_equals_head_on_cached_features(name):
    """The model saved after training (backbone + head on frames) computes what the
    head computed on the features cached by extract_features, padding included; also on
    frames stored smaller than the backbone's size (as EfficientNetB7's 600 px are read
    from 224 px frames), which both enlarge on the device alike."""
    arch, s = get_architecture(name), TINY[name]
    extractor = backbone_feature_model(arch.backbone, s)
    full = None
    for side in (s.image_size, s.image_size * 3 // 4):
        x = _clips(side)
        x[1, 4:] = 0  # clip 1 is padded after 4 frames
        feats = extractor.predict(x.reshape(-1, *x.shape[2:]), verbose=0).reshape(2, T, -1)
        mask = np.arange(T)[None] < np.array([[T], [4]])
        # What extract_features stores (float16 times 2**k) and FeatureStore gives back.
        k = storage_scale_log2(feats[mask])
        stored = np.where(mask[..., None], feats * 2.0 ** k, 0).astype(np.float16)
        feats = stored.astype(np.float32) * np.float32(2.0 ** -k)
        if full is None:  # one head, as training fits it on the stored frames' features
            head = arch.build_head(s, C, T, extractor.output_shape[-1],
                                   feature_stats(feats, mask))
            full = arch.build(s, C, T, head=head)
        via_features = head.predict([feats, mask], verbose=0)
        via_frames = full.predict(x, verbose=0)
        assert np.allclose(via_frames, via_features, atol=2e-3), side
    backbone = next(layer for layer in full.layers
                    if isinstance(layer, keras.Model) and not layer.name.endswith("_head"))
    assert not backbone.trainable_weights  # frozen


def test_feature_stats_scale_by_a_power_of_two_and_spare_constant_dimensions():
    """Features of 1e-6 (a random EfficientNetB7's) come out standardised; a dimension
    that is constant on the training frames is passed through, not divided by ~0."""
    rng = np.random.default_rng(0)
    feats = (rng.normal(3.0, 2.0, size=(5, T, 4)) * 1e-6).astype(np.float32)
    feats[..., 3] = 7e-7  # a constant (dead) unit
    mask = np.ones((5, T), bool)
    mask[0, 3:] = False
    feats[0, 3:] = 0.0  # padding does not count
    stats = feature_stats(feats, mask)
    assert 2.0 ** stats.scale_log2 * 1e-6 == pytest.approx(2.0 ** round(-np.log2(
        np.sqrt(np.mean(np.square(feats[mask], dtype=np.float64))))) * 1e-6)
    assert stats.variance[3] == 1.0
    head = get_architecture("inceptionv3_gru").build_head(TINY["inceptionv3_gru"], C, T, 4, stats)
    standardized = keras.Model(head.inputs[0], head.get_layer("feature_standardize").output)
    z = standardized.predict(feats, verbose=0)[mask]
    assert np.allclose(z[:, :3].mean(axis=0), 0, atol=1e-4)
    assert np.allclose(z[:, :3].std(axis=0), 1, atol=1e-3)
    assert np.allclose(z[:, 3], 0, atol=1e-6)
    assert storage_scale_log2(np.zeros(3)) == 0


def _whole_split_stats(feats: np.ndarray, mask: np.ndarray):
    """The statistics as computed before they were streamed: the split whole in memory."""
    valid = np.asarray(feats, np.float64)[mask]
    scaled = valid * 2.0 ** storage_scale_log2(valid)
    variance = scaled.var(axis=0)
    variance[variance < 1e-12] = 1.0
    return storage_scale_log2(valid), scaled.mean(axis=0), variance


def test_feature_statistics_streamed_in_chunks_equal_the_whole_splits_bit_for_bit():
    """Training reads its features a batch at a time (a Kinetics-sized split does not fit
    in memory); the head's standardisation statistics, summed over the chunks, are those
    of the whole split in memory, bit for bit, for any chunk size, padding left out."""
    from actionrec.models.heads import streamed_feature_stats

    rng = np.random.default_rng(3)
    feats = (rng.gamma(2.0, 1.5, size=(203, T, 64)) * 3e-5).astype(np.float32)
    mask = np.arange(T)[None] < rng.integers(1, T + 1, size=203)[:, None]
    feats[~mask] = 0
    k, mean, variance = _whole_split_stats(feats, mask)
    for size in (1, 7, 64, 203):
        stats = streamed_feature_stats(lambda size=size: (
            (feats[i:i + size], mask[i:i + size]) for i in range(0, len(feats), size)))
        assert stats.scale_log2 == k
        assert np.array_equal(stats.mean, mean) and np.array_equal(stats.variance, variance)
    with pytest.raises(ValueError, match="no valid frame"):
        streamed_feature_stats(lambda: [(feats[:2], np.zeros((2, T), bool))])


@pytest.mark.backends
def test_head_ignores_padded_frames():
    s = TINY["inceptionv3_gru"]
    head = get_architecture("inceptionv3_gru").build_head(s, C, T, 16)
    feats = np.random.default_rng(0).normal(size=(1, T, 16)).astype(np.float32)
    mask = np.array([[True] * 4 + [False] * 2])
    noisy = feats.copy()
    noisy[0, 4:] = 99.0  # whatever sits in masked slots must not matter
    assert np.allclose(head.predict([feats, mask], verbose=0),
                       head.predict([noisy, mask], verbose=0), atol=1e-6)


def test_fine_tuning_unfreezes_only_the_top_layers():
    # VGG16's last layers: block5_conv2, block5_conv3, block5_pool, global average pooling.
    s = S.VGG16BiLSTMSettings(image_size=32, backbone={"weights": None, "fine_tune_layers": 4})
    model = get_architecture("vgg16_bilstm").build(s, C, T)
    backbone = next(layer for layer in model.layers if layer.name == "vgg16")
    trainable = {w.path.split("/")[0] for w in backbone.trainable_weights}
    assert trainable == {"block5_conv2", "block5_conv3"}
    frozen = get_architecture("vgg16_bilstm").build(TINY["vgg16_bilstm"], C, T)
    assert not next(la for la in frozen.layers if la.name == "vgg16").trainable_weights


def test_backbone_minimum_size_and_missing_local_weights(tmp_path):
    with pytest.raises(ConfigError, match="needs image_size >= 75"):
        build_backbone("inceptionv3", 64, None)
    with pytest.raises(ConfigError, match="weights file .* not found"):
        build_backbone("vgg16", 32, str(tmp_path / "nope.h5"))


@pytest.mark.backends
def test_local_weights_file_is_loaded(tmp_path):
    ref = build_backbone("vgg16", 32, None)
    weights = tmp_path / "vgg16.weights.h5"
    for w in ref.weights:
        w.assign(np.full(w.shape, 0.01, w.dtype))
    ref.save_weights(weights)
    loaded = build_backbone("vgg16", 32, str(weights))
    assert all(np.allclose(a, 0.01) for a in loaded.get_weights())


def test_imagenet_weights_offline_fail_fast_with_the_file_name(tmp_path, monkeypatch):
    try:
        socket.getaddrinfo(WEIGHTS_HOST, 443)
        pytest.skip(f"{WEIGHTS_HOST} resolves here: the download would really start")
    except socket.gaierror:
        pass
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(ConfigError) as info:
        build_backbone("efficientnetb7", 32, "imagenet")
    msg = str(info.value)
    assert "efficientnetb7_notop.h5" in msg and str(tmp_path / "models") in msg
    assert "null" in msg


@pytest.mark.backends
def test_resize_frames_passes_frames_at_size_unchanged_and_enlarges_like_opencv():
    """``ResizeFrames``: frames already at the size come back bit for bit (what predict
    sends the whole network); smaller ones are enlarged as the frame store's host resize
    did (OpenCV ``INTER_LINEAR``), within one grey level; rank 4 and 5, uint8 kept."""
    import cv2

    from actionrec.models.layers import ResizeFrames

    x = _clips(24)
    same = keras.ops.convert_to_numpy(ResizeFrames(24)(x))
    assert same.dtype == np.uint8 and np.array_equal(same, x)
    big = keras.ops.convert_to_numpy(ResizeFrames(40)(x))
    assert big.shape == (2, T, 40, 40, 3) and big.dtype == np.uint8
    ref = np.stack([[cv2.resize(f, (40, 40), interpolation=cv2.INTER_LINEAR) for f in clip]
                    for clip in x])
    assert np.abs(big.astype(int) - ref).max() <= 1
    flat = keras.ops.convert_to_numpy(ResizeFrames(40)(x[0]))
    assert np.array_equal(flat, big[0])
