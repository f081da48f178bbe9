"""Recurrent heads over per-frame backbone features, and their assembly with the backbone."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from actionrec.models.registry import Architecture
from actionrec.models.settings import BackboneSettings


def storage_scale_log2(features: np.ndarray) -> int:
    """The power of two ``k`` that brings the RMS of ``features`` near 1: ``round(-log2(rms))``.

    Args:
        features: ``(..., D)`` float backbone features (any sample of the store's values).

    Returns:
        ``k`` clipped to ``[-14, 24]`` (float16 holds up to 65504; float32 features of an
        ImageNet backbone are of order 1, of a random one down to about 1e-7); 0 when all
        values are zero.
    """
    rms = float(np.sqrt(np.mean(np.square(features, dtype=np.float64)))) if features.size else 0.0
    return _scale_for_rms(rms)


def _scale_for_rms(rms: float) -> int:
    if rms == 0.0 or not np.isfinite(rms):
        return 0
    return int(np.clip(round(-np.log2(rms)), -14, 24))


@dataclass(frozen=True)
class FeatureStats:
    """Per-dimension statistics of the training features, frozen into the head.

    Attributes:
        scale_log2: ``k`` with ``2**k * features`` of RMS near 1 (exact in float32).
        mean: ``(D,)`` float64 mean of the scaled features over valid frames.
        variance: ``(D,)`` float64 variance of the same; a dimension that is constant on
            the training split (a dead ReLU unit: half of a random InceptionV3's) gets 1,
            so it passes through unamplified instead of being divided by ~0.
    """

    scale_log2: int
    mean: np.ndarray
    variance: np.ndarray


def feature_stats(features: np.ndarray, mask: np.ndarray) -> FeatureStats:
    """:class:`FeatureStats` of ``(N, T, D)`` float features over the frames where the
    ``(N, T)`` bool ``mask`` is True (padded frames are left out): :func:`streamed_feature_stats`
    of one chunk.

    Raises:
        ValueError: ``mask`` selects no frame.
    """
    return streamed_feature_stats(lambda: [(features, mask)])


def _running_sum(total: np.ndarray | None, rows: np.ndarray) -> np.ndarray:
    """``total + rows[0] + rows[1] + ...`` in that order (float64 ``(D,)``): NumPy sums an
    ``(M, D)`` array over its first axis row after row, so a sum carried over chunks is the
    whole array's sum, bit for bit."""
    if total is None:
        return rows.sum(axis=0)
    return np.add.reduce(np.concatenate([total[None], rows]), axis=0)


def streamed_feature_stats(chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]]
                           ) -> FeatureStats:
    """:class:`FeatureStats` of features that come in chunks: ``chunks()`` yields ``(features
    (n, T, D) float, mask (n, T) bool)`` pairs, the same ones each call, and is called twice
    (the mean, then the variance about it: NumPy's two-pass ``var``), so memory holds one
    chunk, not the split. The result equals the statistics of all chunks put together
    (float64 sums in the same order); ``scale_log2`` is :func:`storage_scale_log2`'s.

    Raises:
        ValueError: no mask selects a frame.
    """
    total, squares, n = None, 0.0, 0
    for features, mask in chunks():
        valid = np.asarray(features, np.float64)[np.asarray(mask, bool)]
        if len(valid):
            total, n = _running_sum(total, valid), n + len(valid)
            squares += float(np.square(valid).sum())
    if total is None:
        raise ValueError("no valid frame to compute feature statistics from")
    k = _scale_for_rms(float(np.sqrt(squares / total.size / n)))
    mean = total * 2.0 ** k / n
    spread = None
    for features, mask in chunks():
        valid = np.asarray(features, np.float64)[np.asarray(mask, bool)]
        if len(valid):
            spread = _running_sum(spread, np.square(valid * 2.0 ** k - mean))
    variance = spread / n
    variance[variance < 1e-12] = 1.0  # constant on the training split: leave it alone
    return FeatureStats(k, mean, variance)


def build_recurrent_head(s: BackboneSettings, num_classes: int, sequence_length: int,
                         feature_dim: int, name: str, stats: FeatureStats | None = None):
    """``[(N, T, D) features, (N, T) bool mask]`` -> ``(N, C)`` softmax.

    Stack: with ``stats``, the features are standardised per dimension with the training
    split's statistics (``Rescaling(2**k)`` then ``Normalization(mean, variance)``: fixed
    layers, saved with the model, so the assembled network on frames does the same);
    optional LayerNormalization; one recurrent layer per ``s.units`` (GRU or LSTM by
    ``s.cell``, Bidirectional when ``s.bidirectional``; the mask skips padded frames);
    Dropout; optional Dense(``dense_units``, ReLU, L2) + Dropout; Dense softmax.
    Defaults per architecture: see :mod:`actionrec.models.settings`.
    """
    import keras
    from keras import layers

    features = keras.Input((sequence_length, feature_dim), name="features")
    mask = keras.Input((sequence_length,), dtype="bool", name="mask")
    reg = keras.regularizers.L2(s.l2) if s.l2 else None
    x = features
    if stats is not None:
        x = layers.Rescaling(2.0 ** stats.scale_log2, name="feature_scale")(x)
        x = layers.Normalization(mean=stats.mean.tolist(), variance=stats.variance.tolist(),
                                 name="feature_standardize")(x)
    x = layers.LayerNormalization(name="feature_norm")(x) if s.layer_norm else x
    cell = {"gru": layers.GRU, "lstm": layers.LSTM}[s.cell]
    for i, units in enumerate(s.units):
        last = i == len(s.units) - 1
        rnn = cell(units, return_sequences=not last, name=f"{s.cell}_{i + 1}")
        if s.bidirectional:
            rnn = layers.Bidirectional(rnn, name=f"bi{s.cell}_{i + 1}")
        x = rnn(x, mask=mask if i == 0 else None)
    x = layers.Dropout(s.dropout, name="dropout")(x)
    if s.dense_units:
        x = layers.Dense(s.dense_units, activation="relu", kernel_regularizer=reg,
                         name="dense")(x)
        if s.dense_dropout:
            x = layers.Dropout(s.dense_dropout, name="dense_dropout")(x)
    out = layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model([features, mask], out, name=f"{name}_head")


def assemble(backbone_name: str, s: BackboneSettings, head, sequence_length: int, name: str):
    """Backbone + head as one model: ``(N, T, H, W, 3)`` uint8 RGB frames -> ``(N, C)``.

    Frames of any side are brought to ``S = s.image_size`` inside the model
    (:class:`~actionrec.models.layers.ResizeFrames`; frames already at ``S``, what
    ``predict`` and serving send, pass unchanged), so the frame store's 224 px frames feed
    a 600 px backbone with no host resize, exactly as ``extract_features`` fed it. The
    backbone (frozen unless ``s.backbone.fine_tune_layers``) runs on all ``N * T`` frames
    at once (:class:`~actionrec.models.layers.MergeTime`); the mask comes from the
    frames (all-zero = padding).
    """
    import keras
    from keras import layers

    from actionrec.models.backbones import build_backbone
    from actionrec.models.layers import (
        BackbonePreprocess,
        FrameMask,
        MergeTime,
        ResizeFrames,
        SplitTime,
        augment_frames,
    )

    size = s.image_size
    frames = keras.Input((sequence_length, None, None, 3), dtype="uint8", name="frames")
    backbone = build_backbone(backbone_name, size, s.backbone.weights)
    n_top = s.backbone.fine_tune_layers
    backbone.trainable = bool(n_top)
    if n_top:
        top = backbone.layers[-n_top:]
        for layer in backbone.layers:
            # BatchNormalization stays frozen: its statistics come from ImageNet.
            layer.trainable = layer in top and not isinstance(layer, layers.BatchNormalization)
    x = ResizeFrames(size, name="resize")(frames)
    x = augment_frames(x, s.augment)  # fine-tuning on frames only (settings check)
    x = BackbonePreprocess(backbone_name, name="preprocess")(x)
    x = MergeTime(name="merge_time")(x)
    x = backbone(x)
    x = SplitTime(sequence_length, name="split_time")(x)
    mask = FrameMask(name="frame_mask")(frames)
    out = head([x, mask])
    return keras.Model(frames, out, name=name)


def backbone_feature_model(backbone_name: str, s: BackboneSettings):
    """Resize + preprocess + frozen backbone: ``(N, H, W, 3)`` uint8 frames of any side ->
    ``(N, D)`` float32, the frames brought to ``S = s.image_size`` on the device
    (:class:`~actionrec.models.layers.ResizeFrames`, as in :func:`assemble`)."""
    import keras

    from actionrec.models.backbones import build_backbone
    from actionrec.models.layers import BackbonePreprocess, ResizeFrames

    frames = keras.Input((None, None, 3), dtype="uint8", name="frame")
    backbone = build_backbone(backbone_name, s.image_size, s.backbone.weights)
    backbone.trainable = False
    x = ResizeFrames(s.image_size, name="resize")(frames)
    out = backbone(BackbonePreprocess(backbone_name)(x), training=False)
    return keras.Model(frames, out, name=f"{backbone_name}_features")


def backbone_architecture(name: str, backbone: str, settings: type[BackboneSettings],
                          design: str) -> Architecture:
    """An :class:`Architecture` made of a frozen ``backbone`` and :func:`build_recurrent_head`.

    ``build(s, num_classes, sequence_length, head=None)`` assembles the whole network
    around ``head`` (a trained one, or a new one without feature statistics when
    ``None``); ``build_head(s, num_classes, sequence_length, feature_dim, stats=None)``.
    """

    def build_head(s: BackboneSettings, num_classes: int, sequence_length: int,
                   feature_dim: int, stats: FeatureStats | None = None):
        return build_recurrent_head(s, num_classes, sequence_length, feature_dim, name, stats)

    def build(s: BackboneSettings, num_classes: int, sequence_length: int, head=None):
        from actionrec.models.backbones import BACKBONES

        if head is None:
            head = build_head(s, num_classes, sequence_length, BACKBONES[backbone].feature_dim)
        return assemble(backbone, s, head, sequence_length, name)

    return Architecture(name=name, settings=settings, build=build, backbone=backbone,
                        build_head=build_head, design=design)
