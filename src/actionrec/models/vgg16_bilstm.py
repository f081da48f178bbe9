"""VGG16 + BiLSTM: frozen ImageNet VGG16 -> GlobalAveragePooling2D (512-d) per frame,
then LayerNormalization -> BiLSTM 128 -> Dropout 0.5 -> Dense 128 ReLU (L2 0.01)
-> Dropout 0.5 -> softmax.

Source: the project's reference design; VGG16: Simonyan & Zisserman, ICLR 2015.
The backbone is frozen and run once per frame by the `extract_features` stage; the
head trains on the cached features; the saved model is backbone + head on frames.
"""

from actionrec.models.heads import backbone_architecture
from actionrec.models.registry import register
from actionrec.models.settings import VGG16BiLSTMSettings

ARCH = register(backbone_architecture(
    "vgg16_bilstm", backbone="vgg16", settings=VGG16BiLSTMSettings,
    design="VGG16 (512-d) -> LayerNorm -> BiLSTM 128 -> Dropout 0.5 -> Dense 128 (L2) -> softmax",
))
