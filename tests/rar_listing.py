"""Expected results of extracting the RAR fixtures, read from their ``.exp`` listings.

``../shared/rar_fixtures/X.rar.exp`` is the rarfile project's header dump of
``X.rar`` (see ``../shared/README.md``): one block per member, opened by a
``FILE:`` (RAR 1.5-4) or ``R5_FILE:`` (RAR5) line carrying ``is=F--`` (file),
``is=-D-`` (directory) or ``is=--L`` (link), followed by indented ``key=value``
lines: ``name=``, ``flags=`` (RAR 1.5-4; ``PASSWORD`` marks an encrypted member),
``algo=`` (RAR5 encryption), ``redir: type=... destination=...`` (RAR5 links and
file copies) and ``crc=0x...`` (CRC32 of the unpacked member, over every volume).
The first volume's listing of a volume set covers the whole set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

#: RAR5 redirection types that make a member a link; ``FILE_COPY`` is not one: it is
#: a second copy of an earlier file's bytes, written out as a regular file.
LINK_TYPES = {"UNIX_SYMLINK", "WINDOWS_SYMLINK", "WINDOWS_JUNCTION", "HARD_LINK"}


@dataclass
class Member:
    """One member as listed: ``kind`` is ``"file"``, ``"dir"`` or ``"link"``."""

    name: str
    kind: str
    crc: int | None = None
    encrypted: bool = False
    redirect: str | None = None
    destination: str | None = None
    volume: int = 0


@dataclass
class Listing:
    """All members of one archive (a volume set's first part covers the whole set)."""

    archive: Path
    members: list[Member] = field(default_factory=list)

    @property
    def encrypted(self) -> bool:
        return any(m.encrypted for m in self.members)

    @property
    def links(self) -> list[str]:
        return [m.name for m in self.members
                if m.kind == "link" or (m.redirect or "") in LINK_TYPES]

    def missing_volume(self) -> str | None:
        """The first part of the volume set that is not beside the archive, else ``None``.

        Each member's ``vol=`` is the 0-based part it ends in, so the set has
        ``max(vol) + 1`` parts, named by RAR's two schemes: ``name.part1.rar``,
        ``name.part2.rar``, ... or ``name.rar``, ``name.r00``, ``name.r01``, ...
        (``rar3-old.rar`` lists members of ``rar3-old.r00``, which the fixtures lack).
        """
        parts = max((m.volume for m in self.members), default=0) + 1
        new = re.fullmatch(r"(.*\.part)(\d+)\.rar", self.archive.name)
        for i in range(1, parts):
            if new:
                name = f"{new.group(1)}{int(new.group(2)) + i:0{len(new.group(2))}d}.rar"
            else:
                name = f"{self.archive.stem}.r{i - 1:02d}"
            if not self.archive.with_name(name).exists():
                return name
        return None

    @property
    def expected(self) -> str:
        """``"encrypted"``, ``"refused"`` (it holds a link), ``"volume missing"`` or
        ``"extracted"``."""
        if self.encrypted:
            return "encrypted"
        if self.links:
            return "refused"
        if self.missing_volume():
            return "volume missing"
        return "extracted"

    def file_crcs(self) -> dict[str, int]:
        """``{member path: CRC32}`` of every regular file a correct extraction writes.

        A RAR5 ``FILE_COPY`` member lists CRC 0; its bytes are its destination's.
        """
        crcs = {m.name: m.crc for m in self.members if m.kind == "file" and not m.redirect}
        for m in self.members:
            if m.redirect == "FILE_COPY":
                crcs[m.name] = crcs[m.destination]
        return crcs

    def dirs(self) -> set[str]:
        return {m.name for m in self.members if m.kind == "dir"}


_KIND = {"F--": "file", "-D-": "dir", "--L": "link"}


def read_listing(exp: Path) -> Listing:
    """Parse ``X.rar.exp`` into a :class:`Listing` of ``X.rar``."""
    listing = Listing(archive=exp.with_suffix(""))
    member: Member | None = None
    for line in exp.read_text(encoding="utf-8", errors="replace").splitlines():
        head = re.match(r"(R5_)?FILE: .* is=(\S+)", line)
        if head:
            member = Member(name="", kind=_KIND[head.group(2)])
            listing.members.append(member)
            continue
        if member is None:
            continue
        text = line.strip()
        if text.startswith("name="):
            member.name = text[len("name="):]
        elif text.startswith("crc="):
            member.crc = int(text.split()[0][len("crc="):], 16)
        elif text.startswith("flags=") and "PASSWORD" in text or text.startswith("algo="):
            member.encrypted = True
        elif text.startswith("os=") and " vol=" in text:
            member.volume = int(text.split(" vol=")[1].split()[0])
        elif text.startswith("redir:"):
            fields = dict(part.split("=", 1) for part in text.split()[1:] if "=" in part)
            member.redirect = fields["type"]
            member.destination = text.split("destination=", 1)[1]
    return listing


def first_volumes(folder: Path) -> list[Path]:
    """Every archive a user would open: all ``*.rar`` but the 2nd+ part of a volume set."""
    return sorted(p for p in folder.glob("*.rar")
                  if not re.search(r"\.part([2-9]|\d\d+)\.rar$", p.name))
