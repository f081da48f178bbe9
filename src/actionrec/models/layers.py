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
class ResizeFrames(keras.layers.Layer):
    """Frames of any side to ``size x size``, inside the model (on the accelerator).

    Input ``(N, H, W, C)`` or ``(N, T, H, W, C)``, ``H`` and ``W`` may vary from call to
    call; output the same rank with ``H = W = size``, of the input's dtype (integer
    frames come back rounded and clipped to ``[0, 255]``, so that frames already at
    ``size`` pass unchanged, bit for bit). Bilinear, half-pixel centres, no antialiasing:
    ``keras.ops.image.resize``, the resampling of OpenCV's ``INTER_LINEAR`` that the frame
    store used on the host before (they differ by rounding: at most 1 grey level).

    The frame store keeps UCF101's 240 px frames at 224 px and never upsampled
    (:mod:`actionrec.data.frames`); EfficientNetB7's 600 px input is made here, on the
    device, instead of on the host clip by clip (issue 12: the host resize held the GPU's
    feature extraction to 0.15 of the backbone's speed).
    """

    def __init__(self, size: int, **kwargs):
        super().__init__(**kwargs)
        self.size = int(size)

    def call(self, inputs):
        shape = ops.shape(inputs)
        flat = ops.reshape(inputs, (-1, *shape[-3:])) if len(inputs.shape) == 5 else inputs
        out = ops.image.resize(ops.cast(flat, "float32"), (self.size, self.size),
                               interpolation="bilinear", antialias=False)
        if "int" in str(inputs.dtype):
            out = ops.clip(ops.round(out), 0, 255)
        out = ops.cast(out, inputs.dtype)
        if len(inputs.shape) == 5:
            out = ops.reshape(out, (-1, inputs.shape[1], self.size, self.size, shape[-1]))
        return out

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-3], self.size, self.size, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "size": self.size}


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


@keras.saving.register_keras_serializable(package="actionrec")
class ClipAugmentation(keras.layers.Layer):
    """One random flip, shift and zoom per clip, inside the compiled training step.

    Input and output ``(N, T, H, W, C)`` of the input's dtype (uint8 frames come back
    rounded to uint8). In training (``fit``) each clip gets one affine transform, the same
    for all its ``T`` frames, so the motion between frames is kept; in inference
    (``predict``, ``evaluate``, a loaded model) the clips pass unchanged.

    The transform maps output pixel ``(x, y)`` to input point ``(a x + c_x (1 - a) - t_x W,
    s_y y + c_y (1 - s_y) - t_y H)`` with ``a = ±s_x`` (``-``: mirrored left-right, with
    probability 0.5 when ``flip``), scales ``s_x, s_y`` drawn from ``[1 - zoom, 1 + zoom]``
    (above 1: zoom out), shifts ``t_x, t_y`` from ``[-translation, translation]`` (fractions
    of the width / height) and ``(c_x, c_y)`` the frame's centre. One
    ``keras.ops.image.affine_transform`` per batch (bilinear, reflection fill) does it, on
    the frames of a clip stacked as the channels of one image: a single fused resampling
    where Keras' ``RandomFlip`` + ``RandomTranslation`` + ``RandomZoom`` resample three
    times. The same recipe (random flip and crop of clips) is the usual one for UCF101 from
    scratch (Simonyan & Zisserman 2014; Wang et al. 2016, TSN).

    Randomness: a ``keras.random.SeedGenerator`` (``seed``; ``None``: drawn from Keras'
    global seed, which training sets from ``params.seed``). Training keeps its state with
    each epoch's state (:class:`actionrec.checkpoint.EpochCheckpoint`), so a resumed run
    draws what an unbroken run would. Written with ``keras.ops`` only: it runs under
    TensorFlow and JAX, on the accelerator with the rest of the step.

    Args:
        flip: mirror left-right with probability 0.5.
        translation: largest shift, fraction of the width / height, in ``[0, 0.5]``.
        zoom: largest zoom in or out, fraction, in ``[0, 0.5]``.
        seed: int seed of the draws, or ``None``.

    Raises:
        ValueError: ``translation`` or ``zoom`` outside ``[0, 0.5]``.
    """

    def __init__(self, flip: bool = False, translation: float = 0.0, zoom: float = 0.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("translation", translation), ("zoom", zoom)):
            if not 0.0 <= value <= 0.5:
                raise ValueError(f"ClipAugmentation: {name}={value} is outside [0, 0.5]")
        self.flip, self.translation, self.zoom = bool(flip), float(translation), float(zoom)
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed, name="augment_seed")

    def _transforms(self, n, height: int, width: int):
        """``(n, 8)`` float32 rows of ``affine_transform`` (output -> input point)."""
        u = keras.random.uniform((n, 5), seed=self.generator)
        sign = ops.where(u[:, 0] < 0.5, -1.0, 1.0) if self.flip else ops.ones_like(u[:, 0])
        sx = 1.0 + self.zoom * (2.0 * u[:, 1] - 1.0)
        sy = 1.0 + self.zoom * (2.0 * u[:, 2] - 1.0)
        tx = self.translation * (2.0 * u[:, 3] - 1.0) * width
        ty = self.translation * (2.0 * u[:, 4] - 1.0) * height
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        a = sign * sx
        zero = ops.zeros_like(a)
        return ops.stack([a, zero, cx * (1.0 - a) - tx, zero, sy, cy * (1.0 - sy) - ty,
                          zero, zero], axis=1)

    def call(self, clips, training=False):
        if not training or not (self.flip or self.translation or self.zoom):
            return clips
        _, t, h, w, c = clips.shape
        n = ops.shape(clips)[0]
        images = ops.reshape(ops.transpose(ops.cast(clips, "float32"), (0, 2, 3, 1, 4)),
                             (n, h, w, t * c))
        images = ops.image.affine_transform(images, self._transforms(n, h, w),
                                            interpolation="bilinear", fill_mode="reflect")
        out = ops.transpose(ops.reshape(images, (n, h, w, t, c)), (0, 3, 1, 2, 4))
        if "int" in str(clips.dtype):
            out = ops.clip(ops.round(out), 0, 255)
        return ops.cast(out, clips.dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "flip": self.flip, "translation": self.translation,
                "zoom": self.zoom, "seed": self.seed}


def augment_frames(frames, augment, name: str = "augment"):
    """``frames`` (a ``keras.Input``) through :class:`ClipAugmentation` when ``augment``
    (:class:`~actionrec.models.settings.AugmentOptions`) has a transform switched on, else
    ``frames`` itself (no layer: the model is what it was without augmentation)."""
    if not augment.active:
        return frames
    return ClipAugmentation(augment.flip, augment.translation, augment.zoom, name=name)(frames)
