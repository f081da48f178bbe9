"""EfficientNetB7 + LSTM: ImageNet EfficientNetB7 (avg-pool, 2560-d) per frame, then
masked LSTM 16 -> LSTM 8 -> Dropout 0.4 -> Dense 8 ReLU -> softmax.

Source: the project's reference design (the Keras CNN-RNN example's head with LSTM
cells); EfficientNet: Tan & Le, ICML 2019.
The backbone is frozen and run once per frame by the `extract_features` stage; the
head trains on the cached features; the saved model is backbone + head on frames.
"""

from __future__ import annotations

from actionrec.models import Architecture, register
from actionrec.models.heads import assemble, build_recurrent_head
from actionrec.models.settings import EfficientNetB7LSTMSettings

SETTINGS = EfficientNetB7LSTMSettings
BACKBONE = "efficientnetb7"


def build_head(s: EfficientNetB7LSTMSettings, num_classes: int, sequence_length: int,
               feature_dim: int):
    """``[(N, T, D) features, (N, T) bool mask]`` -> ``(N, C)`` softmax."""
    return build_recurrent_head(s, num_classes, sequence_length, feature_dim, "efficientnetb7_lstm")


def build(s: EfficientNetB7LSTMSettings, num_classes: int, sequence_length: int, head=None):
    """``(N, T, S, S, 3)`` uint8 RGB -> ``(N, C)``; ``head`` (trained) or a new one."""
    from actionrec.models.backbones import BACKBONES

    if head is None:
        head = build_head(s, num_classes, sequence_length, BACKBONES[BACKBONE].feature_dim)
    return assemble(BACKBONE, s, head, sequence_length, "efficientnetb7_lstm")


ARCH = register(Architecture(
    name="efficientnetb7_lstm", settings=SETTINGS, build=build, backbone=BACKBONE,
    build_head=build_head,
    design="EfficientNetB7 (2560-d) -> masked LSTM 16 -> LSTM 8 -> Dropout 0.4 -> Dense 8",
))
