"""The sources of the download stage (`data.source`: ucf101 from its mirrors, ucf101_top5,
the flat mirror layout) served by a real HTTP server on 127.0.0.1: the tree they leave in
`data/raw`, and what a failed source leaves (nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from actionrec.config import parse_params
from actionrec.data.sources import prepare_raw
from actionrec.data.splits import read_split
from actionrec.errors import DatasetError, DownloadError
from tests.helpers import targz_bytes, zip_bytes


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _params_for(repo_params: dict, source: str, **section) -> object:
    raw = {**repo_params, "data": {**repo_params["data"], "source": source,
                                   "download": {"retries": 2, "backoff_s": 0.01}}}
    raw["data"][source] = section
    return parse_params(raw)


def test_ucf101_source_downloads_and_extracts(file_server, synth_dir, tmp_path, repo_params):
    videos = {f"UCF101/UCF-101/{k.removeprefix('UCF-101/')}": v
              for k, v in _tree(synth_dir).items() if k.startswith("UCF-101/")}
    lists = {f"ucfTrainTestlist/{Path(k).name}": v
             for k, v in _tree(synth_dir).items() if k.startswith("ucfTrainTestlist/")}
    # libarchive detects the format from the bytes: a zip stands in for the RAR here.
    file_server.files["UCF101.rar"] = zip_bytes(videos)
    file_server.files["splits.zip"] = zip_bytes(lists)
    cfg = _params_for(repo_params, "ucf101", videos=[{"url": file_server.url("UCF101.rar")}],
                      splits=[{"url": file_server.url("splits.zip")}])
    out = prepare_raw(cfg.data, tmp_path / "raw", tmp_path / "cache")
    assert sorted(p.name for p in out.iterdir()) == ["UCF-101", "ucfTrainTestlist"]
    assert _tree(out) == _tree(synth_dir)
    assert (tmp_path / "cache" / "127.0.0.1" / "UCF101.rar").is_file()  # kept for the next run


def test_ucf101_top5_tarball_is_normalised(file_server, synth_dir, tmp_path, repo_params):
    _, entries = read_split(synth_dir / "ucfTrainTestlist", 1)
    members, rows = {}, {"train": ["video_name,tag"], "test": ["video_name,tag"]}
    for e in entries:
        name = Path(e.path).name
        members[f"{e.split}/{name}"] = (synth_dir / "UCF-101" / e.path).read_bytes()
        rows[e.split].append(f"{name},{e.class_name}")
    for split in rows:
        members[f"{split}.csv"] = ("\n".join(rows[split]) + "\n").encode()
    file_server.files["ucf101_top5.tar.gz"] = targz_bytes(members)
    cfg = _params_for(repo_params, "ucf101_top5", url=file_server.url("ucf101_top5.tar.gz"))
    out = prepare_raw(cfg.data, tmp_path / "raw", tmp_path / "cache")
    classes, got = read_split(out / "ucfTrainTestlist", 1)
    assert sorted(classes) == ["SitDown", "StandUp", "Wave"]
    assert sorted((e.path, e.split) for e in got) == sorted((e.path, e.split) for e in entries)
    assert all((out / "UCF-101" / e.path).is_file() for e in got)


def test_failed_source_leaves_no_half_filled_output(tmp_path, repo_params):
    cfg = _params_for(repo_params, "ucf101", videos=[{"url": "https://ucf101.invalid/UCF101.rar"}],
                      splits=[{"url": "https://ucf101.invalid/splits.zip"}])
    with pytest.raises(DownloadError):
        prepare_raw(cfg.data, tmp_path / "raw", tmp_path / "cache")
    assert not (tmp_path / "raw").exists() and not (tmp_path / "raw.building").exists()


def test_the_flat_mirror_layout_gives_the_same_tree_as_the_rar(file_server, synth_dir, tmp_path,
                                                              repo_params):
    """The THUMOS mirror's zip: one UCF101/ folder of every clip, and one class spelled
    differently from the lists (HandstandPushups/v_HandStandPushups_... in the lists,
    v_HandstandPushups_... in the zip). The stage sorts it into the lists' class folders."""
    tree = _tree(synth_dir)
    renamed = {}
    for rel, data in tree.items():  # one synthetic class plays HandstandPushups
        renamed[rel.replace("SitDown", "HandstandPushups").replace(
            "v_HandstandPushups_", "v_HandStandPushups_")] = data
    lists = {f"ucfTrainTestlist/{Path(k).name}": v.decode().replace("SitDown", "HandstandPushups")
             .replace("v_HandstandPushups_", "v_HandStandPushups_").encode()
             for k, v in renamed.items() if k.startswith("ucfTrainTestlist/")}
    flat = {f"UCF101/{Path(k).name.replace('HandStand', 'Handstand')}": v
            for k, v in renamed.items() if k.startswith("UCF-101/")}
    assert any("v_HandstandPushups_" in k for k in flat)
    file_server.files["UCF101_videos.zip"] = zip_bytes(flat)
    file_server.files["splits.zip"] = zip_bytes(lists)
    cfg = _params_for(repo_params, "ucf101",
                      videos=[{"url": file_server.url("UCF101.rar")},  # 404: next source
                              {"url": file_server.url("UCF101_videos.zip"), "layout": "flat"}],
                      splits=[{"url": file_server.url("splits.zip")}])
    out = prepare_raw(cfg.data, tmp_path / "raw", tmp_path / "cache")
    expected = {k: v for k, v in renamed.items() if k.startswith("UCF-101/")}
    expected.update({k: v for k, v in lists.items()})
    assert _tree(out) == expected
    assert any("HandstandPushups/v_HandStandPushups_" in k for k in _tree(out))


def test_a_flat_mirror_missing_a_listed_clip_is_refused(file_server, synth_dir, tmp_path,
                                                        repo_params):
    tree = _tree(synth_dir)
    lists = {f"ucfTrainTestlist/{Path(k).name}": v for k, v in tree.items()
             if k.startswith("ucfTrainTestlist/")}
    clips = sorted(k for k in tree if k.startswith("UCF-101/"))
    flat = {f"UCF101/{Path(k).name}": tree[k] for k in clips[1:]}  # the first one lost
    file_server.files["v.zip"] = zip_bytes(flat)
    file_server.files["splits.zip"] = zip_bytes(lists)
    cfg = _params_for(repo_params, "ucf101", videos=[{"url": file_server.url("v.zip"),
                                                      "layout": "flat"}],
                      splits=[{"url": file_server.url("splits.zip")}])
    with pytest.raises(DatasetError, match=r"1 listed clip\(s\) missing .*"
                                           + Path(clips[0]).name):
        prepare_raw(cfg.data, tmp_path / "raw", tmp_path / "cache")
    assert not (tmp_path / "raw").exists()
