"""UCF101 split lists: parsing, top-N class selection, group-aware validation split.

Format of the official lists (``UCF101TrainTestSplits-RecognitionTask.zip``; Soomro,
Zamir & Shah, CRCV-TR-12-01, 2012), all with CRLF line endings:

- ``classInd.txt``: ``"<1-based index> <ClassName>"``
- ``trainlist0N.txt``: ``"<Class>/<video>.avi <1-based index>"`` (the label may be
  missing, as in hand-made lists; it is then taken from the folder)
- ``testlist0N.txt``: ``"<Class>/<video>.avi"`` (no label)

The class is always the **folder** of a line, never parsed from the file name: the
official ``HandstandPushups`` folder holds files named ``v_HandStandPushups_...``.
A video name is ``v_<Class>_g<GG>_c<CC>.<ext>``; clips of one group ``gGG`` are cut
from one long source video, so the validation split is drawn by group.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from actionrec.errors import ConfigError, DatasetError

VIDEO_RE = re.compile(r"^v_(?P<name>.+)_g(?P<group>\d+)_c(?P<clip>\d+)\.(?P<ext>[A-Za-z0-9]+)$")

#: Columns of the manifest CSV written by the ``subsample`` stage, in order.
MANIFEST_COLUMNS = ["path", "video", "class_name", "label", "group", "clip", "split"]


@dataclass(frozen=True)
class ListEntry:
    """One line of a split list: ``path`` is relative to ``UCF-101/`` (``Class/v_...avi``)."""

    path: str
    class_name: str
    group: int
    clip: int
    split: str  # "train" or "test"


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DatasetError(f"split list {path} not found; is the dataset downloaded?") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def read_class_index(path: Path) -> dict[str, int]:
    """Parse ``classInd.txt`` into ``{class_name: 1-based index}``.

    Raises:
        DatasetError: a line is not ``"<int> <name>"`` or a class appears twice.
    """
    classes: dict[str, int] = {}
    for n, line in enumerate(_lines(path), start=1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(f"{path}:{n}: expected '<index> <ClassName>', got {line!r}")
        if parts[1] in classes:
            raise DatasetError(f"{path}:{n}: class {parts[1]!r} listed twice")
        classes[parts[1]] = int(parts[0])
    return classes


def parse_video_name(filename: str) -> tuple[int, int]:
    """Return ``(group, clip)`` from ``v_<Class>_gGG_cCC.<ext>``.

    Raises:
        DatasetError: the name does not follow the UCF101 pattern.
    """
    m = VIDEO_RE.match(filename)
    if not m:
        raise DatasetError(
            f"video name {filename!r} does not match 'v_<Class>_g<GG>_c<CC>.<ext>'"
        )
    return int(m["group"]), int(m["clip"])


def read_split_list(path: Path, split: str, class_index: dict[str, int]) -> list[ListEntry]:
    """Parse a train or test list. ``split`` is ``"train"`` or ``"test"``.

    Raises:
        DatasetError: unknown class folder, a label that contradicts ``classInd.txt``,
            a malformed line or a video listed twice.
    """
    entries: list[ListEntry] = []
    seen: set[str] = set()
    for n, line in enumerate(_lines(path), start=1):
        parts = line.split()
        rel = parts[0]
        if "/" not in rel or len(parts) > 2:
            raise DatasetError(f"{path}:{n}: expected '<Class>/<video> [label]', got {line!r}")
        class_name, filename = rel.split("/", 1)
        if class_name not in class_index:
            raise DatasetError(f"{path}:{n}: class folder {class_name!r} is not in classInd.txt")
        if len(parts) == 2 and int(parts[1]) != class_index[class_name]:
            raise DatasetError(
                f"{path}:{n}: label {parts[1]} contradicts classInd.txt "
                f"({class_name} = {class_index[class_name]})"
            )
        if rel in seen:
            raise DatasetError(f"{path}:{n}: {rel} listed twice")
        seen.add(rel)
        group, clip = parse_video_name(filename)
        entries.append(ListEntry(rel, class_name, group, clip, split))
    return entries


def read_split(list_dir: Path, split: int) -> tuple[dict[str, int], list[ListEntry]]:
    """Read ``classInd.txt`` and official split ``split`` (1, 2 or 3): train + test entries."""
    class_index = read_class_index(list_dir / "classInd.txt")
    train = read_split_list(list_dir / f"trainlist0{split}.txt", "train", class_index)
    test = read_split_list(list_dir / f"testlist0{split}.txt", "test", class_index)
    return class_index, train + test


def select_top_classes(entries: list[ListEntry], n: int) -> list[str]:
    """The ``n`` classes with the most **train** clips, ties broken by a fixed rule.

    Order: train count (descending), then total clips train + test (descending),
    then class name (ascending). On official split 1 the top 5 are Punch (121),
    PlayingCello (120), CricketShot and ShavingBeard (118 each; 167 vs 161 clips in
    total), then TennisSwing over PlayingGuitar (117 each; 166 vs 160 in total): the
    CricketShot, PlayingCello, Punch, ShavingBeard, TennisSwing subset of the Keras
    CNN-RNN video classification example (594 train / 224 test clips).

    Returns:
        The chosen class names, sorted alphabetically (that order defines the labels).

    Raises:
        DatasetError: fewer than ``n`` classes have any train clip.
    """
    train = Counter(e.class_name for e in entries if e.split == "train")
    total = Counter(e.class_name for e in entries)
    if len(train) < n:
        raise DatasetError(f"top_n={n} but only {len(train)} classes have train clips")
    ranked = sorted(train, key=lambda c: (-train[c], -total[c], c))
    return sorted(ranked[:n])


def assign_validation_groups(
    entries: list[ListEntry], fraction: float, seed: int
) -> list[ListEntry]:
    """Move whole groups from ``train`` to ``val``: the same group numbers in every class.

    ``round(fraction * n)`` of the ``n`` group numbers found in the train list (at
    least one when ``fraction > 0``, at most ``n - 1``) are drawn with
    ``numpy.random.default_rng(seed)``; every class's clips of those groups become
    validation clips. No group is ever in two splits, and like the official test
    split (g01-g07 in every class) the validation split is a set of group numbers.
    Drawing per class instead would leak, not in UCF101, but wherever a group number
    means the same scene in every class (as in the synthetic data): a model would
    learn "this scene is never class X" from the train groups and be wrong on every
    validation clip.

    Raises:
        DatasetError: ``fraction > 0`` and some class would have no train or no
            validation group left.
    """
    if fraction <= 0:
        return list(entries)
    train_groups: dict[str, set[int]] = {}
    for e in entries:
        if e.split == "train":
            train_groups.setdefault(e.class_name, set()).add(e.group)
    numbers = sorted(set().union(*train_groups.values())) if train_groups else []
    if len(numbers) < 2:
        raise DatasetError(
            f"the train list has {len(numbers)} group number(s); a group-aware validation "
            "split needs two. Set data.val_fraction: 0 or add clips."
        )
    k = min(max(1, round(fraction * len(numbers))), len(numbers) - 1)
    rng = np.random.default_rng(seed)
    val = {int(g) for g in rng.choice(numbers, size=k, replace=False)}
    for class_name, groups in sorted(train_groups.items()):
        if not groups - val or not groups & val:
            raise DatasetError(
                f"class {class_name!r} has train groups {sorted(groups)}; validation groups "
                f"{sorted(val)} leave it no {'train' if not groups - val else 'validation'} "
                "group. Change data.val_seed or data.val_fraction, or set data.val_fraction: 0."
            )
    return [
        ListEntry(e.path, e.class_name, e.group, e.clip, "val")
        if e.split == "train" and e.group in val
        else e
        for e in entries
    ]


def build_manifest(
    list_dir: Path,
    video_root: Path,
    split: int,
    top_n: int | None,
    classes: list[str] | None,
    val_fraction: float,
    val_seed: int,
    missing: str = "fail",
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Select classes and splits from the lists and check the videos are on disk.

    Args:
        list_dir: folder with ``classInd.txt`` and the split lists.
        video_root: the ``UCF-101`` folder that list paths are relative to.
        split: official split 1, 2 or 3.
        top_n: take the top-N classes by **split 1's** train count (see
            :func:`select_top_classes`), whatever ``split`` is: every split then has the
            same classes, so the three splits' results can be averaged (split 2's own top 5
            would share only three classes with split 1's, split 3's two).
        classes: an explicit class list; overrides ``top_n``.
        val_fraction, val_seed: see :func:`assign_validation_groups`.
        missing: ``"fail"`` or ``"drop"`` for listed videos that are not on disk.

    Returns:
        ``(manifest, class_names, missing_paths)``; manifest columns are
        :data:`MANIFEST_COLUMNS`, ``label`` is the 0-based index into ``class_names``
        (alphabetical), ``path`` is relative to ``video_root``.

    Raises:
        ConfigError: an explicit class is not in ``classInd.txt``.
        DatasetError: listed videos are missing and ``missing == "fail"``, or a class
            loses all its clips of a split.
    """
    class_index, entries = read_split(list_dir, split)
    if classes is not None:
        unknown = [c for c in classes if c not in class_index]
        if unknown:
            raise ConfigError(
                f"data.classes: unknown class(es) {unknown}; see {list_dir / 'classInd.txt'}"
            )
        chosen = sorted(classes)
    else:  # chosen once, by split 1's train counts, and kept for splits 2 and 3
        chosen = select_top_classes(entries if split == 1 else read_split(list_dir, 1)[1],
                                    top_n or 0)
    entries = [e for e in entries if e.class_name in chosen]
    entries = assign_validation_groups(entries, val_fraction, val_seed)

    missing_paths = [e.path for e in entries if not (video_root / e.path).is_file()]
    if missing_paths and missing == "fail":
        shown = "\n  ".join(missing_paths[:10])
        raise DatasetError(
            f"{len(missing_paths)} listed video(s) not found under {video_root}:\n  {shown}\n"
            "Re-run the download stage, or set data.missing_videos: drop to skip them."
        )
    gone = set(missing_paths)
    entries = [e for e in entries if e.path not in gone]

    label = {c: i for i, c in enumerate(chosen)}
    manifest = pd.DataFrame(
        [
            {
                "path": e.path,
                "video": Path(e.path).stem,
                "class_name": e.class_name,
                "label": label[e.class_name],
                "group": e.group,
                "clip": e.clip,
                "split": e.split,
            }
            for e in entries
        ],
        columns=MANIFEST_COLUMNS,
    )
    for split_name in sorted(set(manifest["split"])):
        have = set(manifest.loc[manifest["split"] == split_name, "class_name"])
        lost = [c for c in chosen if c not in have]
        if lost:
            raise DatasetError(f"split {split_name!r} has no clip of class(es) {lost}")
    order = {"train": 0, "val": 1, "test": 2}
    manifest = manifest.sort_values(
        ["split", "class_name", "group", "clip"],
        key=lambda col: col.map(order) if col.name == "split" else col,
    ).reset_index(drop=True)
    return manifest, chosen, missing_paths
