"""HTTP download and archive extraction against a real server on 127.0.0.1 and real archives."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from actionrec.config import FileSource, parse_params
from actionrec.data.download import download, download_first, extract_archive
from actionrec.data.sources import prepare_raw
from actionrec.data.splits import read_split
from actionrec.errors import ArchiveCorrupt, ArchiveError, DatasetError, DownloadError

PAYLOAD = os.urandom(300_000)


def test_normal_transfer_with_checksum(file_server, tmp_path):
    file_server.files["blob.bin"] = PAYLOAD
    dest = download(file_server.url("blob.bin"), tmp_path / "blob.bin", progress=False,
                    sha256=hashlib.sha256(PAYLOAD).hexdigest(), chunk_bytes=4096)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "blob.bin.part").exists()
    # A second call reuses the verified file without asking the server again.
    n = len(file_server.requests)
    download(file_server.url("blob.bin"), dest, progress=False)
    assert len(file_server.requests) == n


def test_cut_connection_is_resumed_with_a_range_request(file_server, tmp_path):
    file_server.files["blob.bin"] = PAYLOAD
    file_server.cut_after["blob.bin"] = 100_000
    dest = download(file_server.url("blob.bin"), tmp_path / "blob.bin", progress=False,
                    backoff_s=0.01, chunk_bytes=4096)
    assert dest.read_bytes() == PAYLOAD
    ranges = [r for name, r in file_server.requests if name == "blob.bin"]
    assert ranges[0] is None
    assert ranges[1] is not None and int(ranges[1].removeprefix("bytes=").rstrip("-")) > 0


def test_partial_file_from_an_interrupted_run_is_resumed(file_server, tmp_path):
    file_server.files["blob.bin"] = PAYLOAD
    (tmp_path / "blob.bin.part").write_bytes(PAYLOAD[:123_456])
    download(file_server.url("blob.bin"), tmp_path / "blob.bin", progress=False)
    assert (tmp_path / "blob.bin").read_bytes() == PAYLOAD
    assert file_server.requests == [("blob.bin", "bytes=123456-")]


def test_checksum_mismatch_removes_the_file(file_server, tmp_path):
    file_server.files["blob.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="SHA-256 .* expected 00"):
        download(file_server.url("blob.bin"), tmp_path / "blob.bin", sha256="00" * 32,
                 progress=False)
    assert not (tmp_path / "blob.bin").exists() and not (tmp_path / "blob.bin.part").exists()


def test_http_404_is_not_retried(file_server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(file_server.url("nope.bin"), tmp_path / "nope.bin", progress=False)
    assert len(file_server.requests) == 1


def test_offline_host_fails_within_seconds_naming_the_alternatives(tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download("https://ucf101.invalid/UCF101.rar", tmp_path / "UCF101.rar", progress=False)
    assert time.monotonic() - start < 5
    assert "data.source: local" in str(info.value) and "synthetic" in str(info.value)


def test_refused_connection_gives_up_after_the_retries(tmp_path):
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"after 3 attempt\(s\)"):
        download("http://127.0.0.1:9/x.bin", tmp_path / "x.bin", retries=3, backoff_s=0.01,
                 progress=False)
    assert time.monotonic() - start < 10


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _targz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("pack", [_zip, _targz])
def test_extracts_zip_and_targz(tmp_path, pack):
    archive = tmp_path / "a.bin"
    archive.write_bytes(pack({"top/a.txt": b"a", "top/sub/b.txt": b"bb"}))
    out = extract_archive(archive, tmp_path / "out", progress=False)
    assert (out / "top" / "sub" / "b.txt").read_bytes() == b"bb"
    assert not (tmp_path / "out.extracting").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "top/../../evil.txt", "/tmp/evil.txt"])
@pytest.mark.parametrize("pack", [_zip, _targz])
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
    data = _zip({f"f{i}.bin": os.urandom(20_000) for i in range(5)})
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    (tmp_path / "noise.rar").write_bytes(os.urandom(5000))
    for name in ("cut.zip", "noise.rar"):
        with pytest.raises(ArchiveCorrupt, match=rf"corrupt or not .*Delete .*{name} and run "
                                                 "again to download it anew"):
            extract_archive(tmp_path / name, tmp_path / "out", progress=False)
        assert not (tmp_path / "out").exists()


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
    file_server.files["UCF101.rar"] = _zip(videos)
    file_server.files["splits.zip"] = _zip(lists)
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
    file_server.files["ucf101_top5.tar.gz"] = _targz(members)
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


def test_mirrors_are_tried_in_order_past_a_404_and_wrong_bytes(file_server, tmp_path, capsys):
    """Source 1 answers 404, source 2 sends bytes that fail its pinned hash, source 3 is
    right: the download says why each was left and which one it used."""
    file_server.files["good.bin"] = PAYLOAD
    file_server.files["tampered.bin"] = PAYLOAD[::-1]
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    sources = [FileSource(url=file_server.url("gone.bin")),
               FileSource(url=file_server.url("tampered.bin"), sha256=digest),
               FileSource(url=file_server.url("good.bin"), sha256=digest)]
    path, used = download_first(sources, tmp_path, "the blob", progress=False, retries=1)
    assert used is sources[2] and path.read_bytes() == PAYLOAD
    err = capsys.readouterr().err
    assert "source 1 of 3 failed (HTTP 404" in err and "source 2 of 3 failed (SHA-256" in err
    assert f"the blob from {sources[2].url} (SHA-256 verified)" in err
    assert not (tmp_path / "127.0.0.1" / "tampered.bin").exists()  # bad bytes not kept


def test_every_source_failing_lists_each_reason_and_the_offline_sources(file_server, tmp_path):
    sources = [FileSource(url=file_server.url("gone.bin")),
               FileSource(url="https://ucf101.invalid/x.bin")]
    with pytest.raises(DownloadError) as info:
        download_first(sources, tmp_path, "the blob", progress=False, retries=1)
    text = str(info.value)
    assert "every source of the blob failed" in text and "HTTP 404" in text
    assert "cannot resolve ucf101.invalid" in text
    assert "data.source: local" in text and "data.source: synthetic" in text


@pytest.fixture
def tls_server(tmp_path) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 whose certificate comes from a CA nobody trusts."""
    import http.server
    import ssl
    import threading

    import trustme

    ca = trustme.CA()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD)))
            self.end_headers()
            self.wfile.write(PAYLOAD)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/blob.bin"
    finally:
        server.shutdown()


def test_a_tls_failure_is_named_and_the_next_source_is_used(tls_server, file_server, tmp_path,
                                                            capsys):
    file_server.files["blob.bin"] = PAYLOAD
    with pytest.raises(DownloadError, match="TLS failure with 127.0.0.1.*verify_tls: false"):
        download(tls_server, tmp_path / "direct.bin", progress=False, retries=3)
    sources = [FileSource(url=tls_server), FileSource(url=file_server.url("blob.bin"))]
    path, used = download_first(sources, tmp_path, "the blob", progress=False)
    assert used is sources[1] and path.read_bytes() == PAYLOAD
    assert "source 1 of 2 failed (TLS failure with 127.0.0.1" in capsys.readouterr().err


def test_skipping_tls_verification_needs_a_pinned_hash_which_then_guards_the_bytes(
        tls_server, tmp_path):
    with pytest.raises(ValueError, match="needs its sha256 pinned"):
        FileSource(url=tls_server, verify_tls=False)
    good = FileSource(url=tls_server, verify_tls=False,
                      sha256=hashlib.sha256(PAYLOAD).hexdigest())
    path, _ = download_first([good], tmp_path, "the blob", progress=False)
    assert path.read_bytes() == PAYLOAD
    wrong = FileSource(url=tls_server, verify_tls=False, sha256="0" * 64)
    with pytest.raises(DownloadError, match="SHA-256"):
        download_first([wrong], tmp_path / "again", "the blob", progress=False)


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
    file_server.files["UCF101_videos.zip"] = _zip(flat)
    file_server.files["splits.zip"] = _zip(lists)
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
    file_server.files["v.zip"] = _zip(flat)
    file_server.files["splits.zip"] = _zip(lists)
    cfg = _params_for(repo_params, "ucf101", videos=[{"url": file_server.url("v.zip"),
                                                      "layout": "flat"}],
                      splits=[{"url": file_server.url("splits.zip")}])
    with pytest.raises(DatasetError, match=r"1 listed clip\(s\) missing .*"
                                           + Path(clips[0]).name):
        prepare_raw(cfg.data, tmp_path / "raw", tmp_path / "cache")
    assert not (tmp_path / "raw").exists()
