"""Pretrained ImageNet backbones from ``keras.applications``, global-average-pooled.

| backbone | feature dim D | minimum input | weights file (no top) |
|---|---|---|---|
| inceptionv3 | 2048 | 75 px | inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5 |
| efficientnetb7 | 2560 | 32 px | efficientnetb7_notop.h5 |
| vgg16 | 512 | 32 px | vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 |

``weights="imagenet"`` lets Keras download the file into ``~/.keras/models/`` once.
Offline, :func:`build_backbone` fails at once (before any download attempt hangs)
with the file name and where to put it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actionrec.errors import ConfigError

WEIGHTS_HOST = "storage.googleapis.com"


@dataclass(frozen=True)
class Backbone:
    """How to build one ``keras.applications`` backbone and prepare its input."""

    name: str
    keras_name: str
    feature_dim: int
    min_size: int
    weights_file: str
    constructor: Callable[..., Any]
    preprocess: Callable[[Any], Any]


def _inception(**kw):
    import keras

    return keras.applications.InceptionV3(**kw)


def _efficientnet(**kw):
    import keras

    return keras.applications.EfficientNetB7(**kw)


def _vgg16(**kw):
    import keras

    return keras.applications.VGG16(**kw)


def _pre_inception(x):
    import keras

    return keras.applications.inception_v3.preprocess_input(x)


def _pre_efficientnet(x):
    import keras

    return keras.applications.efficientnet.preprocess_input(x)


def _pre_vgg16(x):
    import keras

    return keras.applications.vgg16.preprocess_input(x)


BACKBONES: dict[str, Backbone] = {
    "inceptionv3": Backbone("inceptionv3", "InceptionV3", 2048, 75,
                            "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
                            _inception, _pre_inception),
    "efficientnetb7": Backbone("efficientnetb7", "EfficientNetB7", 2560, 32,
                               "efficientnetb7_notop.h5", _efficientnet, _pre_efficientnet),
    "vgg16": Backbone("vgg16", "VGG16", 512, 32,
                      "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", _vgg16, _pre_vgg16),
}


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded weights: ``$KERAS_HOME/models`` or ``~/.keras/models``."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def check_weights_available(backbone: Backbone, weights: str | None) -> None:
    """Fail fast when ``weights`` cannot be had.

    Raises:
        ConfigError: a local weights path that does not exist, or ``imagenet`` weights
            that are not in the Keras cache while the download host does not resolve.
    """
    if weights is None:
        return
    if weights != "imagenet":
        if not Path(weights).is_file():
            raise ConfigError(f"{backbone.name} weights file {weights} not found")
        return
    cached = keras_cache_dir() / backbone.weights_file
    if cached.is_file():
        return
    try:
        socket.getaddrinfo(WEIGHTS_HOST, 443)
    except socket.gaierror:
        raise ConfigError(
            f"ImageNet weights of {backbone.name} are not cached and {WEIGHTS_HOST} cannot be "
            f"reached (offline?). Put {backbone.weights_file} at {cached} (fetch it on a machine "
            f"with network access by building keras.applications.{backbone.keras_name}"
            "(weights='imagenet', include_top=False) there), or set the architecture's "
            "weights to a local .h5 path, or to null for random weights."
        ) from None


#: Seed of random backbone weights (``weights: null``): the feature extractor and the
#: assembled model must be the same network, so random weights depend on this alone.
RANDOM_WEIGHTS_SEED = 1234


def build_backbone(name: str, image_size: int, weights: str | None):
    """A ``keras.applications`` model: ``(S, S, 3)`` preprocessed float -> ``(D,)`` pooled.

    Input must already be preprocessed (see :class:`~actionrec.models.layers.BackbonePreprocess`).
    With ``weights=None`` the random weights are drawn after
    ``keras.utils.set_random_seed(RANDOM_WEIGHTS_SEED)``, so every build gives the same
    network (this resets Keras' global seed: set your own seed afterwards).

    Raises:
        ConfigError: unknown backbone, ``image_size`` below the backbone's minimum,
            or unavailable weights (see :func:`check_weights_available`).
    """
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    bb = BACKBONES[name]
    if image_size < bb.min_size:
        raise ConfigError(f"{name} needs image_size >= {bb.min_size}, got {image_size}")
    check_weights_available(bb, weights)
    local = weights if weights not in (None, "imagenet") else None
    if weights is None:
        import keras

        keras.utils.set_random_seed(RANDOM_WEIGHTS_SEED)
    model = bb.constructor(include_top=False, weights=None if local else weights,
                           input_shape=(image_size, image_size, 3), pooling="avg")
    if local:
        model.load_weights(local)
    return model
