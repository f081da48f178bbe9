"""Archive extraction on the 47 real RAR archives of ``../shared/rar_fixtures``, driven by
their ``.exp`` listings, and on zip / tar files made here."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import zlib
from pathlib import Path

import pytest
from tqdm import tqdm

from actionrec.data import archives
from actionrec.data.archives import extract_archive, list_archive
from actionrec.errors import (
    ArchiveCorrupt,
    ArchiveEncrypted,
    ArchiveError,
    ArchiveUnsafe,
    ArchiveUnsupported,
    ArchiveVolumeMissing,
    NotEnoughSpace,
)
from tests.helpers import shared_path, targz_bytes, zip_bytes
from tests.rar_listing import first_volumes, read_listing

FIXTURES = shared_path() / "rar_fixtures"
NAMES = [p.name for p in first_volumes(FIXTURES)] if FIXTURES.is_dir() else ["(absent)"]

#: Archives no installed reader unpacks (docs/data.md, "Archives"): RAR 1.5 members packed
#: with RAR 1.5's own compression. libarchive 3.6 cannot parse RAR 1.5 headers ("Header
#: CRC error"); unar 1.10.1 parses them but stops inside FILE1.TXT's data ("Attempted to
#: read more data than was available"), though the archive is complete.
UNREADABLE = {"rar15-comment.rar", "rar15-comment-lock.rar"}

needs_unar = pytest.mark.skipif(shutil.which("unar") is None,
                                reason="unar is not installed (scripts/bootstrap.sh installs it)")


def _crcs(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): zlib.crc32(p.read_bytes())
            for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def _nothing_left(tmp_path: Path) -> None:
    assert list(tmp_path.iterdir()) == [], "a refused extraction left files behind"


@needs_unar
@pytest.mark.parametrize("name", NAMES)
def test_every_fixture_extracts_or_is_refused_as_its_listing_says(rar_fixtures, tmp_path, name):
    archive = rar_fixtures / name
    listing = read_listing(archive.with_name(name + ".exp"))
    dest = tmp_path / "out"
    if name in UNREADABLE:
        with pytest.raises(ArchiveUnsupported, match="RAR 1.5") as err:
            extract_archive(archive, dest, progress=False)
        assert "Delete" not in str(err.value) and "would not help" in str(err.value)
        _nothing_left(tmp_path)
    elif listing.expected == "encrypted":
        with pytest.raises(ArchiveEncrypted, match="encrypted; a password is needed, which "
                                                   "the pipeline does not support"):
            extract_archive(archive, dest, progress=False)
        _nothing_left(tmp_path)
    elif listing.expected == "refused":
        with pytest.raises(ArchiveUnsafe) as err:
            extract_archive(archive, dest, progress=False)
        assert repr(listing.links[0]) in str(err.value)  # names the first link
        _nothing_left(tmp_path)
        assert not (rar_fixtures.parent / "pwned.txt").exists()
    elif listing.expected == "volume missing":
        with pytest.raises(ArchiveVolumeMissing, match=listing.missing_volume()):
            extract_archive(archive, dest, progress=False)
        _nothing_left(tmp_path)
    else:
        extract_archive(archive, dest, progress=False)
        want = listing.file_crcs()
        got = _crcs(dest)
        assert set(got) == set(want)
        for member, crc in want.items():
            if crc is not None:  # rar5-blake stores BLAKE2sp, not CRC32
                assert got[member] == crc, member
        for folder in listing.dirs():
            assert (dest / folder).is_dir()
        assert not [p for p in dest.rglob("*") if p.is_symlink()]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("name", ["rar3-solid.rar", "rar5-solid.rar", "unicode.rar"])
def test_a_truncated_solid_archive_is_corrupt_not_unsupported(rar_fixtures, tmp_path, name):
    data = (rar_fixtures / name).read_bytes()
    cut = tmp_path / name
    for size in range(1, len(data)):  # every possible cut: headers, data, end block
        cut.write_bytes(data[:size])
        with pytest.raises(ArchiveCorrupt, match=f"Delete {cut}"):
            extract_archive(cut, tmp_path / "out", progress=False)
        assert not (tmp_path / "out").exists() and not (tmp_path / "out.extracting").exists()


@pytest.mark.parametrize("volume_set", ["rar3-vols", "rar5-vols"])
def test_a_volume_set_without_part2_names_it(rar_fixtures, tmp_path, volume_set):
    for part in (1, 3):
        shutil.copy(rar_fixtures / f"{volume_set}.part{part}.rar", tmp_path)
    with pytest.raises(ArchiveVolumeMissing, match=rf"{volume_set}\.part2\.rar is missing"):
        extract_archive(tmp_path / f"{volume_set}.part1.rar", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_later_part_is_not_taken_for_the_archive(rar_fixtures, tmp_path):
    with pytest.raises(archives.ArchiveError, match="later part of a RAR volume set"):
        extract_archive(rar_fixtures / "rar5-vols.part2.rar", tmp_path / "out", progress=False)


def test_a_free_space_shortfall_refuses_before_writing(rar_fixtures, tmp_path, monkeypatch):
    archive = rar_fixtures / "rar3-subdirs.rar"
    need = list_archive(archive).unpacked_bytes
    monkeypatch.setattr(archives, "free_bytes", lambda path: need - 1)
    with pytest.raises(NotEnoughSpace, match=f"unpacks to {need:,} bytes .* only {need - 1:,} "
                                             "bytes .* are free"):
        extract_archive(archive, tmp_path / "out", progress=False)
    _nothing_left(tmp_path)


@needs_unar
def test_libarchive_alone_calls_solid_rar4_unsupported_not_corrupt(rar_fixtures, tmp_path):
    with pytest.raises(ArchiveUnsupported, match="a solid RAR 2.9-4 archive") as err:
        extract_archive(rar_fixtures / "rar3-solid.rar", tmp_path / "out", progress=False,
                        readers=["libarchive"])
    assert "solid archive support unavailable" in str(err.value)
    assert "Delete" not in str(err.value)


def test_without_unar_the_error_says_to_install_it(rar_fixtures, tmp_path, monkeypatch):
    monkeypatch.setattr(archives.shutil, "which", lambda exe: None)
    with pytest.raises(ArchiveUnsupported, match="install unar"):
        extract_archive(rar_fixtures / "rar3-solid.rar", tmp_path / "out", progress=False)
    _nothing_left(tmp_path)


@needs_unar
def test_unar_reads_an_archive_beside_similarly_named_ones(rar_fixtures, tmp_path):
    # unar alone on ctime5.rar in its folder takes ctime0..4.rar for earlier volumes of
    # one set and fails; the private folder of links keeps it to the one archive.
    extract_archive(rar_fixtures / "ctime5.rar", tmp_path / "out", progress=False,
                    readers=["unar"])
    assert _crcs(tmp_path / "out") == read_listing(rar_fixtures / "ctime5.rar.exp").file_crcs()


@needs_unar
@pytest.mark.parametrize("reader", ["libarchive", "unar"])
def test_progress_bar_counts_every_unpacked_byte(rar_fixtures, tmp_path, reader):
    listing = list_archive(rar_fixtures / "rar5-subdirs.rar")
    work = tmp_path / "work"
    work.mkdir()
    with tqdm(total=listing.unpacked_bytes, file=io.StringIO()) as bar:
        archives.READERS[reader](listing, work, bar)
        assert bar.n == listing.unpacked_bytes > 0


@needs_unar
def test_rar5_file_copies_are_written_as_files_by_both_readers(rar_fixtures, tmp_path):
    for reader in ("libarchive", "unar"):
        out = extract_archive(rar_fixtures / "rar5-dups.rar", tmp_path / reader,
                              progress=False, readers=[reader])
        assert _crcs(out) == read_listing(rar_fixtures / "rar5-dups.rar.exp").file_crcs()


def _tar(tmp_path: Path, member: tarfile.TarInfo) -> Path:
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w") as tf:
        ok = tarfile.TarInfo("ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        tf.addfile(member)
    return path


@pytest.mark.parametrize("kind,word", [(tarfile.FIFOTYPE, "device or special file"),
                                       (tarfile.CHRTYPE, "device or special file"),
                                       (tarfile.LNKTYPE, "hard link")])
def test_special_members_of_a_tar_are_refused(tmp_path, kind, word):
    member = tarfile.TarInfo("odd")
    member.type, member.linkname = kind, "ok.txt" if kind == tarfile.LNKTYPE else ""
    archive = _tar(tmp_path, member)
    with pytest.raises(ArchiveUnsafe, match=f"'odd'.* is a {word}"):
        extract_archive(archive, tmp_path / "out", progress=False)
    assert sorted(os.listdir(tmp_path)) == ["a.tar"]


@pytest.mark.parametrize("pack", [zip_bytes, targz_bytes])
def test_extracts_zip_and_targz(tmp_path, pack):
    archive = tmp_path / "a.bin"
    archive.write_bytes(pack({"top/a.txt": b"a", "top/sub/b.txt": b"bb"}))
    out = extract_archive(archive, tmp_path / "out", progress=False)
    assert (out / "top" / "sub" / "b.txt").read_bytes() == b"bb"
    assert not (tmp_path / "out.extracting").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "top/../../evil.txt", "/tmp/evil.txt"])
@pytest.mark.parametrize("pack", [zip_bytes, targz_bytes])
def test_member_escaping_the_folder_is_refused(tmp_path, pack, name):
    archive = tmp_path / "a.bin"
    archive.write_bytes(pack({"ok.txt": b"fine", name: b"evil"}))
    with pytest.raises(ArchiveError, match="outside the target folder"):
        extract_archive(archive, tmp_path / "deep" / "out", progress=False)
    assert not list(tmp_path.rglob("evil.txt"))
    assert not (tmp_path / "deep" / "out").exists()
    assert not (tmp_path / "deep" / "out.extracting").exists()


def test_symlink_member_is_refused(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    (tmp_path / "a.tgz").write_bytes(buf.getvalue())
    with pytest.raises(ArchiveError, match="is a symbolic link"):
        extract_archive(tmp_path / "a.tgz", tmp_path / "out", progress=False)


def test_corrupt_archive_says_to_delete_and_retry(tmp_path):
    data = zip_bytes({f"f{i}.bin": os.urandom(20_000) for i in range(5)})
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.rar").write_bytes(os.urandom(5000))
    for name in ("cut.zip", "noise.rar"):
        with pytest.raises(ArchiveCorrupt, match=rf"corrupt or not .*Delete .*{name} and run "
                                                 "again to download it anew"):
            extract_archive(tmp_path / name, tmp_path / "out", progress=False)
        assert not (tmp_path / "out").exists()
