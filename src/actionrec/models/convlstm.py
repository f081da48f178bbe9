"""ConvLSTM: a stack of ConvLSTM2D layers over the frame sequence, trained from scratch.

Design: Shi et al., "Convolutional LSTM Network", NeurIPS 2015; sizes from the
project's reference design (ConvLSTM2D 4/8/14/16, 3x3, tanh, recurrent_dropout 0.2,
return_sequences; MaxPooling3D (1, 2, 2); TimeDistributed Dropout 0.2; Flatten;
Dense softmax; input 20 x 64 x 64 x 3). BatchNormalization after each block and L2
on the classifier follow the project's training recipe.
"""

from __future__ import annotations

from actionrec.models.registry import Architecture, register
from actionrec.models.settings import ConvLSTMSettings


def build(s: ConvLSTMSettings, num_classes: int, sequence_length: int):
    """``(N, T, S, S, 3)`` uint8 RGB -> ``(N, C)`` softmax; pixels are scaled to [0, 1] inside."""
    import keras
    from keras import layers

    from actionrec.models.layers import augment_frames

    size = s.image_size
    frames = keras.Input((sequence_length, size, size, 3), dtype="uint8", name="frames")
    x = augment_frames(frames, s.augment)  # training only: one transform per clip
    x = layers.Rescaling(1 / 255.0, name="rescale")(x)
    for i, f in enumerate(s.filters, start=1):
        x = layers.ConvLSTM2D(f, s.kernel_size, activation="tanh", padding="same",
                              recurrent_dropout=s.recurrent_dropout, return_sequences=True,
                              name=f"convlstm{i}")(x)
        x = layers.MaxPooling3D((1, 2, 2), padding="same", name=f"pool{i}")(x)
        x = layers.BatchNormalization(momentum=s.batch_norm_momentum, name=f"bn{i}")(x)
        if i < len(s.filters):
            x = layers.TimeDistributed(layers.Dropout(s.dropout), name=f"dropout{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    reg = keras.regularizers.L2(s.l2) if s.l2 else None
    out = layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg,
                       name="probabilities")(x)
    return keras.Model(frames, out, name="convlstm")


ARCH = register(Architecture(
    name="convlstm", settings=ConvLSTMSettings, build=build,
    design="ConvLSTM2D 4/8/14/16 (recurrent_dropout 0.2) + MaxPool3D + BN, Dense softmax",
))
