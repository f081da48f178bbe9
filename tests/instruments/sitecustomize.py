"""A test instrument, switched on in the stages' own processes: the settings each reads.

``ci/tiny_pipeline.sh`` puts this folder on ``PYTHONPATH`` and sets
``$ACTIONREC_PARAMS_LOG``; Python then imports this ``sitecustomize`` at start-up in every
process of the run (site module docs: https://docs.python.org/3/library/site.html). When
``actionrec.config`` is imported, its ``load_params`` is wrapped: a call with ``stage=``
(what each stage module passes) starts :func:`record_reads` for that stage. The library
itself records nothing and patches nothing.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
from pathlib import Path

from pydantic import BaseModel


def record_reads(params: BaseModel, stage: str, log: Path) -> None:
    """Record which settings of ``params`` this process reads; append them to ``log``.

    ``tests/test_stage_deps.py`` compares each stage's reads with its ``params`` in
    ``dvc.yaml``. Every field access on a settings object of ``params`` records its
    dotted key (``models.lrcn.epochs``; aliases as in params.yaml, ``validate.min_fps``);
    ``model_dump()`` of a section records the section's key (a read of all of it). At
    exit one JSON line is appended: ``{"stage", "read": [keys], "modules": [the
    actionrec modules imported]}``.
    """
    import atexit
    import json
    import sys

    paths: dict[int, str] = {}
    classes: set[type] = set()

    def walk(model: BaseModel, prefix: str) -> None:
        paths[id(model)] = prefix
        classes.add(type(model))
        for name, field in type(model).model_fields.items():
            value = model.__dict__.get(name)
            if isinstance(value, BaseModel):
                if id(value) in paths:  # a default instance shared by two sections
                    value = model.__dict__[name] = value.model_copy()
                walk(value, f"{prefix}{field.alias or name}.")

    walk(params, "")
    read: set[str] = set()

    for cls in classes:
        fields = {name: field.alias or name for name, field in cls.model_fields.items()}
        original_dump = cls.model_dump

        def getattribute(self, name, _fields=fields):
            value = object.__getattribute__(self, name)
            prefix = paths.get(id(self))
            if prefix is not None and name in _fields and not isinstance(value, BaseModel):
                read.add(prefix + _fields[name])
            return value

        def model_dump(self, *args, _original=original_dump, **kwargs):
            prefix = paths.get(id(self))
            if prefix:
                read.add(prefix.rstrip("."))
            return _original(self, *args, **kwargs)

        cls.__getattribute__ = getattribute
        cls.model_dump = model_dump

    def write() -> None:
        modules = sorted(m for m in sys.modules if m == "actionrec" or m.startswith("actionrec."))
        line = json.dumps({"stage": stage, "read": sorted(read), "modules": modules})
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    atexit.register(write)


def _wrap(config) -> None:
    """Wrap ``config.load_params`` so that a call naming a stage records its reads."""
    load_params = config.load_params

    def recorded(path="params.yaml", stage=None):
        params = load_params(path, stage)
        if stage:
            record_reads(params, stage, Path(os.environ["ACTIONREC_PARAMS_LOG"]))
        return params

    recorded.__doc__ = load_params.__doc__
    config.load_params = recorded


class _WrapConfigOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: when ``actionrec.config`` is imported, it lets the path finder
    find it and wraps ``load_params`` once the module has run."""

    def find_spec(self, name, path, target=None):
        if name != "actionrec.config":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module, _run=run):
                _run(module)
                _wrap(module)

            spec.loader.exec_module = exec_module
        return spec


if os.environ.get("ACTIONREC_PARAMS_LOG") and "actionrec.config" not in sys.modules:
    sys.meta_path.insert(0, _WrapConfigOnImport())
