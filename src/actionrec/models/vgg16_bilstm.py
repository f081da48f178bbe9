"""VGG16 + BiLSTM: frozen ImageNet VGG16 -> GlobalAveragePooling2D (512-d) per frame,
then LayerNormalization -> BiLSTM 128 -> Dropout 0.5 -> Dense 128 ReLU (L2 0.01)
-> Dropout 0.5 -> softmax.

Source: the project's reference design; VGG16: Simonyan & Zisserman, ICLR 2015.
The backbone is frozen and run once per frame by the `extract_features` stage; the
head trains on the cached features; the saved model is backbone + head on frames.
"""

from __future__ import annotations

from actionrec.models import Architecture, register
from actionrec.models.heads import assemble, build_recurrent_head
from actionrec.models.settings import VGG16BiLSTMSettings

SETTINGS = VGG16BiLSTMSettings
BACKBONE = "vgg16"


def build_head(s: VGG16BiLSTMSettings, num_classes: int, sequence_length: int,
               feature_dim: int):
    """``[(N, T, D) features, (N, T) bool mask]`` -> ``(N, C)`` softmax."""
    return build_recurrent_head(s, num_classes, sequence_length, feature_dim, "vgg16_bilstm")


def build(s: VGG16BiLSTMSettings, num_classes: int, sequence_length: int, head=None):
    """``(N, T, S, S, 3)`` uint8 RGB -> ``(N, C)``; ``head`` (trained) or a new one."""
    from actionrec.models.backbones import BACKBONES

    if head is None:
        head = build_head(s, num_classes, sequence_length, BACKBONES[BACKBONE].feature_dim)
    return assemble(BACKBONE, s, head, sequence_length, "vgg16_bilstm")


ARCH = register(Architecture(
    name="vgg16_bilstm", settings=SETTINGS, build=build, backbone=BACKBONE,
    build_head=build_head,
    design="VGG16 (512-d) -> LayerNorm -> BiLSTM 128 -> Dropout 0.5 -> Dense 128 (L2) -> softmax",
))
