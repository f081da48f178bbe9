"""Which archive reader goes first: each reader alone, and the shipped order, on the real
RAR archives of ``../shared/rar_fixtures``, plus unpacking speed on a generated zip.

For every first volume (47 archives), the ``.exp`` listing says what a correct result
is (tests/rar_listing.py): the files with their CRC32s, or a refusal (encrypted, a link,
a missing part). Each reader setting runs :func:`actionrec.data.archives.extract_archive`
and the table counts the archives it got right; the archives it got wrong are named.
Then a stored zip of 40 random 10 MB files (both readers read zip; a large RAR cannot be
made without RARLAB's non-free tool) is unpacked three times per reader: unpacking is
disk-bound, so this shows each reader's overhead rather than its decompressor.

    python benchmarks/archive_readers.py                 # ~30 s
    python benchmarks/archive_readers.py --shared /path/to/shared
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from actionrec import errors  # noqa: E402
from actionrec.data.archives import extract_archive  # noqa: E402
from tests.rar_listing import first_volumes, read_listing  # noqa: E402

SETTINGS = {"libarchive alone": ["libarchive"], "unar alone": ["unar"],
            "shipped: libarchive, then unar": None}
EXPECTED_ERROR = {"encrypted": errors.ArchiveEncrypted, "refused": errors.ArchiveUnsafe,
                  "volume missing": errors.ArchiveVolumeMissing}


def _right(archive: Path, readers: list[str] | None, scratch: Path) -> bool:
    listing = read_listing(archive.with_name(archive.name + ".exp"))
    dest = scratch / "out"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        extract_archive(archive, dest, progress=False, readers=readers)
    except errors.ArchiveError as err:
        return isinstance(err, EXPECTED_ERROR.get(listing.expected, ()))
    got = {p.relative_to(dest).as_posix(): zlib.crc32(p.read_bytes())
           for p in dest.rglob("*") if p.is_file()}
    want = listing.file_crcs()
    return listing.expected == "extracted" and set(got) == set(want) and all(
        crc is None or got[name] == crc for name, crc in want.items())


def fixtures_table(folder: Path, scratch: Path) -> None:
    archives = first_volumes(folder)
    unpackable = [a for a in archives
                  if read_listing(a.with_name(a.name + ".exp")).expected == "extracted"]
    print(f"\n{len(archives)} first volumes in {folder}; {len(unpackable)} unpackable, "
          f"{len(archives) - len(unpackable)} to refuse\n")
    print(f"| reader | right (of {len(archives)}) | unpacked (of {len(unpackable)}) | wrong |")
    print("|---|---:|---:|---|")
    for label, readers in SETTINGS.items():
        wrong = [a.name for a in archives if not _right(a, readers, scratch)]
        unpacked = sum(a.name not in wrong for a in unpackable)
        print(f"| {label} | {len(archives) - len(wrong)} | {unpacked} | "
              f"{', '.join(wrong) or '-'} |")


def speed_table(scratch: Path) -> None:
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    archive = scratch / "stored.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(40):
            zf.writestr(f"UCF-101/C{i % 5}/v_{i:02d}.avi", os.urandom(10_000_000))
    size = archive.stat().st_size
    print(f"\nunpacking a stored zip of {size / 1e6:.0f} MB (40 files), best of 3:\n")
    print("| reader | seconds | MB/s |")
    print("|---|---:|---:|")
    for reader in ("libarchive", "unar"):
        times = []
        for _ in range(3):
            shutil.rmtree(scratch / "out", ignore_errors=True)
            t0 = time.perf_counter()
            extract_archive(archive, scratch / "out", progress=False, readers=[reader])
            times.append(time.perf_counter() - t0)
        print(f"| {reader} | {min(times):.2f} | {size / 1e6 / min(times):.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared",
                    help="the reference data folder holding rar_fixtures/ (default ../shared)")
    args = ap.parse_args()
    import libarchive.ffi

    v = libarchive.ffi.version_number()
    unar = subprocess.run(["unar", "-v"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("unar") else "not installed"
    print(f"libarchive {v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}; unar {unar}; "
          f"{os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        if (args.shared / "rar_fixtures").is_dir():
            fixtures_table(args.shared / "rar_fixtures", Path(tmp) / "fx")
        else:
            print(f"\n{args.shared / 'rar_fixtures'} not found: fixture table skipped")
        speed_table(Path(tmp) / "speed")


if __name__ == "__main__":
    main()
