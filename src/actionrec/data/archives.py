"""Safe archive extraction with two readers: libarchive first, Debian's ``unar`` for the rest.

UCF101 comes as one 6.5 GB RAR archive (RAR 2.9-4 era; whether it is solid is not
known), its split lists as a zip, the THUMOS mirror as a zip and the Keras example's
subset as a tar.gz. :func:`extract_archive` unpacks any of them into a fresh folder:

1. **List** every member before anything is written. RAR archives are listed by
   `rarfile <https://pypi.org/project/rarfile/>`_ (pure Python; reads the headers of
   every RAR version, 1.5 to 5, follows volume sets and reports solid archives,
   encryption, symbolic and hard links, junctions and RAR5 file copies); other
   formats by libarchive's header walk. The listing gives the unpacked size.
2. **Refuse** what must not be unpacked, naming the member: an absolute path, ``..``,
   a symbolic or hard link, a junction, a device file; an encrypted archive; a
   volume set with a part missing; data that ends before its listed size; more
   unpacked bytes than the disk has free.
3. **Unpack** into ``<dest>.extracting`` with a progress bar over the unpacked bytes,
   by the first reader that can: libarchive (in process, through ``libarchive-c``)
   for every single-file archive, then ``unar`` (Debian package ``unar``) when
   libarchive fails; volume sets go to ``unar`` directly. Measured on the 47 real
   RAR archives of ``../shared/rar_fixtures`` (docs/data.md, "Archives"): libarchive 3.6
   reads RAR5 and non-solid RAR 2.9-4 (25 of 36 unpackable archives) but not solid
   RAR 2.9-4, RAR 1.5-2.x or volume sets; unar 1.10.1 reads those too but writes
   RAR5 file copies as symbolic links and, run on a file beside similarly named
   files (``ctime0.rar`` ... ``ctime5.rar``), takes them for parts of one volume set
   and fails; so it is run on a private folder holding only the archive's own parts.
4. **Check** the result against the listing: every listed file is there with its
   listed size (and, on the libarchive path, its CRC32); nothing is a link; nothing
   appeared beside the destination. Then the folder is renamed to ``dest``; on any
   error it is removed, so nothing half-written looks like data.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from actionrec.errors import (
    ArchiveCorrupt,
    ArchiveEncrypted,
    ArchiveError,
    ArchiveUnsafe,
    ArchiveUnsupported,
    ArchiveVolumeMissing,
    NotEnoughSpace,
)

#: Member kinds that are refused: none of them is a file a dataset needs, and each can
#: make a later write land outside the destination.
REFUSED_KINDS = {"symlink": "a symbolic link", "hardlink": "a hard link",
                 "junction": "a Windows junction", "device": "a device or special file"}

# RAR5 redirection types (rarfile.RAR5_XREDIR_*: 1 Unix symlink, 2 Windows symlink,
# 3 junction, 4 hard link, 5 file copy).
_REDIRECT_KIND = {1: "symlink", 2: "symlink", 3: "junction", 4: "hardlink", 5: "copy"}
_RAR_VERSION = {15: "RAR 1.5", 20: "RAR 2.0", 26: "RAR 2.6", 29: "RAR 2.9-4", 36: "RAR 2.9-4",
                50: "RAR5"}


@dataclass(frozen=True)
class Member:
    """One archive member as listed.

    Attributes:
        name: its path inside the archive, ``/``-separated, as stored.
        kind: ``"file"``, ``"dir"``, ``"copy"`` (a RAR5 file copy: the bytes of
            ``target``), ``"symlink"``, ``"hardlink"``, ``"junction"`` or ``"device"``.
        size: unpacked size in bytes (``None`` where the format does not say).
        crc32: CRC32 of the unpacked bytes, where the archive stores one.
        encrypted: its data (or the archive's headers) need a password.
        target: the link or copy target, for links and copies.
    """

    name: str
    kind: str
    size: int | None = None
    crc32: int | None = None
    encrypted: bool = False
    target: str | None = None


@dataclass
class Listing:
    """Every member of an archive, read before anything is written.

    Attributes:
        archive: the archive file (the first part of a volume set).
        format: e.g. ``"RAR5"``, ``"solid RAR 2.9-4"``, ``"zip"``.
        volumes: every part, in order (one for a single-file archive).
        members: in archive order. Older file versions stored by RAR's ``-ver``
            switch (``name;N``) are left out, as ``unrar`` leaves them out.
    """

    archive: Path
    format: str
    volumes: list[Path]
    members: list[Member] = field(default_factory=list)

    @property
    def unpacked_bytes(self) -> int:
        """Bytes the extraction writes (files and copies)."""
        return sum(m.size or 0 for m in self.members if m.kind in ("file", "copy"))

    def files(self) -> dict[str, Member]:
        """``{name: member}`` of the regular files and copies."""
        return {m.name: m for m in self.members if m.kind in ("file", "copy")}


class _ReaderFailed(Exception):
    """One reader could not unpack the archive; ``message`` is what it said."""

    def __init__(self, reader: str, message: str, checksum: bool = False):
        super().__init__(f"{reader}: {message}")
        self.reader, self.message, self.checksum = reader, message, checksum


def _encrypted(archive: Path, detail: str = "") -> ArchiveEncrypted:
    """The one message for an archive that needs a password (``detail``: the readers' words)."""
    return ArchiveEncrypted(f"{archive} is encrypted; a password is needed, which the pipeline "
                            "does not support" + (f" ({detail})" if detail else ""))


def _delete_hint(archive: Path) -> str:
    return f"Delete {archive} and run again to download it anew."


# --------------------------------------------------------------------------- listing
def list_archive(archive: str | os.PathLike[str]) -> Listing:
    """List ``archive`` without writing anything.

    Raises:
        ArchiveCorrupt: the headers are damaged, or a member's data ends early.
        ArchiveEncrypted: the archive needs a password.
        ArchiveVolumeMissing: a part of a volume set is missing (named).
        ArchiveError: ``archive`` is a later part of a volume set, not its first.
    """
    import rarfile

    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"{archive} does not exist")
    if rarfile.is_rarfile(str(archive)):
        return _list_rar(archive)
    return _list_libarchive(archive)


def _list_rar(archive: Path) -> Listing:
    import rarfile

    ends = []  # end-of-archive blocks seen (rarfile maps RAR5's onto the same type)
    try:
        rf = rarfile.RarFile(str(archive), errors="strict", info_callback=lambda h: ends.append(
            h) if getattr(h, "type", None) == rarfile.RAR_BLOCK_ENDARC else None)
        infos = rf.infolist()
        volumes = [Path(v) for v in rf.volumelist()]
    except rarfile.NeedFirstVolume as err:
        raise ArchiveError(f"{archive} is a later part of a RAR volume set ({err}); "
                           "point at the first part (name.part1.rar or name.rar)") from None
    except rarfile.BadRarFile as err:
        missing = re.match(r"Cannot open next volume: (.+)", str(err))
        if missing:
            raise ArchiveVolumeMissing(
                f"{archive} is the first part of a RAR volume set, and its next part "
                f"{Path(missing.group(1)).name} is missing beside it "
                f"({Path(missing.group(1)).parent}); put every part in that folder"
            ) from None
        raise ArchiveCorrupt(f"{archive} is corrupt or truncated ({err}). "
                             + _delete_hint(archive)) from None
    except rarfile.Error as err:
        raise ArchiveCorrupt(f"{archive} is corrupt or not a RAR archive ({err}). "
                             + _delete_hint(archive)) from None
    version = max((i.extract_version or 0 for i in infos), default=0)
    fmt = _RAR_VERSION.get(version, f"RAR (version {version / 10:.1f})" if version else "RAR")
    if rf.is_solid():
        fmt = f"solid {fmt}"
    if len(volumes) > 1:
        fmt = f"{fmt} volume set of {len(volumes)} parts"
    listing = Listing(archive, fmt, volumes)
    if rf.needs_password():
        raise _encrypted(archive)
    # RAR 2.9 and later end every volume with an end-of-archive block; one missing from
    # the last volume means the download stopped short (rarfile's strict mode catches
    # that for RAR5 only). RAR 1.5-2.x write none: there the data offsets below decide.
    if len(ends) < len(volumes) and (ends or version >= 29):
        raise ArchiveCorrupt(f"{archive} is truncated: it ends before its end-of-archive "
                             "block. " + _delete_hint(archive))
    if not any(i.is_file() for i in infos):
        raise ArchiveCorrupt(f"{archive} holds no file: it is empty or was cut off before "
                             "its first file. " + _delete_hint(archive))
    size = archive.stat().st_size
    for info in infos:
        redirect = info.file_redir[0] if info.file_redir else None
        if redirect in _REDIRECT_KIND:
            kind = _REDIRECT_KIND[redirect]
        elif info.is_symlink():
            kind = "symlink"
        elif info.is_dir():
            kind = "dir"
        elif info.is_file():
            kind = "file"
        else:
            kind = "device"
        listing.members.append(Member(
            name=info.filename.rstrip("/"), kind=kind, size=info.file_size,
            crc32=info.CRC if kind == "file" and info.CRC else None,
            encrypted=info.needs_password(),
            target=info.file_redir[2] if info.file_redir else None,
        ))
        # rarfile stops quietly where a RAR 2.9-4 member's data is cut off; RAR5 it catches.
        single = len(volumes) == 1 and not info.flags & (rarfile.RAR_FILE_SPLIT_AFTER
                                                          | rarfile.RAR_FILE_SPLIT_BEFORE)
        end = (info.data_offset or 0) + (info.compress_size or 0)
        if single and end > size:
            raise ArchiveCorrupt(
                f"{archive} is truncated: the data of member {info.filename!r} ends at "
                f"byte {end:,}, but the file has {size:,} bytes. " + _delete_hint(archive))
    return listing


def _list_libarchive(archive: Path) -> Listing:
    import libarchive

    listing = Listing(archive, "archive", [archive])
    try:
        with libarchive.file_reader(str(archive)) as entries:
            for e in entries:
                if e.isdir:
                    kind = "dir"
                elif e.issym:
                    kind = "symlink"
                elif e.islnk:
                    kind = "hardlink"
                elif e.isreg:
                    kind = "file"
                else:
                    kind = "device"
                listing.members.append(Member(name=e.pathname.rstrip("/"), kind=kind,
                                              size=e.size, target=e.linkpath))
            name = entries.format_name  # known once a header was read
            listing.format = name.decode() if isinstance(name, bytes) else str(name or "archive")
    except libarchive.ArchiveError as err:
        _raise_libarchive(archive, err)
    return listing


def _raise_libarchive(archive: Path, err: Exception) -> None:
    text = str(err).split(" (errno=")[0]
    if re.search(r"ncrypt|assphrase|password", text):
        raise _encrypted(archive, text) from None
    raise ArchiveCorrupt(f"{archive} is corrupt or not an archive ({text}). "
                         + _delete_hint(archive)) from None


# --------------------------------------------------------------------------- checks
def member_path(root: Path, name: str) -> Path:
    """``root / name`` for an archive member name, refusing names that leave ``root``.

    Raises:
        ArchiveUnsafe: ``name`` is absolute (``/x``, ``C:x``, ``\\\\server``) or has a
            ``..`` component.
    """
    clean = name.replace("\\", "/")
    pure = PurePosixPath(clean)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", clean) or ".." in pure.parts:
        raise ArchiveUnsafe(f"archive member {name!r} would be written outside the target "
                            "folder; such archives are refused")
    return root.joinpath(*[p for p in pure.parts if p not in ("", ".")])


def check_listing(listing: Listing, dest: Path) -> None:
    """Refuse an archive before writing anything.

    Raises:
        ArchiveEncrypted: a member is encrypted.
        ArchiveUnsafe: a member escapes ``dest`` or is a link, junction or device.
        NotEnoughSpace: the unpacked size exceeds the free space where ``dest`` goes.
        ArchiveError: the archive holds no file.
    """
    archive = listing.archive
    if any(m.encrypted for m in listing.members):
        raise _encrypted(archive)
    for m in listing.members:
        try:
            member_path(dest, m.name)
        except ArchiveUnsafe as err:
            raise ArchiveUnsafe(f"{archive}: {err}") from None
        if m.kind in REFUSED_KINDS:
            target = f" -> {m.target}" if m.target else ""
            raise ArchiveUnsafe(
                f"{archive}: member {m.name!r}{target} is {REFUSED_KINDS[m.kind]}; links and "
                "special files are refused (they can redirect later writes outside the "
                "target folder), so nothing was unpacked")
    if not listing.files():
        raise ArchiveError(f"{archive} holds no file")
    need, free = listing.unpacked_bytes, free_bytes(dest)
    if need > free:
        raise NotEnoughSpace(
            f"{archive} unpacks to {need:,} bytes ({need / 1e9:.2f} GB) but only {free:,} "
            f"bytes ({free / 1e9:.2f} GB) are free where {dest} goes; free "
            f"{need - free:,} bytes or more and run again (nothing was written)")


def free_bytes(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


# --------------------------------------------------------------------------- readers
def _libarchive_reader(listing: Listing, work: Path, bar: tqdm) -> None:
    """Unpack with libarchive in process, checking each file's size and CRC32."""
    import libarchive

    wanted = {m.name: m for m in listing.members}
    try:
        with libarchive.file_reader(str(listing.archive)) as entries:
            for e in entries:
                name = e.pathname.rstrip("/")
                m = wanted.get(name)
                if m is None:
                    older = re.fullmatch(r"(.+);\d+", name)
                    if older and older.group(1) in wanted:  # RAR -ver: an older version
                        continue
                    raise _ReaderFailed("libarchive", f"it reads a member {name!r} that the "
                                        "listing does not have")
                target = member_path(work, name)
                if m.kind == "dir":
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if m.kind != "file":  # copies are made from their source afterwards
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                crc, n = 0, 0
                with open(target, "wb") as fh:
                    for block in e.get_blocks():
                        fh.write(block)
                        crc, n = zlib.crc32(block, crc), n + len(block)
                        bar.update(len(block))
                if m.crc32 is not None and crc != m.crc32:
                    raise _ReaderFailed("libarchive", f"member {name!r}: wrong checksum "
                                        f"(CRC32 {crc:08x}, listed {m.crc32:08x})",
                                        checksum=True)
                if m.size is not None and n != m.size:
                    raise _ReaderFailed("libarchive", f"member {name!r}: {n:,} bytes "
                                        f"unpacked, {m.size:,} listed")
    except libarchive.ArchiveError as err:
        text = str(err).split(" (errno=")[0]
        # A data checksum failure; not "Header CRC error", which libarchive 3.6 also says
        # of RAR 1.5-2.x headers that it cannot parse (rarfile checked their CRCs).
        checksum = re.search(r"(?i)file crc|checksum", text) is not None
        raise _ReaderFailed("libarchive", text, checksum=checksum) from None


def _tree_bytes(root: Path) -> int:
    total = 0
    for folder, _, names in os.walk(root):
        for name in names:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _unar_reader(listing: Listing, work: Path, bar: tqdm) -> None:
    """Unpack with ``unar`` on a private folder that holds only the archive's own parts."""
    exe = shutil.which("unar")
    if exe is None:
        raise _ReaderFailed("unar", "not installed (Debian/Ubuntu: apt-get install unar; "
                                    "macOS: brew install unar)")
    with tempfile.TemporaryDirectory(prefix=".volumes-", dir=work.parent) as stage:
        for volume in listing.volumes:
            os.symlink(volume.resolve(), Path(stage, volume.name))
        cmd = [exe, "-no-directory", "-force-overwrite", "-no-recursion", "-forks", "skip",
               "-password", "", "-output-directory", str(work),
               str(Path(stage, listing.volumes[0].name))]
        done = threading.Event()

        def poll() -> None:
            while not done.wait(0.5):
                bar.update(_tree_bytes(work) - bar.n)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        try:
            run = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                 text=True, errors="replace",
                                 env={**os.environ, "LC_ALL": "C.UTF-8"})
        finally:
            done.set()
            watcher.join()
        bar.update(_tree_bytes(work) - bar.n)
    said = (run.stdout + run.stderr).strip().splitlines()
    failed = [" ".join(line.split()) for line in said if "Failed!" in line]
    if run.returncode != 0 or failed:
        message = "; ".join(failed or said[-3:]) or f"exit status {run.returncode}"
        raise _ReaderFailed("unar", message, checksum="checksum" in message.lower())


Reader = Callable[[Listing, Path, tqdm], None]
READERS: dict[str, Reader] = {"libarchive": _libarchive_reader, "unar": _unar_reader}


def reader_order(listing: Listing) -> list[str]:
    """Readers to try, in order: ``unar`` alone for a volume set, else libarchive first."""
    return ["unar"] if len(listing.volumes) > 1 else ["libarchive", "unar"]


# --------------------------------------------------------------------------- result
def _settle(listing: Listing, work: Path, reader: str) -> None:
    """Make copies, drop older file versions, then check the tree against the listing.

    Raises:
        ArchiveUnsafe: the reader wrote a link.
        ArchiveError: the tree and the listing differ (a reader's fault: the listing
            already checked the archive).
    """
    files = listing.files()
    for m in listing.members:
        if m.kind == "copy":
            target = member_path(work, m.name)
            if target.is_symlink() or target.exists():
                target.unlink()
            source = member_path(work, m.target or "")
            if not source.is_file() or source.is_symlink():
                raise ArchiveCorrupt(f"{listing.archive}: member {m.name!r} is a copy of "
                                     f"{m.target!r}, which the archive does not hold")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    dirs = {m.name for m in listing.members if m.kind == "dir"}
    for folder, subdirs, names in os.walk(work):
        for name in subdirs + names:
            path = Path(folder, name)
            rel = path.relative_to(work).as_posix()
            if path.is_symlink():
                raise ArchiveUnsafe(f"{listing.archive}: {reader} wrote a link {rel!r}; "
                                    "nothing was kept")
            if path.is_dir():
                if not any(k == rel or k.startswith(rel + "/") for k in files.keys() | dirs):
                    raise ArchiveError(f"{listing.archive}: {reader} wrote folder {rel!r}, "
                                       "which the listing does not have; nothing was kept")
                continue
            if rel in files:
                continue
            older = re.fullmatch(r"(.+);\d+", rel)
            if older and older.group(1) in files:  # RAR -ver: keep only the newest version
                path.unlink()
                continue
            raise ArchiveError(f"{listing.archive}: {reader} wrote {rel!r}, which the "
                               "listing does not have; nothing was kept")
    for name, m in files.items():
        path = member_path(work, name)
        if not path.is_file():
            raise ArchiveError(f"{listing.archive}: {reader} did not write member {name!r}; "
                               "nothing was kept")
        if m.size is not None and path.stat().st_size != m.size:
            raise ArchiveError(f"{listing.archive}: {reader} wrote member {name!r} with "
                               f"{path.stat().st_size:,} bytes, {m.size:,} listed; nothing "
                               "was kept")


def _failure(listing: Listing, failures: list[_ReaderFailed]) -> ArchiveError:
    """The error that tells the truth about why no reader could unpack the archive."""
    archive = listing.archive
    said = "; ".join(str(f) for f in failures)
    if any(re.search(r"(?i)encrypt|passphrase|password", f.message) for f in failures):
        return _encrypted(archive, said)
    if any(f.checksum for f in failures):
        return ArchiveCorrupt(f"{archive} is corrupt: its data fails its checksum ({said}). "
                              + _delete_hint(archive))
    missing_unar = any(f.reader == "unar" and f.message.startswith("not installed")
                       for f in failures)
    hint = ("install unar, the second reader, and run again" if missing_unar else
            "unpack it with another tool (e.g. RARLAB's unrar) into a folder and point "
            "`data.local.root` at it with `data.source: local`")
    return ArchiveUnsupported(
        f"no installed reader can unpack {archive}, a {listing.format} archive ({said}). "
        f"Its headers are complete and intact, so downloading it again would not help: "
        f"{hint}")


def extract_archive(archive: str | os.PathLike[str], dest: str | os.PathLike[str],
                    progress: bool = True, readers: list[str] | None = None) -> Path:
    """Unpack ``archive`` (RAR 1.5-5, volume sets, zip, tar.gz, ...) into a fresh ``dest``.

    Args:
        archive: the file (for a volume set, its first part; the other parts beside it).
        dest: the folder to create; an existing one is replaced only on success.
        progress: show a tqdm bar over the unpacked bytes.
        readers: reader names to try (default :func:`reader_order`); tests use it to
            exercise one reader alone.

    Returns:
        ``dest``.

    Raises:
        ArchiveCorrupt: damaged, truncated, or a checksum fails (says to delete it).
        ArchiveUnsupported: no installed reader supports a feature (named); never says
            to download again.
        ArchiveEncrypted: a password is needed.
        ArchiveVolumeMissing: a part of a volume set is missing (named).
        ArchiveUnsafe: a member escapes ``dest`` or is a link, junction or device.
        NotEnoughSpace: the unpacked size exceeds the free space (nothing written).
    """
    from actionrec.io import atomic_dir

    archive, dest = Path(archive), Path(dest)
    unknown = set(readers or ()) - READERS.keys()
    if unknown:
        raise ValueError(f"unknown reader(s) {sorted(unknown)}; known: {sorted(READERS)}")
    listing = list_archive(archive)
    check_listing(listing, dest)
    parent = dest.absolute().parent
    before = set(os.listdir(parent)) if parent.is_dir() else set()
    failures: list[_ReaderFailed] = []
    with atomic_dir(dest, ".extracting") as work:
        for name in readers or reader_order(listing):
            with tqdm(total=listing.unpacked_bytes, unit="B", unit_scale=True,
                      unit_divisor=1024, desc=f"extract {archive.name} ({name})",
                      disable=not progress, leave=False) as bar:
                try:
                    READERS[name](listing, work, bar)
                except _ReaderFailed as failed:
                    failures.append(failed)
                    shutil.rmtree(work)
                    work.mkdir()
                    continue
            break
        else:
            raise _failure(listing, failures)
        _settle(listing, work, name)
        after = set(os.listdir(parent)) - before - {work.name, dest.name}
        after = {n for n in after if not n.startswith(".volumes-")}
        if after:
            raise ArchiveUnsafe(f"{archive}: unpacking created {sorted(after)} beside "
                                f"{dest}, outside the target folder; nothing was kept")
        print(f"extract: {archive.name} ({listing.format}, {len(listing.files()):,} files, "
              f"{listing.unpacked_bytes / 1e6:,.1f} MB) by {name}", file=sys.stderr)
    return dest
