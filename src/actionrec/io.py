"""Atomic file output: a reader never sees half a file, an interrupted write leaves none.

Each helper writes to a temporary file (or folder, :func:`atomic_dir`) beside the
destination and renames it over the target with :func:`os.replace`, which is atomic
on POSIX file systems. A write that fails (disk full, ``ulimit -f``, a read-only or
missing folder) raises :class:`~actionrec.errors.OutputError`: one line with the file,
the system's reason and what to do; the destination is left as it was.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from actionrec.errors import OutputError

#: What to do about a failed write, by ``errno`` (``os.strerror`` gives the reason).
ADVICE = {
    errno.ENOSPC: "free space on that file system",
    errno.EDQUOT: "free space within your disk quota",
    errno.EFBIG: "raise the file-size limit (`ulimit -f`)",
    errno.EROFS: "the file system is read-only: make it writable or write elsewhere",
    errno.EACCES: "you may not write there: check the folder's owner and mode",
    errno.EPERM: "you may not write there: check the folder's owner and mode",
    errno.ENOENT: "a folder on the way does not exist (or was removed meanwhile)",
    errno.ENOTDIR: "a file stands where a folder is needed",
    errno.EEXIST: "a file stands where a folder is needed",
}
#: A short write with no errno (NumPy's "N requested and M written"): the file system
#: took fewer bytes than were written.
SHORT_WRITE = ("the file system took fewer bytes than were written: the disk is full or a "
               "file-size limit (`ulimit -f`) was hit")


def output_error(path: str | os.PathLike[str], err: OSError) -> OutputError:
    """The :class:`OutputError` for ``err``, raised while writing ``path``."""
    if err.errno:
        cause = f"{os.strerror(err.errno)} [Errno {err.errno}]"
        advice = ADVICE.get(err.errno, "check the disk and the folder")
    else:
        cause, advice = str(err) or type(err).__name__, SHORT_WRITE
    return OutputError(
        f"cannot write {path}: {cause}; {advice}. The file was not replaced (outputs are "
        "written atomically); `dvc checkout <stage>` restores the stage's last recorded "
        "outputs, and the stage can be run again once the cause is fixed.")


@contextlib.contextmanager
def writing(path: str | os.PathLike[str]) -> Iterator[None]:
    """Turn an :class:`OSError` raised in the block into the :class:`OutputError` of
    :func:`output_error` for ``path`` (for writers that are not :func:`atomic_open`, such
    as Keras' ``Model.save``)."""
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        raise output_error(path, err) from None


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", fsync: bool = True,
                **kwargs: Any) -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it was; an
    :class:`OSError` becomes an :class:`~actionrec.errors.OutputError` naming ``path``.
    ``fsync=False`` skips forcing the data to disk before the rename (the rename is
    still atomic): for bulk outputs such as thousands of frame arrays, where a
    per-file fsync would dominate the time.
    """
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise output_error(path, err) from None
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
