"""Custom layers, registered so that ``keras.models.load_model(..., safe_mode=True)`` loads them.

``keras.layers.Lambda`` would not load in safe mode; these small named layers do.
Written with ``keras.ops`` only, so they run under any Keras 3 backend.
"""

from __future__ import annotations

import keras
from keras import ops

from actionrec.models.backbones import BACKBONES


@keras.saving.register_keras_serializable(package="actionrec")
class BackbonePreprocess(keras.layers.Layer):
    """Apply a backbone's own ``preprocess_input`` to RGB frames in ``[0, 255]``.

    Input ``(..., H, W, 3)`` uint8 or float RGB, any rank; output float32 in the range the
    backbone was trained on (InceptionV3: ``[-1, 1]``; VGG16: BGR minus the ImageNet
    mean; EfficientNet: unchanged, it rescales inside). Source: ``keras.applications``.
    """

    def __init__(self, backbone: str, **kwargs):
        super().__init__(**kwargs)
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; known: {sorted(BACKBONES)}")
        self.backbone = backbone

    def call(self, inputs):
        return BACKBONES[self.backbone].preprocess(ops.cast(inputs, "float32"))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "backbone": self.backbone}


@keras.saving.register_keras_serializable(package="actionrec")
class FrameMask(keras.layers.Layer):
    """``(N, T, H, W, C)`` frames -> ``(N, T)`` bool: True where a frame is not all zeros.

    The frame store pads clips shorter than the sequence length with zero frames
    (``frames.short_clip: pad``); this recovers the mask inside the model, so that
    the saved model takes frames alone.
    """

    def call(self, inputs):
        return ops.any(ops.not_equal(inputs, 0), axis=(2, 3, 4))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:2])


@keras.saving.register_keras_serializable(package="actionrec")
class MergeTime(keras.layers.Layer):
    """``(N, T, ...)`` -> ``(N * T, ...)``: run a per-frame network on every frame at once.

    Cheaper to trace than ``TimeDistributed`` around a backbone of hundreds of layers
    (EfficientNetB7: 1 s instead of ~60 s on CPU); :class:`SplitTime` undoes it.
    """

    def call(self, inputs):
        shape = ops.shape(inputs)
        return ops.reshape(inputs, (-1, *shape[2:]))

    def compute_output_shape(self, input_shape):
        n, t = input_shape[0], input_shape[1]
        return (None if n is None or t is None else n * t, *input_shape[2:])


@keras.saving.register_keras_serializable(package="actionrec")
class SplitTime(keras.layers.Layer):
    """``(N * T, D)`` -> ``(N, T, D)`` for a known sequence length ``T``."""

    def __init__(self, sequence_length: int, **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = int(sequence_length)

    def call(self, inputs):
        return ops.reshape(inputs, (-1, self.sequence_length, *ops.shape(inputs)[1:]))

    def compute_output_shape(self, input_shape):
        return (None, self.sequence_length, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "sequence_length": self.sequence_length}
