"""Atomic file output: a reader never sees half a file, an interrupted write leaves none.

Each helper writes to a temporary file (or folder, :func:`atomic_dir`) beside the
destination and renames it over the target with :func:`os.replace`, which is atomic
on POSIX file systems.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", fsync: bool = True,
                **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    ``fsync=False`` skips forcing the data to disk before the rename (the rename is
    still atomic): for bulk outputs such as thousands of frame arrays, where a
    per-file fsync would dominate the time.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike[str], suffix: str = ".building") -> Iterator[Path]:
    """Build a folder in ``<dest><suffix>`` and swap it in for ``dest`` only when the
    block ends without an error; on any error (or Ctrl-C) the partial folder is removed
    and ``dest`` is left as it was. A leftover ``<dest><suffix>`` of a killed run is
    cleared first.

    Yields:
        The work folder (``Path``), empty.
    """
    dest = Path(dest)
    work = dest.with_name(dest.name + suffix)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(dest, ignore_errors=True)
    work.replace(dest)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 text atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_csv(path: str | os.PathLike[str], frame: Any) -> None:
    """Write a pandas DataFrame as CSV (no index) atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        frame.to_csv(fh, index=False)
