"""Resume only what the same settings, data and code started.

An interrupted ``train@<arch>`` leaves its state in ``models/.resume/<arch>`` (the last
committed epoch's state, :mod:`actionrec.checkpoint`; the ``history.csv`` of the committed
epochs; the MLflow run id). The next run
resumes from it only when it would compute the same thing: the state carries a
:func:`fingerprint` of the run that made it (its settings, a digest of every input, and a
hash of every ``actionrec`` source file it had imported), and :func:`claim` compares that
with the run now starting. On any difference the state is discarded with one line that
says what differs, and training starts afresh; a model is then never what its
``dvc.lock`` does not say.

The folder itself is a persistent DVC output of the train stage (``persist: true``), so
DVC never deletes it before a rerun and never restores the stage from its run cache
around it; after a finished training it holds only :data:`README_TEXT` (in DVC's cache,
so a clone's ``dvc pull`` brings it and finds the stage up to date).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FINGERPRINT_FILE = "fingerprint.json"
README_FILE = "README.md"
README_TEXT = ("Resume state of an interrupted `train` stage: empty after a finished run. "
               "See actionrec/resume.py.\n")


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def input_digest(path: Path) -> str:
    """A digest of an input: a file's SHA-256; for a folder (a frame or feature store, up
    to gigabytes), SHA-256 over every file's relative path, size and modification time
    (``st_mtime_ns``): a rewrite, even to the same bytes, counts as a change (the safe
    direction: the run starts afresh). ``"missing"`` for a path that does not exist."""
    path = Path(path)
    if path.is_file():
        return _sha256(path)
    if not path.is_dir():
        return "missing"
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        st = file.stat()
        h.update(f"{file.relative_to(path).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n"
                 .encode())
    return h.hexdigest()


def code_digests(modules: Iterable[str] | None = None) -> dict[str, str]:
    """SHA-256 of the source file of every imported ``actionrec`` module (or of
    ``modules``), keyed ``actionrec/<path>.py``."""
    names = modules if modules is not None else [
        m for m in sys.modules if m == "actionrec" or m.startswith("actionrec.")]
    out = {}
    for name in sorted(names):
        file = getattr(sys.modules.get(name), "__file__", None)
        if file and file.endswith(".py"):
            rel = Path(*name.split(".")).with_suffix(".py")
            if Path(file).name == "__init__.py":
                rel = rel.with_suffix("") / "__init__.py"
            out[rel.as_posix()] = _sha256(Path(file))
    return out


def fingerprint(settings: dict[str, Any], inputs: Iterable[str | os.PathLike[str]],
                modules: Iterable[str] | None = None) -> dict[str, Any]:
    """What identifies a training run: ``{"settings", "inputs", "code"}``.

    Args:
        settings: flat ``{"models.lrcn.learning_rate": 0.001, ...}`` of every setting that
            changes the result (JSON-serialisable values).
        inputs: the files and folders it reads (:func:`input_digest` of each).
        modules: the modules whose code counts (default: every imported ``actionrec``
            module, :func:`code_digests`).
    """
    return {"settings": json.loads(json.dumps(settings, default=str)),
            "inputs": {str(p): input_digest(Path(p)) for p in inputs},
            "code": code_digests(modules)}


def _diff(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    if kind == "settings":
        return [f"{k} {old.get(k, '(unset)')!r} -> {new.get(k, '(unset)')!r}"
                for k in keys if old.get(k) != new.get(k)]
    return [f"{kind} {k}" for k in keys if old.get(k) != new.get(k)]


def stale_reason(old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    """Why state made under ``old`` must not be resumed by the run ``new`` describes:
    ``None`` when they are the same run, else e.g. ``"models.lrcn.learning_rate 0.001 ->
    0.0002"`` (at most three differences named, then how many more)."""
    if old is None:
        return "it has no fingerprint (made by an older version)"
    changes = [c for kind in ("settings", "inputs", "code")
               for c in _diff(kind, old.get(kind, {}), new.get(kind, {}))]
    if not changes:
        return None
    more = f" and {len(changes) - 3} more" if len(changes) > 3 else ""
    return "changed: " + "; ".join(changes[:3]) + more


def has_state(work_dir: Path) -> bool:
    """Whether ``work_dir`` holds state of an interrupted run (anything but the README)."""
    return work_dir.is_dir() and any(p.name != README_FILE for p in work_dir.iterdir())


def clear(work_dir: Path) -> None:
    """Empty ``work_dir`` but for :data:`README_TEXT` (the DVC output stays present)."""
    from actionrec.io import write_text

    if work_dir.exists():
        shutil.rmtree(work_dir)
    write_text(work_dir / README_FILE, README_TEXT)


def claim(work_dir: Path, fp: dict[str, Any]) -> str | None:
    """Make ``work_dir`` the resume state of the run ``fp`` describes.

    Returns:
        ``None`` when ``work_dir`` is empty or holds this same run's state (which the
        caller resumes); else the reason its state was discarded (:func:`stale_reason`).
    """
    from actionrec.io import write_json

    reason = None
    if has_state(work_dir):
        try:
            old = json.loads((work_dir / FINGERPRINT_FILE).read_text())
        except (OSError, ValueError):
            old = None
        reason = stale_reason(old, fp)
        if reason:
            clear(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    write_json(work_dir / FINGERPRINT_FILE, fp)
    return reason
