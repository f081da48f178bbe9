"""HTTP download that survives a flaky network, and safe archive extraction.

- :func:`download`: streams to ``<file>.part`` with a tqdm progress bar, resumes a
  partial file with an HTTP ``Range`` request, retries transient failures with
  exponential back-off (tenacity), checks an optional SHA-256, then renames the
  file into place (atomic). A host that does not resolve fails at once with a
  message naming the offline sources; a TLS failure is reported as such, naming the
  host, and is not retried.
- :func:`download_first`: the same over an ordered list of sources (mirrors): the
  first that gives the right bytes wins; each failure is reported and the next tried.
- :func:`extract_archive` (from :mod:`actionrec.data.archives`): RAR 1.5-5, volume
  sets, zip and tar.gz, listed and checked before anything is written, unpacked by
  libarchive or ``unar``.
"""

from __future__ import annotations

import hashlib
import socket
import sys
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import requests
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from tqdm import tqdm

from actionrec.data.archives import extract_archive
from actionrec.errors import DownloadError

__all__ = ["OFFLINE_HINT", "cache_path", "download", "download_first", "extract_archive",
           "sha256_of"]

OFFLINE_HINT = (
    "Without network access use another source: `data.source: local` with "
    "`data.local.root` pointing at an existing UCF101 folder (UCF-101/<Class>/*.avi + "
    "ucfTrainTestlist/), or `data.source: synthetic` (generated videos, no network), e.g. "
    "`make demo` (the tiny profile)."
)


class _Transient(Exception):
    """A failure worth another try; the partial file is kept for resuming."""


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in ``chunk``-byte blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _check_resolves(url: str, dest: Path) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"not an http(s) URL: {url!r}")
    try:
        socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as err:
        raise DownloadError(
            f"cannot resolve {parts.hostname} ({err.strerror}); this machine looks offline. "
            f"{OFFLINE_HINT} Or place the file at {dest} yourself and run again."
        ) from None


def _attempt(url: str, part: Path, timeout: float, chunk: int, progress: bool,
             verify_tls: bool) -> None:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        resp = requests.get(url, headers=headers, stream=True, timeout=(timeout, timeout),
                            verify=verify_tls)
    except requests.exceptions.SSLError as err:  # a ConnectionError, but no retry mends it
        raise DownloadError(
            f"TLS failure with {urlsplit(url).hostname}: {err.__context__ or err}. The "
            "certificate could not be verified (expired, self-signed, or a proxy in the "
            "way); verification is never skipped unless the source sets verify_tls: false "
            "with its sha256 pinned"
        ) from None
    except (requests.ConnectionError, requests.Timeout) as err:
        raise _Transient(f"connection failed: {err}") from err
    with resp:
        if resp.status_code == 416 and offset:  # our .part is longer than the file: restart
            part.unlink()
            raise _Transient("server refused the resume range; starting over")
        if resp.status_code >= 500:
            raise _Transient(f"HTTP {resp.status_code} from server")
        if resp.status_code not in (200, 206):
            raise DownloadError(f"HTTP {resp.status_code} for {url}; check the URL in params.yaml")
        if resp.status_code == 200 and offset:  # server ignored Range: start again
            offset = 0
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        mode = "ab" if offset else "wb"
        written = offset
        try:
            with open(part, mode) as fh, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=part.name.removesuffix(".part"), disable=not progress, leave=False,
            ) as bar:
                for block in resp.iter_content(chunk_size=chunk):
                    fh.write(block)
                    written += len(block)
                    bar.update(len(block))
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as err:
            raise _Transient(f"transfer cut at {written} bytes: {err}") from err
        if total is not None and written != total:
            raise _Transient(f"transfer ended at {written} of {total} bytes")


def download(url: str, dest: str | Path, *, sha256: str | None = None, retries: int = 4,
             timeout_s: float = 15.0, backoff_s: float = 1.0, chunk_bytes: int = 1 << 20,
             progress: bool = True, verify_tls: bool = True) -> Path:
    """Fetch ``url`` to ``dest``, resuming ``dest.part`` if a previous run was cut.

    Args:
        url: http(s) URL.
        dest: final path; its folder is created.
        sha256: expected hex digest; ``None`` skips the check.
        retries: attempts in all; waits grow ``backoff_s * 2**k`` seconds (max 30 s).
        timeout_s: connect and read timeout per attempt, seconds.
        verify_tls: check the server's certificate (``requests``' ``verify``).

    Returns:
        ``dest``. An existing ``dest`` (with a matching digest) is reused as is.

    Raises:
        DownloadError: offline, an HTTP error, a TLS failure, all retries spent, or a
            digest mismatch (the bad file is removed so that the next run downloads again).
    """
    dest = Path(dest)
    if dest.exists() and (sha256 is None or sha256_of(dest) == sha256.lower()):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _check_resolves(url, dest)
    try:
        for attempt in Retrying(
            stop=stop_after_attempt(retries),
            wait=wait_exponential(multiplier=backoff_s, max=30),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        ):
            with attempt:
                _attempt(url, part, timeout_s, chunk_bytes, progress, verify_tls)
    except _Transient as err:
        kept = f"; {part.stat().st_size} bytes kept in {part} for the next run to resume" \
            if part.exists() else ""
        raise DownloadError(
            f"download of {url} failed after {retries} attempt(s): {err}{kept}. {OFFLINE_HINT}"
        ) from None
    if sha256 is not None:
        digest = sha256_of(part)
        if digest != sha256.lower():
            part.unlink()
            raise DownloadError(
                f"SHA-256 of {url} is {digest}, expected {sha256}; the file was removed. "
                "Run again to re-download, or fix the checksum in params.yaml."
            )
    part.replace(dest)
    return dest


def cache_path(cache: Path, url: str) -> Path:
    """Where a download of ``url`` is kept: ``<cache>/<host>/<file name>`` (two mirrors
    of the same file never resume each other's partial download)."""
    parts = urlsplit(url)
    return Path(cache) / (parts.hostname or "local") / PurePosixPath(parts.path).name


def download_first(sources: Sequence, cache: Path, what: str, **kwargs) -> tuple[Path, object]:
    """Fetch ``what`` from the first of ``sources`` that works (ordered mirrors).

    Args:
        sources: objects with ``url``, ``sha256`` and ``verify_tls``
            (:class:`actionrec.config.FileSource`).
        cache: downloads are kept in :func:`cache_path` for resuming.
        what: a name for messages ("the UCF101 videos").
        kwargs: passed to :func:`download` (retries, timeouts, progress).

    Returns:
        ``(path, source)``: the verified file and the source that gave it.

    Raises:
        DownloadError: every source failed; the message lists each with its reason.
    """
    failures = []
    for n, src in enumerate(sources, start=1):
        try:
            path = download(src.url, cache_path(cache, src.url), sha256=src.sha256,
                            verify_tls=src.verify_tls, **kwargs)
        except DownloadError as err:
            reason = " ".join(str(err).replace(OFFLINE_HINT, "").split())
            failures.append(f"  {n}. {src.url}: {reason}")
            if n < len(sources):
                print(f"download: {what}: source {n} of {len(sources)} failed "
                      f"({str(err).split(';')[0].split('. ')[0]}); trying the next",
                      file=sys.stderr)
            continue
        pinned = "SHA-256 verified" if src.sha256 else "no SHA-256 pinned"
        print(f"download: {what} from {src.url} ({pinned})", file=sys.stderr)
        return path, src
    raise DownloadError(f"every source of {what} failed:\n" + "\n".join(failures)
                        + f"\n{OFFLINE_HINT}")
