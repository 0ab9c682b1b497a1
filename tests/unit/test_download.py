"""The parallel verified downloader against a real loopback HTTP server."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from niriss_pipe.download import Manifest, Wanted, _Progress, fetch
from niriss_pipe.progress import Reporter

FILES = {f"jwst_niriss_dark_{i:04d}.fits": bytes([i]) * (1000 + 37 * i) for i in range(1, 13)}


class Server:
    """Serves FILES; can corrupt or truncate named files; counts GETs per name."""

    def __init__(self):
        self.corrupt: set[str] = set()
        self.truncate: set[str] = set()
        self.gets: dict[str, int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's API
                name = self.path.rsplit("/", 1)[-1]
                server.gets[name] = server.gets.get(name, 0) + 1
                if name not in FILES:
                    self.send_error(404)
                    return
                body = FILES[name]
                if name in server.corrupt:
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                sent = body[: len(body) // 2] if name in server.truncate else body
                self.send_response(200)
                self.send_header("Content-Length", str(len(sent)))
                self.end_headers()
                self.wfile.write(sent)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/files/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.httpd.shutdown()


def wanted(server, cache):
    return [Wanted(name, server.url + name, cache / "references/jwst/niriss" / name, len(body),
                   hashlib.sha1(body).hexdigest()) for name, body in FILES.items()]


def quiet():
    return Reporter(out=io.StringIO())


def test_fetches_all_in_parallel_and_verifies(server, tmp_path):
    files = wanted(server, tmp_path)
    manifest = Manifest(tmp_path / "manifest.json", tmp_path)
    report = fetch(files, manifest, jobs=4, reporter=quiet())
    assert sorted(report.fetched) == sorted(FILES) and not report.failed
    assert report.bytes == sum(len(b) for b in FILES.values())
    for want in files:
        assert want.dest.read_bytes() == FILES[want.name]
    assert len(Manifest(tmp_path / "manifest.json", tmp_path).entries) == len(FILES)


def test_resume_fetches_nothing_already_verified(server, tmp_path):
    files = wanted(server, tmp_path)
    fetch(files[:5], Manifest(tmp_path / "m.json", tmp_path), reporter=quiet())  # "interrupted"
    server.gets.clear()
    report = fetch(files, Manifest(tmp_path / "m.json", tmp_path), reporter=quiet())
    assert sorted(report.skipped) == sorted(w.name for w in files[:5])
    assert set(server.gets) == {w.name for w in files[5:]}


def test_corrupt_download_never_gets_its_real_name(server, tmp_path):
    files = wanted(server, tmp_path)
    bad, short = files[0].name, files[1].name
    server.corrupt.add(bad)
    server.truncate.add(short)
    report = fetch(files, Manifest(tmp_path / "m.json", tmp_path), reporter=quiet())
    assert set(report.failed) == {bad, short}
    assert "sha1" in report.failed[bad] and "bytes" in report.failed[short]
    assert server.gets[bad] == 3  # retried
    assert not files[0].dest.exists() and not files[1].dest.exists()
    leftovers = [p.name for p in files[0].dest.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary files left behind
    assert len(report.fetched) == len(FILES) - 2


def test_corrupted_file_in_cache_is_detected_and_refetched(server, tmp_path):
    files = wanted(server, tmp_path)
    fetch(files, Manifest(tmp_path / "m.json", tmp_path), reporter=quiet())
    victim = files[3].dest
    data = bytearray(victim.read_bytes())
    data[10] ^= 0x01
    victim.write_bytes(bytes(data))  # same size, new mtime: must be re-hashed, not trusted
    server.gets.clear()
    report = fetch(files, Manifest(tmp_path / "m.json", tmp_path), reporter=quiet())
    assert report.fetched == [files[3].name] and set(server.gets) == {files[3].name}
    assert victim.read_bytes() == FILES[files[3].name]


def test_parts_left_by_a_killed_sync_are_removed_live_ones_kept(server, tmp_path):
    files = wanted(server, tmp_path)
    folder = files[0].dest.parent
    folder.mkdir(parents=True)
    dead = folder / f".{files[0].name}.part-999999999-1"  # no such process
    live = folder / f".{files[0].name}.part-{os.getpid()}-1"  # a sync still running
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    fetch(files, Manifest(tmp_path / "m.json", tmp_path), reporter=quiet())
    assert not dead.exists() and live.exists()


def test_unknown_file_fails_with_its_name(server, tmp_path):
    missing = Wanted("jwst_niriss_gain_0001.fits", server.url + "jwst_niriss_gain_0001.fits",
                     tmp_path / "x.fits", 10, "0" * 40)
    report = fetch([missing], Manifest(tmp_path / "m.json", tmp_path), reporter=quiet())
    assert "404" in report.failed["jwst_niriss_gain_0001.fits"]
    assert not (tmp_path / "x.fits").exists()


def test_progress_line_has_files_bytes_and_rate():
    out = io.StringIO()
    progress = _Progress(Reporter(out=out), "refs", files=4, total=4 * 2**20)
    progress.last -= 10  # as if the last line was printed 10 s ago
    progress.add(nbytes=2**20, files=1)
    line = out.getvalue().strip()
    assert line.startswith("refs 1/4 files  1.0 MiB/4.0 MiB") and line.endswith("/s")

