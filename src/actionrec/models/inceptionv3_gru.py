"""InceptionV3 + GRU: ImageNet InceptionV3 (avg-pool, 2048-d) per frame, then
masked GRU 16 -> GRU 8 -> Dropout 0.4 -> Dense 8 ReLU -> softmax.

Source: the Keras example "Video Classification with a CNN-RNN Architecture"
(Sayak Paul, keras-io examples/vision/video_classification.py); InceptionV3:
Szegedy et al., CVPR 2016.
The backbone is frozen and run once per frame by the `extract_features` stage; the
head trains on the cached features; the saved model is backbone + head on frames.
"""

from actionrec.models.heads import backbone_architecture
from actionrec.models.registry import register
from actionrec.models.settings import InceptionV3GRUSettings

ARCH = register(backbone_architecture(
    "inceptionv3_gru", backbone="inceptionv3", settings=InceptionV3GRUSettings,
    design="InceptionV3 (2048-d) -> masked GRU 16 -> GRU 8 -> Dropout 0.4 -> Dense 8 -> softmax",
))
