"""Dataset sources: each one fills a folder with the same raw UCF101 layout.

    <out>/UCF-101/<Class>/v_<Class>_g<GG>_c<CC>.<avi|mp4>
    <out>/ucfTrainTestlist/classInd.txt, trainlist0N.txt, testlist0N.txt

``data.source`` picks one of :data:`SOURCES`: ``ucf101`` (official archive + split
zip), ``ucf101_top5`` (the Keras example's tarball), ``local`` (an existing folder)
or ``synthetic`` (generated, offline). Downloads are kept in a cache folder that is
*not* a DVC output, so an interrupted download resumes on the next ``dvc repro``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pandas as pd

from actionrec.config import DataSettings
from actionrec.data import synthetic
from actionrec.data.download import download, download_first, extract_archive
from actionrec.data.layout import LIST_DIR, VIDEO_DIR
from actionrec.data.splits import read_class_index, read_split_list
from actionrec.data.video import VIDEO_EXTENSIONS
from actionrec.errors import DatasetError
from actionrec.io import atomic_dir, write_text


def _find_dir(root: Path, name: str) -> Path:
    """The shallowest folder called ``name`` under ``root`` (archives nest differently)."""
    hits = sorted((p for p in root.rglob(name) if p.is_dir()), key=lambda p: len(p.parts))
    if not hits:
        raise DatasetError(f"no {name}/ folder found in {root}")
    return hits[0]


def _download_kwargs(data: DataSettings) -> dict:
    d = data.download
    return {"retries": d.retries, "timeout_s": d.timeout_s, "backoff_s": d.backoff_s,
            "chunk_bytes": d.chunk_bytes}


def fetch_ucf101(data: DataSettings, out: Path, cache: Path) -> None:
    """Official UCF101 (13,320 clips, 6.5 GB) and its split lists, each from the first of
    its sources that works (``data.ucf101.videos`` / ``.splits``). Whatever the source,
    the result is ``UCF-101/<Class>/`` and ``ucfTrainTestlist/``."""
    src = data.ucf101
    kw = _download_kwargs(data)
    videos, video_source = download_first(src.videos, cache, "the UCF101 videos", **kw)
    lists, _ = download_first(src.splits, cache, "the UCF101 split lists", **kw)
    extract_archive(lists, out / ".lists")
    _find_dir(out / ".lists", LIST_DIR).rename(out / LIST_DIR)
    shutil.rmtree(out / ".lists")
    extract_archive(videos, out / ".videos")
    if video_source.layout == "flat":
        sort_flat_clips(_find_clip_dir(out / ".videos"), out / LIST_DIR, out / VIDEO_DIR)
    else:
        _find_dir(out / ".videos", VIDEO_DIR).rename(out / VIDEO_DIR)
    shutil.rmtree(out / ".videos")


def _find_clip_dir(root: Path) -> Path:
    """The folder holding a flat archive's clips (the one with the most video files)."""
    counts: dict[Path, int] = {}
    for p in root.rglob("*"):
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
            counts[p.parent] = counts.get(p.parent, 0) + 1
    if not counts:
        raise DatasetError(f"no video files found in {root}")
    return max(counts, key=counts.get)


def sort_flat_clips(flat: Path, lists: Path, videos: Path) -> int:
    """Move a flat folder of UCF101 clips into ``videos/<Class>/`` as the split lists say.

    The lists name every clip as ``<Class>/<file>``; a clip is matched to its entry by
    file name without regard to case, and takes the listed spelling (the THUMOS mirror
    writes ``v_HandstandPushups_...`` where the lists say
    ``HandstandPushups/v_HandStandPushups_...``).

    Returns:
        The number of clips placed.

    Raises:
        DatasetError: a listed clip is missing, or a clip is in no list (the first few
            are named, with the counts).
    """
    class_index = read_class_index(lists / "classInd.txt")
    listed: dict[str, str] = {}
    for path in sorted(lists.glob("*list0*.txt")):  # every split: the same clips, reordered
        split = "train" if path.name.startswith("train") else "test"
        for entry in read_split_list(path, split, class_index):
            listed[PurePosixPath(entry.path).name.lower()] = entry.path
    found = {p.name.lower(): p for p in flat.iterdir()
             if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS}
    missing = sorted(listed[k] for k in listed.keys() - found.keys())
    extra = sorted(found[k].name for k in found.keys() - listed.keys())
    if missing or extra:
        raise DatasetError(
            f"{flat}: {len(found)} clips against {len(listed)} in the split lists; "
            + (f"{len(missing)} listed clip(s) missing (e.g. {missing[:3]})" if missing else "")
            + ("; " if missing and extra else "")
            + (f"{len(extra)} clip(s) in no list (e.g. {extra[:3]})" if extra else "")
            + ". Is the archive complete and the right release?")
    for key, rel in listed.items():
        target = videos / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        found[key].rename(target)
    return len(listed)


def fetch_ucf101_top5(data: DataSettings, out: Path, cache: Path) -> None:
    """The Keras example's tarball (``train/``, ``test/``, ``train.csv``, ``test.csv``
    with columns ``video_name,tag``), rewritten as split 1 of a 5-class UCF101."""
    src = data.ucf101_top5
    tarball = download(src.url, cache / Path(src.url).name, sha256=src.sha256,
                       **_download_kwargs(data))
    work = extract_archive(tarball, out / ".top5")
    base = _find_dir(work, "train").parent
    tables = {}
    for split in ("train", "test"):
        csv = base / f"{split}.csv"
        if not csv.is_file():
            raise DatasetError(f"{tarball.name} has no {split}.csv; is it the top-5 tarball?")
        tables[split] = pd.read_csv(csv)
        missing_cols = {"video_name", "tag"} - set(tables[split].columns)
        if missing_cols:
            raise DatasetError(f"{csv.name} lacks column(s) {sorted(missing_cols)}")
    classes = sorted(set(tables["train"]["tag"]) | set(tables["test"]["tag"]))
    index = {c: i for i, c in enumerate(classes, start=1)}
    lines: dict[str, list[str]] = {"train": [], "test": []}
    for split, table in tables.items():
        for video, tag in zip(table["video_name"], table["tag"], strict=True):
            target = out / VIDEO_DIR / tag / video
            target.parent.mkdir(parents=True, exist_ok=True)
            (base / split / video).rename(target)
            label = f" {index[tag]}" if split == "train" else ""
            lines[split].append(f"{tag}/{video}{label}\r\n")
    lists = out / LIST_DIR
    write_text(lists / "classInd.txt", "".join(f"{i} {c}\r\n" for c, i in index.items()))
    write_text(lists / "trainlist01.txt", "".join(lines["train"]))
    write_text(lists / "testlist01.txt", "".join(lines["test"]))
    shutil.rmtree(work)


def fetch_local(data: DataSettings, out: Path, cache: Path) -> None:
    """Copy an existing UCF101-layout folder (``data.local.root``); .avi and .mp4 alike."""
    root = Path(data.local.root).expanduser()
    for name in (VIDEO_DIR, LIST_DIR):
        if not (root / name).is_dir():
            raise DatasetError(
                f"data.local.root={root} has no {name}/ folder; expected the UCF101 layout "
                f"{VIDEO_DIR}/<Class>/<video>.avi + {LIST_DIR}/classInd.txt, trainlist0N.txt, "
                "testlist0N.txt"
            )
    shutil.copytree(root / LIST_DIR, out / LIST_DIR)
    shutil.copytree(
        root / VIDEO_DIR, out / VIDEO_DIR,
        ignore=lambda d, names: [n for n in names if (Path(d) / n).is_file()
                                 and Path(n).suffix.lower() not in VIDEO_EXTENSIONS],
    )


def fetch_synthetic(data: DataSettings, out: Path, cache: Path) -> None:
    """Generate the synthetic stick-figure dataset (see :mod:`actionrec.data.synthetic`)."""
    s = data.synthetic
    synthetic.generate(out, s.actions, s.groups, s.test_groups, s.clips_per_group,
                       s.min_frames, s.max_frames, s.width, s.height, s.fps, s.seed,
                       variation=s.variation)


#: ``data.source`` -> function filling an empty folder with the raw layout.
SOURCES: dict[str, Callable[[DataSettings, Path, Path], None]] = {
    "ucf101": fetch_ucf101,
    "ucf101_top5": fetch_ucf101_top5,
    "local": fetch_local,
    "synthetic": fetch_synthetic,
}


def prepare_raw(data: DataSettings, out: str | Path, cache: str | Path) -> Path:
    """Build the raw layout for ``data.source`` at ``out`` (replaced atomically).

    The work happens in ``<out>.building``; ``out`` is swapped in only on success, so
    a failed or interrupted run never leaves a half-filled ``out``. Downloads are
    kept in ``cache`` for resuming.

    Raises:
        DownloadError, ArchiveError, DatasetError: see the source functions.
    """
    out, cache = Path(out), Path(cache)
    with atomic_dir(out, ".building") as building:
        SOURCES[data.source](data, building, cache)
    return out
