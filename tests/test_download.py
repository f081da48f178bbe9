"""HTTP downloads against a real server on 127.0.0.1: resume after a cut, checksums, retries,
mirrors in order, offline and TLS failures named. (Archives: test_archives.py; the dataset
sources built on both: test_sources.py.)"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator

import pytest

from actionrec.config import FileSource
from actionrec.data.download import download, download_first
from actionrec.errors import DownloadError

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


