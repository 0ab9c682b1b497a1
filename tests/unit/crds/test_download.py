"""The parallel verified downloader against a real loopback HTTP server."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from niriss_pipe.core.progress import Reporter
from niriss_pipe.crds.download import CacheWriteError, Manifest, Wanted, _Progress, fetch

FILES = {f"jwst_niriss_dark_{i:04d}.fits": bytes([i]) * (1000 + 37 * i) for i in range(1, 13)}


class Server:
    """Serves FILES; can corrupt or truncate named files; counts GETs per name. ``slow``
    files ({name: (size, bytes/s)}) stream zeros no faster than their rate."""

    def __init__(self):
        self.corrupt: set[str] = set()
        self.truncate: set[str] = set()
        self.gets: dict[str, int] = {}
        self.slow: dict[str, tuple[int, float]] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's API
                name = self.path.rsplit("/", 1)[-1]
                server.gets[name] = server.gets.get(name, 0) + 1
                if name in server.slow:
                    self._stream(*server.slow[name])
                    return
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

            def _stream(self, size, rate):
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.end_headers()
                block, sent = b"\0" * 65536, 0
                with contextlib.suppress(OSError):  # the client may hang up
                    while sent < size:
                        chunk = block[: size - sent]
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        time.sleep(len(chunk) / rate)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
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


def test_progress_line_has_files_bytes_percent_rate_and_time_left():
    out = io.StringIO()
    progress = _Progress(Reporter(out=out), "refs", files=4, total=4 * 2**20)
    progress.last -= 10  # as if the last line was printed 10 s ago
    progress.add(nbytes=2**20, files=1)
    line = out.getvalue().strip()
    assert line.startswith("refs 1/4 files  1.0 MiB/4.0 MiB (25 %)  "), line
    assert re.search(r"/s  \d+ (s|min \d\d s|h \d\d min) left$", line), line
    # 1 MiB of 4 in 30 s: 3 MiB are left at the same rate, 90 s.
    assert progress.line(30.0).endswith(" 34.1 KiB/s  1 min 30 s left")



def _zeros(server, cache, name, size):
    return Wanted(name, server.url + name, cache / "references/jwst/niriss" / name, size,
                  hashlib.sha1(b"\0" * size).hexdigest())


def _leftovers(root):
    return [p for p in root.rglob(".*.part-*")]


@pytest.fixture
def ctrl_c():
    """Ctrl-C as in a terminal, whatever this run was started with (``nohup ... &`` from a
    script starts it with SIGINT ignored, which Python keeps)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_ctrl_c_stops_a_transfer_in_flight_and_keeps_what_completed(server, tmp_path, ctrl_c):
    big = "jwst_niriss_flat_0001.fits"
    size, rate = 64 * 2**20, 2 * 2**20  # 32 s of transfer
    server.slow[big] = (size, rate)
    files = wanted(server, tmp_path) + [_zeros(server, tmp_path, big, size)]
    manifest = Manifest(tmp_path / "m.json", tmp_path)
    sent = {}

    def interrupt():  # a real SIGINT, as Ctrl-C sends it, once the big file is under way
        while not _leftovers(tmp_path):
            time.sleep(0.05)
        time.sleep(0.5)
        sent["at"] = time.monotonic()
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        fetch(files, manifest, jobs=4, reporter=quiet())
    took = time.monotonic() - sent["at"]
    print(f"Ctrl-C to return: {took:.2f} s")  # measured, reported; the bound below is generous
    assert time.monotonic() - started < size / rate / 2  # far before the file could finish
    assert not files[-1].dest.exists() and _leftovers(tmp_path) == []
    recorded = Manifest(tmp_path / "m.json", tmp_path).entries
    assert {Path(k).name for k in recorded} == set(FILES)  # the small files completed first


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs, unmounted afterwards (mounting needs root, which CI is)."""
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root: the suite runs as root (as CI does), like "
                    "debootstrap and the engine it drives")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_disk_filling_mid_transfer_fails_at_once_and_leaves_nothing_partial(server, small_disk):
    big = "jwst_niriss_flat_0002.fits"
    server.slow[big] = (1 * 2**20, 64 * 2**20)  # fills the disk a quarter of the way in
    files = [_zeros(server, small_disk, big, 2**20)]
    manifest = Manifest(small_disk / "m.json", small_disk)
    with pytest.raises(CacheWriteError) as caught:
        fetch(files, manifest, jobs=2, reporter=quiet())
    assert caught.value.disk_full and big in str(caught.value)
    assert "No space left on device" in str(caught.value)
    assert server.gets[big] == 1  # not retried: asking again cannot make room
    assert not files[0].dest.exists() and _leftovers(small_disk) == []
    stat = os.statvfs(small_disk)
    assert stat.f_bavail * stat.f_frsize > 200 * 2**10  # the partial file's space is free again


def test_disk_full_stops_the_other_transfers_and_keeps_the_completed(server, small_disk):
    big = "jwst_niriss_flat_0003.fits"
    server.slow[big] = (2**20, 64 * 2**20)
    files = wanted(server, small_disk)[:3] + [_zeros(server, small_disk, big, 2**20)]
    manifest = Manifest(small_disk / "m.json", small_disk)
    with pytest.raises(CacheWriteError):
        fetch(files, manifest, jobs=1, reporter=quiet())  # in order: three small, then big
    recorded = {Path(k).name for k in Manifest(small_disk / "m.json", small_disk).entries}
    assert recorded == {w.name for w in files[:3]} and _leftovers(small_disk) == []
