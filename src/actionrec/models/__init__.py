"""The five architectures: one model file each, looked up by name.

    from actionrec.models import get_architecture
    arch = get_architecture("lrcn")          # imports actionrec/models/lrcn.py
    model = arch.build(settings, num_classes=5, sequence_length=20)   # frames -> probs

An architecture with a ``backbone`` also gives ``build_head`` (cached features +
mask -> probabilities), and its ``build`` takes ``head=`` (a trained head) to make the
whole network on frames around it, so a frozen backbone runs once (``extract_features``)
while the saved model still takes raw frames. The tables live in the leaf module
:mod:`actionrec.models.registry`. How to add an architecture: docs/models.md, "Adding an
architecture". This package knows nothing of files or MLflow.
"""

from __future__ import annotations

import importlib

from actionrec.models.registry import REGISTRY, SETTINGS, Architecture, register

__all__ = ["REGISTRY", "SETTINGS", "Architecture", "get_architecture", "register"]


def get_architecture(name: str) -> Architecture:
    """The architecture ``name``, importing its model file ``actionrec/models/<name>.py``.

    A stage of one architecture (``train@lrcn``) imports that architecture's model file
    and no other: ``dvc.yaml`` lists ``src/actionrec/models/${key}.py`` for it, and
    ``tests/test_stage_deps.py`` checks that rule against the modules a real run imports.

    Raises:
        KeyError: no such architecture (the message lists the known ones).
    """
    from actionrec.models import settings  # noqa: F401  (fills SETTINGS)

    if name not in SETTINGS:
        raise KeyError(f"unknown architecture {name!r}; known: {list(SETTINGS)}")
    if name not in REGISTRY:
        importlib.import_module(f"{__name__}.{name}")
    return REGISTRY[name]
