"""EfficientNetB7 + LSTM: ImageNet EfficientNetB7 (avg-pool, 2560-d) per frame, then
masked LSTM 16 -> LSTM 8 -> Dropout 0.4 -> Dense 8 ReLU -> softmax.

Source: the project's reference design (the Keras CNN-RNN example's head with LSTM
cells); EfficientNet: Tan & Le, ICML 2019.
The backbone is frozen and run once per frame by the `extract_features` stage; the
head trains on the cached features; the saved model is backbone + head on frames.
"""

from actionrec.models.heads import backbone_architecture
from actionrec.models.registry import register
from actionrec.models.settings import EfficientNetB7LSTMSettings

ARCH = register(backbone_architecture(
    "efficientnetb7_lstm", backbone="efficientnetb7", settings=EfficientNetB7LSTMSettings,
    design="EfficientNetB7 (2560-d) -> masked LSTM 16 -> LSTM 8 -> Dropout 0.4 -> Dense 8",
))
