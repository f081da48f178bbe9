"""Recurrent heads over per-frame backbone features, and their assembly with the backbone."""

from __future__ import annotations

from actionrec.models import Architecture
from actionrec.models.settings import BackboneSettings


def build_recurrent_head(s: BackboneSettings, num_classes: int, sequence_length: int,
                         feature_dim: int, name: str):
    """``[(N, T, D) features, (N, T) bool mask]`` -> ``(N, C)`` softmax.

    Stack: optional LayerNormalization; one recurrent layer per ``s.units`` (GRU or
    LSTM by ``s.cell``, Bidirectional when ``s.bidirectional``; the mask skips padded
    frames); Dropout; optional Dense(``dense_units``, ReLU, L2) + Dropout; Dense
    softmax. Defaults per architecture: see :mod:`actionrec.models.settings`.
    """
    import keras
    from keras import layers

    features = keras.Input((sequence_length, feature_dim), name="features")
    mask = keras.Input((sequence_length,), dtype="bool", name="mask")
    reg = keras.regularizers.L2(s.l2) if s.l2 else None
    x = layers.LayerNormalization(name="feature_norm")(features) if s.layer_norm else features
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
    """Backbone + head as one model: ``(N, T, S, S, 3)`` uint8 RGB frames -> ``(N, C)``.

    The backbone (frozen unless ``s.backbone.fine_tune_layers``) runs on all ``N * T`` frames
    at once (:class:`~actionrec.models.layers.MergeTime`); the mask comes from the
    frames (all-zero = padding).
    """
    import keras
    from keras import layers

    from actionrec.models.backbones import build_backbone
    from actionrec.models.layers import BackbonePreprocess, FrameMask, MergeTime, SplitTime

    size = s.image_size
    frames = keras.Input((sequence_length, size, size, 3), dtype="uint8", name="frames")
    backbone = build_backbone(backbone_name, size, s.backbone.weights)
    n_top = s.backbone.fine_tune_layers
    backbone.trainable = bool(n_top)
    if n_top:
        top = backbone.layers[-n_top:]
        for layer in backbone.layers:
            # BatchNormalization stays frozen: its statistics come from ImageNet.
            layer.trainable = layer in top and not isinstance(layer, layers.BatchNormalization)
    x = BackbonePreprocess(backbone_name, name="preprocess")(frames)
    x = MergeTime(name="merge_time")(x)
    x = backbone(x)
    x = SplitTime(sequence_length, name="split_time")(x)
    mask = FrameMask(name="frame_mask")(frames)
    out = head([x, mask])
    return keras.Model(frames, out, name=name)


def backbone_feature_model(backbone_name: str, s: BackboneSettings):
    """Preprocess + frozen backbone: ``(N, S, S, 3)`` uint8 frames -> ``(N, D)`` float32."""
    import keras

    from actionrec.models.backbones import build_backbone
    from actionrec.models.layers import BackbonePreprocess

    frames = keras.Input((s.image_size, s.image_size, 3), dtype="uint8", name="frame")
    backbone = build_backbone(backbone_name, s.image_size, s.backbone.weights)
    backbone.trainable = False
    out = backbone(BackbonePreprocess(backbone_name)(frames), training=False)
    return keras.Model(frames, out, name=f"{backbone_name}_features")


def backbone_architecture(name: str, backbone: str, settings: type[BackboneSettings],
                          design: str) -> Architecture:
    """An :class:`Architecture` made of a frozen ``backbone`` and :func:`build_recurrent_head`.

    ``build(s, num_classes, sequence_length, head=None)`` assembles the whole network
    around ``head`` (a trained one, or a new one when ``None``).
    """

    def build_head(s: BackboneSettings, num_classes: int, sequence_length: int,
                   feature_dim: int):
        return build_recurrent_head(s, num_classes, sequence_length, feature_dim, name)

    def build(s: BackboneSettings, num_classes: int, sequence_length: int, head=None):
        from actionrec.models.backbones import BACKBONES

        if head is None:
            head = build_head(s, num_classes, sequence_length, BACKBONES[backbone].feature_dim)
        return assemble(backbone, s, head, sequence_length, name)

    return Architecture(name=name, settings=settings, build=build, backbone=backbone,
                        build_head=build_head, design=design)
