"""Model registry: one file per architecture, each registering itself by name.

    from actionrec.models import get_architecture
    arch = get_architecture("lrcn")
    model = arch.build(settings, num_classes=5, sequence_length=20)   # frames -> probs

An architecture with a ``backbone`` also gives ``build_head`` (cached features +
mask -> probabilities) and ``assemble`` (backbone + trained head -> the whole
network on frames), so a frozen backbone runs once (``extract_features``) while the
saved model still takes raw frames. Adding an architecture is one new file here
and one section in params.yaml. This package knows nothing of files or MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from actionrec.models.settings import ArchSettings


@dataclass(frozen=True)
class Architecture:
    """One registered architecture.

    Attributes:
        name: key in params.yaml (``models.<name>``) and in DVC stage names.
        settings: pydantic class of its params section.
        build: ``(settings, num_classes, sequence_length) -> keras.Model`` taking
            ``(N, T, S, S, 3)`` uint8 RGB frames, returning ``(N, C)`` softmax.
        backbone: ``keras.applications`` backbone name, or ``None`` (from scratch).
        build_head: ``(settings, num_classes, sequence_length, feature_dim, stats=None)
            -> Model`` taking ``[(N, T, D) float, (N, T) bool mask]``; ``stats``
            (:class:`~actionrec.models.heads.FeatureStats`) standardises the features
            when the settings ask for it (``standardize``).
        design: one line naming the reference design.
    """

    name: str
    settings: type[ArchSettings]
    build: Callable[..., Any]
    backbone: str | None = None
    build_head: Callable[..., Any] | None = None
    design: str = ""


REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    """Add ``arch`` to :data:`REGISTRY` (called at import of each architecture file)."""
    if arch.name in REGISTRY:
        raise ValueError(f"architecture {arch.name!r} registered twice")
    REGISTRY[arch.name] = arch
    return arch


def get_architecture(name: str) -> Architecture:
    """The registered architecture ``name``.

    Raises:
        KeyError: no such architecture (the message lists the known ones).
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {sorted(REGISTRY)}") from None


# Each import registers one architecture; keep this list in the order of the README.
from actionrec.models import (  # noqa: E402,F401
    convlstm,
    efficientnetb7_lstm,
    inceptionv3_gru,
    lrcn,
    vgg16_bilstm,
)
