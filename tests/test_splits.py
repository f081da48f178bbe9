"""Split lists: the official files, the sample's hand-made lists, top-N and group-aware val."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from actionrec.data.splits import (
    ListEntry,
    assign_validation_groups,
    build_manifest,
    parse_video_name,
    read_class_index,
    read_split,
    select_top_classes,
)
from actionrec.errors import ConfigError, DatasetError

TOP5 = ["CricketShot", "PlayingCello", "Punch", "ShavingBeard", "TennisSwing"]


def test_official_split_sizes_and_crlf(official_lists):
    assert b"\r\n" in (official_lists / "trainlist01.txt").read_bytes()
    classes, entries = read_split(official_lists, 1)
    assert len(classes) == 101 and classes["ApplyEyeMakeup"] == 1 and classes["YoYo"] == 101
    split = Counter(e.split for e in entries)
    assert split == {"train": 9537, "test": 3783}
    assert {e.group for e in entries if e.split == "test"} == set(range(1, 8))
    assert {e.group for e in entries if e.split == "train"} == set(range(8, 26))


def test_handstand_pushups_class_comes_from_the_folder(official_lists):
    _, entries = read_split(official_lists, 1)
    hs = [e for e in entries if "HandStandPushups" in e.path]
    assert hs and {e.class_name for e in hs} == {"HandstandPushups"}


@pytest.mark.parametrize("split", [1, 2, 3])
def test_every_official_split_parses(official_lists, split):
    _, entries = read_split(official_lists, split)
    assert len(entries) == 13320
    assert len({e.path for e in entries}) == 13320


def test_top5_of_split1_is_the_keras_example_subset(official_lists):
    _, entries = read_split(official_lists, 1)
    chosen = select_top_classes(entries, 5)
    assert chosen == TOP5
    kept = [e for e in entries if e.class_name in chosen]
    assert Counter(e.split for e in kept) == {"train": 594, "test": 224}


def test_top5_manifest_end_to_end_on_the_official_lists(official_lists, tmp_path):
    """build_manifest with empty stand-in files (the lists are real, the videos are not)."""
    _, entries = read_split(official_lists, 1)
    for e in entries:
        if e.class_name in TOP5:
            (tmp_path / e.path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / e.path).touch()
    manifest, classes, missing = build_manifest(official_lists, tmp_path, 1, 5, None, 0.2, 7)
    assert classes == TOP5 and missing == []
    assert len(manifest) == 818
    assert (manifest["split"] != "test").sum() == 594 and (manifest["split"] == "test").sum() == 224
    assert set(manifest["label"]) == set(range(5))
    assert all(manifest["label"] == manifest["class_name"].map(TOP5.index))
    per_group = manifest.groupby(["class_name", "group"])["split"].nunique()
    assert per_group.max() == 1, "a group ended up in two splits"
    for c in TOP5:
        assert set(manifest.loc[manifest.class_name == c, "split"]) == {"train", "val", "test"}


@pytest.mark.parametrize("split", [2, 3])
def test_every_split_keeps_split_1s_top_classes(official_lists, tmp_path, split):
    """Splits 2 and 3 by their own train counts would pick other classes (BoxingPunchingBag,
    HorseRiding, ...); the manifest keeps split 1's five, with this split's groups."""
    _, entries = read_split(official_lists, split)
    assert select_top_classes(entries, 5) != TOP5
    for e in entries:
        if e.class_name in TOP5:
            (tmp_path / e.path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / e.path).touch()
    manifest, classes, _ = build_manifest(official_lists, tmp_path, split, 5, None, 0.2, 7)
    assert classes == TOP5
    test_groups = set(manifest.loc[manifest["split"] == "test", "group"])
    first, _, _ = build_manifest(official_lists, tmp_path, 1, 5, None, 0.2, 7)
    assert test_groups != set(first.loc[first["split"] == "test", "group"])


def test_validation_split_is_by_group_seeded_and_proportional(official_lists):
    _, entries = read_split(official_lists, 1)
    entries = [e for e in entries if e.class_name in TOP5]
    a = assign_validation_groups(entries, 0.2, seed=1)
    b = assign_validation_groups(entries, 0.2, seed=1)
    c = assign_validation_groups(entries, 0.2, seed=2)
    assert a == b and a != c
    per_class = []
    for cls in TOP5:
        val_groups = {e.group for e in a if e.class_name == cls and e.split == "val"}
        train_groups = {e.group for e in a if e.class_name == cls and e.split == "train"}
        assert len(val_groups) == round(0.2 * 18) and not val_groups & train_groups
        per_class.append(val_groups)
    assert all(g == per_class[0] for g in per_class)  # the same group numbers in every class
    assert [e for e in a if e.split == "test"] == [e for e in entries if e.split == "test"]


def test_class_with_one_group_cannot_get_a_validation_split():
    entries = [ListEntry("A/v_A_g08_c01.avi", "A", 8, 1, "train"),
               ListEntry("A/v_A_g08_c02.avi", "A", 8, 2, "train")]
    with pytest.raises(DatasetError, match="needs two.*val_fraction: 0"):
        assign_validation_groups(entries, 0.2, 0)
    entries += [ListEntry("B/v_B_g09_c01.avi", "B", 9, 1, "train")]
    with pytest.raises(DatasetError, match=r"class '[AB]' has train groups \[(8|9)\]"):
        assign_validation_groups(entries, 0.2, 0)
    assert assign_validation_groups(entries, 0.0, 0) == entries


def test_sample_lists_without_labels_and_mp4(sample_dir):
    classes, entries = read_split(sample_dir / "ucfTrainTestlist", 1)
    train = [e for e in entries if e.split == "train"]
    assert {e.path for e in train} == {"Basketball/v_Basketball_g07_c04.mp4",
                                       "Biking/v_Biking_g05_c02.avi"}
    manifest, chosen, _ = build_manifest(sample_dir / "ucfTrainTestlist", sample_dir / "UCF-101",
                                         1, None, ["Biking", "Basketball"], 0.0, 0)
    assert chosen == ["Basketball", "Biking"]
    assert sorted(manifest["split"]) == ["test", "test", "train", "train"]


def test_unknown_explicit_class_is_a_config_error(sample_dir):
    with pytest.raises(ConfigError, match=r"data\.classes: unknown class\(es\) \['Moonwalk'\]"):
        build_manifest(sample_dir / "ucfTrainTestlist", sample_dir / "UCF-101", 1, None,
                       ["Biking", "Moonwalk"], 0.0, 0)


def test_missing_videos_fail_or_drop(synth_copy):
    victim = next((synth_copy / "UCF-101" / "Wave").glob("*g03_c01.avi"))
    victim.unlink()
    lists, videos = synth_copy / "ucfTrainTestlist", synth_copy / "UCF-101"
    msg = r"(?s)1 listed video\(s\) not found.*missing_videos: drop"
    with pytest.raises(DatasetError, match=msg):
        build_manifest(lists, videos, 1, 3, None, 0.3, 0, missing="fail")
    manifest, _, missing = build_manifest(lists, videos, 1, 3, None, 0.3, 0, missing="drop")
    assert missing == [f"Wave/{victim.name}"]
    assert f"Wave/{victim.name}" not in set(manifest["path"])


def test_malformed_lists_are_reported_with_line_numbers(synth_copy):
    lists = synth_copy / "ucfTrainTestlist"
    with open(lists / "trainlist01.txt", "a", newline="") as fh:
        fh.write("Wave/v_Wave_g04_c09.avi 1\r\n")  # label of another class
    with pytest.raises(DatasetError, match=r"trainlist01\.txt:\d+: label 1 contradicts"):
        read_split(lists, 1)
    shutil.copy(lists / "classInd.txt", lists / "bad.txt")
    (lists / "bad.txt").write_text("1 Wave\r\nWave\r\n")
    with pytest.raises(DatasetError, match=r"bad\.txt:2"):
        read_class_index(lists / "bad.txt")


def test_video_name_pattern():
    assert parse_video_name("v_HandStandPushups_g08_c04.avi") == (8, 4)
    with pytest.raises(DatasetError, match="does not match"):
        parse_video_name("clip.avi")
