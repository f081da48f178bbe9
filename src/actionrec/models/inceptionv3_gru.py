"""InceptionV3 + GRU: ImageNet InceptionV3 (avg-pool, 2048-d) per frame, then
masked GRU 16 -> GRU 8 -> Dropout 0.4 -> Dense 8 ReLU -> softmax.

Source: the Keras example "Video Classification with a CNN-RNN Architecture"
(Sayak Paul, keras-io examples/vision/video_classification.py); InceptionV3:
Szegedy et al., CVPR 2016.
The backbone is frozen and run once per frame by the `extract_features` stage; the
head trains on the cached features; the saved model is backbone + head on frames.
"""

from __future__ import annotations

from actionrec.models import Architecture, register
from actionrec.models.heads import assemble, build_recurrent_head
from actionrec.models.settings import InceptionV3GRUSettings

SETTINGS = InceptionV3GRUSettings
BACKBONE = "inceptionv3"


def build_head(s: InceptionV3GRUSettings, num_classes: int, sequence_length: int,
               feature_dim: int):
    """``[(N, T, D) features, (N, T) bool mask]`` -> ``(N, C)`` softmax."""
    return build_recurrent_head(s, num_classes, sequence_length, feature_dim, "inceptionv3_gru")


def build(s: InceptionV3GRUSettings, num_classes: int, sequence_length: int, head=None):
    """``(N, T, S, S, 3)`` uint8 RGB -> ``(N, C)``; ``head`` (trained) or a new one."""
    from actionrec.models.backbones import BACKBONES

    if head is None:
        head = build_head(s, num_classes, sequence_length, BACKBONES[BACKBONE].feature_dim)
    return assemble(BACKBONE, s, head, sequence_length, "inceptionv3_gru")


ARCH = register(Architecture(
    name="inceptionv3_gru", settings=SETTINGS, build=build, backbone=BACKBONE,
    build_head=build_head,
    design="InceptionV3 (2048-d) -> masked GRU 16 -> GRU 8 -> Dropout 0.4 -> Dense 8 -> softmax",
))
