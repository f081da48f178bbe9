"""The architecture registry: a leaf module (it imports nothing of actionrec).

Two tables, filled as modules are imported:

- :data:`SETTINGS`: architecture name -> its settings class, in the order they are defined
  (:mod:`actionrec.models.settings` fills it with :func:`settings_for`). ``params.yaml``
  has one ``models.<name>`` section per entry; ``config.ARCHITECTURES`` and the fields of
  ``config.ModelsSettings`` are derived from it.
- :data:`REGISTRY`: architecture name -> :class:`Architecture` (the Keras build code),
  filled when the model file ``actionrec/models/<name>.py`` is imported, which
  :func:`actionrec.models.get_architecture` does by name.

Settings and build code are kept apart on purpose: every stage validates the whole of
``params.yaml`` and so imports every settings class, but only the stages of one
architecture import its model file. An edit to ``models/lrcn.py`` then reruns
``train@lrcn`` and nothing of the other four (``dvc.yaml`` lists each stage's modules).

Adding an architecture: the checklist of docs/models.md, "Adding an architecture" (a
test follows it step by step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T", bound=type)

#: name -> settings class (pydantic model of ``models.<name>``), in the order defined.
SETTINGS: dict[str, type] = {}


def settings_for(name: str) -> Callable[[T], T]:
    """Class decorator: make the decorated pydantic class the settings of architecture
    ``name`` (its section ``models.<name>`` of params.yaml).

    Raises:
        ValueError: ``name`` already has a settings class, or is not a Python identifier
            (it names a module, ``actionrec/models/<name>.py``).
    """
    if not name.isidentifier():
        raise ValueError(f"architecture name {name!r} must be a Python identifier")

    def decorate(cls: T) -> T:
        if name in SETTINGS:
            raise ValueError(f"architecture {name!r} has two settings classes: "
                             f"{SETTINGS[name].__name__} and {cls.__name__}")
        SETTINGS[name] = cls
        return cls

    return decorate


@dataclass(frozen=True)
class Architecture:
    """One registered architecture.

    Attributes:
        name: key in params.yaml (``models.<name>``) and in DVC stage names.
        settings: pydantic class of its params section (the one in :data:`SETTINGS`).
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
    settings: type
    build: Callable[..., Any]
    backbone: str | None = None
    build_head: Callable[..., Any] | None = None
    design: str = ""


#: name -> :class:`Architecture`, for the model files imported so far.
REGISTRY: dict[str, Architecture] = {}


def register(arch: Architecture) -> Architecture:
    """Add ``arch`` to :data:`REGISTRY` (called at import of each model file).

    Raises:
        ValueError: the name is registered twice, or its settings class is not the one
            :data:`SETTINGS` holds for it.
    """
    if arch.name in REGISTRY:
        raise ValueError(f"architecture {arch.name!r} registered twice")
    if SETTINGS.get(arch.name) is not arch.settings:
        raise ValueError(f"architecture {arch.name!r}: its settings class must be the one "
                         f"decorated with @settings_for({arch.name!r}) in models/settings.py")
    REGISTRY[arch.name] = arch
    return arch
