"""Typed settings of the architectures (``models.<arch>`` in params.yaml); no Keras import.

Every architecture's section has the :class:`ArchSettings` fields (input size,
optimiser and schedule); each architecture file subclasses it with the knobs of its
own design. Defaults follow the reference designs named in each file.

The classes decorated with ``@settings_for(name)`` are the architectures of the pipeline,
in this file's order (:mod:`actionrec.models.registry`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from actionrec.models.registry import settings_for

PositiveInt = Annotated[int, Field(gt=0)]
Rate = Annotated[float, Field(ge=0.0, lt=1.0)]


class BackboneOptions(BaseModel):
    """The pretrained backbone of an architecture (what ``extract_features`` depends on).

    ``weights``: ``imagenet`` (Keras' download, cached in ``~/.keras/models``), a
    path to a local ``.h5`` / ``.weights.h5`` file, or ``null`` for random weights
    (tests and the tiny profile). ``fine_tune_layers > 0`` unfreezes that many of
    the backbone's top layers and trains end to end on frames (slow on CPU) instead
    of training the head on cached features. ``feature_batch_size``: frames per
    backbone call while extracting features.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: str | None = "imagenet"
    fine_tune_layers: Annotated[int, Field(ge=0)] = 0
    feature_batch_size: PositiveInt = 32

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: str | None) -> str | None:
        if v is not None and v != "imagenet" and not v.endswith(".h5"):
            raise ValueError("weights must be 'imagenet', null, or a path to a .h5 file")
        return v


class AugmentOptions(BaseModel):
    """Training-time augmentation of clips read from the frame store (training split only).

    One random spatial transform per clip, the same for all ``T`` frames so that the
    motion is kept: ``flip`` mirrors left-right with probability 0.5; ``translation``
    shifts by up to that fraction of the frame height / width; ``zoom`` scales by up to
    that fraction in or out. Out-of-frame pixels are filled by reflection. The random
    flip and crop of clips is the usual recipe for UCF101 from scratch (Simonyan &
    Zisserman 2014, two-stream; Wang et al. 2016, TSN). Off (all zero) unless the
    architecture's settings class turns it on (LRCN, ConvLSTM); an
    architecture that trains on cached features cannot use it: the features are fixed.
    Applied by :class:`~actionrec.models.layers.ClipAugmentation`, a layer at the model's
    input that acts in training only.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    flip: bool = False
    translation: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0
    zoom: Annotated[float, Field(ge=0.0, le=0.5)] = 0.0

    @property
    def active(self) -> bool:
        """True when any transform is switched on."""
        return self.flip or self.translation > 0 or self.zoom > 0


class ArchSettings(BaseModel):
    """What every architecture section holds.

    Optimiser: Adam (Kingma & Ba, 2015) with ``learning_rate``, ``beta_1``, ``beta_2``;
    ReduceLROnPlateau on ``val_loss`` (factor, patience 3 by default, as in the
    reference designs); EarlyStopping on ``val_loss`` with best weights restored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_size: Annotated[int, Field(ge=32, le=1024)]
    batch_size: PositiveInt = 8
    epochs: PositiveInt = 50
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 1e-3
    beta_1: Rate = 0.9
    beta_2: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.999
    reduce_lr_patience: PositiveInt = 3
    reduce_lr_factor: Annotated[float, Field(gt=0, lt=1)] = 0.5
    min_learning_rate: Annotated[float, Field(ge=0)] = 1e-6
    early_stopping_patience: PositiveInt = 10
    backbone: BackboneOptions | None = None
    augment: AugmentOptions = AugmentOptions()

    @property
    def trains_on_features(self) -> bool:
        """True when a frozen backbone's cached features feed the head."""
        return self.backbone is not None and self.backbone.fine_tune_layers == 0

    @model_validator(mode="after")
    def _augment_needs_frames(self) -> ArchSettings:
        if self.augment.active and self.trains_on_features:
            raise ValueError(
                "augment needs training on frames, but this architecture trains its head on "
                "cached backbone features; set augment to false/0, or "
                "backbone.fine_tune_layers > 0")
        return self


class BackboneSettings(ArchSettings):
    """An ImageNet backbone (frozen; features cached once) and a recurrent head.

    ``standardize``: the head's first layers scale each feature dimension to zero mean
    and unit variance with the training split's statistics (fixed, saved with the model).
    Pooled ImageNet features differ in scale between dimensions; random backbones
    (``weights: null``, the tests and the tiny profile) give features of 1e-4
    (InceptionV3) to 1e-6 (EfficientNetB7), far from the unit scale that the head's
    initialisation and Adam's default learning rate assume.
    """

    backbone: BackboneOptions = BackboneOptions()
    batch_size: PositiveInt = 16
    standardize: bool = True
    fine_tune_learning_rate: Annotated[float, Field(gt=0, le=1)] = 1e-5
    units: list[PositiveInt] = Field(default=[16, 8], min_length=1)
    bidirectional: bool = False
    layer_norm: bool = False
    dropout: Rate = 0.4
    dense_units: Annotated[int, Field(ge=0)] = 8
    dense_dropout: Rate = 0.0
    l2: Annotated[float, Field(ge=0)] = 0.0


class ScratchSettings(ArchSettings):
    """An architecture trained from scratch on frames: it has no backbone."""

    # BatchNormalization's moving-average momentum. The moving statistics get one update
    # per batch; Keras' default 0.99 then needs hundreds of batches before inference
    # statistics are usable, and a small dataset's validation collapses to one class for
    # its first epochs (seen on LRCN and on ConvLSTM, which scored chance on the tiny
    # profile with 0.99).
    batch_norm_momentum: Annotated[float, Field(gt=0, lt=1)] = 0.9

    @field_validator("backbone")
    @classmethod
    def _no_backbone(cls, v: BackboneOptions | None) -> None:
        if v is not None:
            raise ValueError("this architecture trains from scratch; set backbone: null")
        return None


@settings_for("lrcn")
class LRCNSettings(ScratchSettings):
    """LRCN (Donahue et al., CVPR 2015), from scratch: per-frame CNN + LSTM."""

    epochs: PositiveInt = 70
    early_stopping_patience: PositiveInt = 15
    augment: AugmentOptions = AugmentOptions(flip=True, translation=0.1, zoom=0.1)
    filters: list[PositiveInt] = Field(default=[16, 32, 64], min_length=1)
    kernel_size: PositiveInt = 3
    pool_size: PositiveInt = 2
    lstm_units: PositiveInt = 128
    dropout: Rate = 0.5
    l2: Annotated[float, Field(ge=0)] = 1e-4


@settings_for("convlstm")
class ConvLSTMSettings(ScratchSettings):
    """ConvLSTM (Shi et al., NeurIPS 2015) stack, from scratch."""

    augment: AugmentOptions = AugmentOptions(flip=True, translation=0.1, zoom=0.1)
    filters: list[PositiveInt] = Field(default=[4, 8, 14, 16], min_length=1)
    kernel_size: PositiveInt = 3
    recurrent_dropout: Rate = 0.2
    dropout: Rate = 0.2
    l2: Annotated[float, Field(ge=0)] = 1e-4


@settings_for("inceptionv3_gru")
class InceptionV3GRUSettings(BackboneSettings):
    """InceptionV3 + GRU 16 -> GRU 8 (the Keras CNN-RNN video classification example)."""

    cell: Literal["gru"] = "gru"


@settings_for("efficientnetb7_lstm")
class EfficientNetB7LSTMSettings(BackboneSettings):
    """EfficientNetB7 + LSTM 16 -> LSTM 8."""

    # 8 frames of 600 px per backbone call (32, the default, is for the smaller backbones)
    backbone: BackboneOptions = BackboneOptions(feature_batch_size=8)
    cell: Literal["lstm"] = "lstm"


@settings_for("vgg16_bilstm")
class VGG16BiLSTMSettings(BackboneSettings):
    """VGG16 + LayerNorm + BiLSTM 128 + Dense 128 (L2 0.01)."""

    cell: Literal["lstm"] = "lstm"
    units: list[PositiveInt] = Field(default=[128], min_length=1)
    bidirectional: bool = True
    layer_norm: bool = True
    dropout: Rate = 0.5
    dense_units: Annotated[int, Field(ge=0)] = 128
    dense_dropout: Rate = 0.5
    l2: Annotated[float, Field(ge=0)] = 0.01
