"""Exceptions that carry a message meant for a person, not a traceback.

Every error the pipeline raises on purpose derives from :class:`ActionrecError`;
the stage runner and the CLI print its message and exit with status 1 instead of
showing a traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class ActionrecError(Exception):
    """Base class: an error whose message says what was wrong and how to fix it."""


class ConfigError(ActionrecError):
    """A value in ``params.yaml`` (or a ``-S`` override) is refused before any work starts."""


class DownloadError(ActionrecError):
    """A network source could not be fetched (offline, HTTP error, checksum mismatch)."""


class ArchiveError(ActionrecError):
    """An archive could not be unpacked; the subclasses say why."""


class ArchiveCorrupt(ArchiveError):
    """Damaged, truncated or failing its checksum: the message says to delete the download."""


class ArchiveUnsupported(ArchiveError):
    """Intact, but it uses a feature no installed reader supports (named; no re-download)."""


class ArchiveEncrypted(ArchiveError):
    """A password is needed, which the pipeline does not support."""


class ArchiveVolumeMissing(ArchiveError):
    """A part of a RAR volume set is missing; the message names the file."""


class ArchiveUnsafe(ArchiveError):
    """A member escapes the target folder or is a link, junction or device file (named)."""


class NotEnoughSpace(ArchiveError):
    """The unpacked size exceeds the free disk space; refused before writing anything."""


class TrackingUnavailable(ActionrecError):
    """The MLflow tracking server does not answer; the message names its URI and what to do."""


class DatasetError(ActionrecError):
    """The dataset on disk does not match what the split lists or params promise."""


class ValidationFailed(ActionrecError):
    """The Great Expectations suite failed; the message points at the saved report."""


class OutputError(ActionrecError):
    """An output could not be written (disk full, a file-size limit, a read-only or
    missing folder); the message names the file, the system's reason and what to do."""
