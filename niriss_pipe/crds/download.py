"""Parallel, verified, resumable, stoppable downloads of CRDS files into a cache.

The ``crds`` client fetches one file at a time, and it checks size and sha1
only *after* moving a download to its real name, so a corrupt file can be left
in the cache. Here each file streams into a hidden temporary file next to its
destination while its sha1 is computed, and is renamed into place only when
size and sha1 match the server's metadata: nothing half-written or unverified
ever carries a real name. Each verified file is recorded as it completes (see
``manifest``), so an interrupted sync resumes without re-fetching it.

Ctrl-C or a full disk stops every transfer at once: the connections in flight are
shut down under their blocked reads and their temporary files removed, rather than
waiting for multi-GB files to finish. Workers are daemon threads, so one stuck in a
connect cannot hold the process either. A write error in the cache (full, read-only)
is not retried: it raises ``CacheWriteError``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from niriss_pipe.core.progress import Reporter, TransferProgress
from niriss_pipe.crds.manifest import Manifest, sha1_of

__all__ = ["CacheWriteError", "DownloadError", "FetchReport", "Manifest", "Wanted", "fetch",
           "sha1_of"]

CHUNK = 1 << 20
ATTEMPTS = 3
STOP_GRACE = 2.0  # seconds workers get to clean up after a stop


@dataclass(frozen=True)
class Wanted:
    """One file to have in the cache, as the server describes it."""

    name: str
    url: str
    dest: Path
    size: int
    sha1: str


@dataclass
class FetchReport:
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    repaired: list[str] = field(default_factory=list)  # present but corrupt: fetched again
    bytes: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


class DownloadError(Exception):
    """A transfer failed or did not verify; asking again may help."""


class CacheWriteError(Exception):
    """Writing into the cache failed (full, read-only, no permission): asking again cannot
    help. ``completed`` files of this fetch were verified and recorded before it."""

    def __init__(self, name: str, path: Path, error: OSError):
        self.name, self.path, self.error = name, path, error
        self.completed, self.label = 0, "files"
        super().__init__(f"{name}: writing {path} failed: {error.strerror or error}")

    @property
    def disk_full(self) -> bool:
        return self.error.errno in (errno.ENOSPC, errno.EDQUOT)


class _Stopped(Exception):
    """The fetch was stopped (Ctrl-C or a write error elsewhere): not a failure of this file."""


class _Transfers:
    """The connections in flight, so a stop can cut them at once (closing a response from
    another thread does not wake a read blocked on it; shutting the socket down does)."""

    def __init__(self):
        self.stopped = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[int, tuple] = {}

    def add(self, response, tmp: Path) -> int:
        with self._lock:
            if self.stopped.is_set():
                raise _Stopped()
            token = id(response)
            self._active[token] = (response, tmp)
            return token

    def remove(self, token: int) -> None:
        with self._lock:
            self._active.pop(token, None)

    def stop(self) -> None:
        with self._lock:
            self.stopped.set()
            for response, tmp in self._active.values():
                _shut_down(response)
                with contextlib.suppress(OSError):
                    tmp.unlink()


def _shut_down(response) -> None:
    try:
        sock = socket.socket(fileno=os.dup(response.fileno()))
    except (OSError, ValueError, AttributeError):
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


_Progress = TransferProgress  # files, bytes, percent, rate and time left


def fetch(files: list[Wanted], manifest: Manifest, *, jobs: int = 8,
          reporter: Reporter | None = None, label: str = "files",
          timeout: float = 60.0, rehash: bool = False,
          before: Callable[[list[Wanted]], None] | None = None) -> FetchReport:
    """Make every file in ``files`` present and verified; fetch in parallel what is not.
    A present file that fails verification is replaced (``report.repaired``). ``before`` is
    called with the files to fetch before any transfer (a free-space check, a question).
    Each file is recorded as it completes; Ctrl-C (KeyboardInterrupt) and ``CacheWriteError``
    stop all transfers at once and propagate."""
    reporter = reporter or Reporter(out=sys.stderr)
    report = FetchReport()
    todo = []
    for want in files:
        (report.skipped if manifest.trusted(want, rehash) else todo).append(want)
    if before is not None:
        before(todo)
    report.repaired = [w.name for w in todo if w.dest.exists()]
    for want in todo:
        _remove_stale_parts(want.dest)
    report.skipped = [w.name for w in report.skipped]
    if not todo:
        manifest.save()
        return report
    progress = _Progress(reporter, label, len(todo), sum(w.size for w in todo))
    transfers, work, results = _Transfers(), queue.Queue(), queue.Queue()
    for want in todo:
        work.put(want)
    workers = [threading.Thread(target=_worker, args=(work, results, progress, timeout,
                                                      transfers), daemon=True,
                                name=f"fetch-{n}") for n in range(min(max(1, jobs), len(todo)))]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    try:
        _collect(len(todo), results, manifest, report, label)
    finally:
        transfers.stop()  # nothing in flight when all came back; else cut it (Ctrl-C, errors)
        deadline = time.monotonic() + STOP_GRACE
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        progress.close()
        with contextlib.suppress(OSError):  # only compaction: every record is journaled
            manifest.save()
        report.seconds = time.monotonic() - started
    return report


def _collect(count: int, results: queue.Queue, manifest: Manifest, report: FetchReport,
             label: str) -> None:
    """Record each result as it comes; a write error in the cache ends the fetch."""
    for _ in range(count):
        while True:
            try:  # a timeout keeps Ctrl-C prompt wherever the platform's waits are not
                want, error = results.get(timeout=0.5)
                break
            except queue.Empty:
                continue
        if isinstance(error, DownloadError):
            manifest.forget(want.dest)
            report.failed[want.name] = str(error)
            continue
        if error is not None:  # CacheWriteError, or a bug (keeps its traceback)
            if isinstance(error, CacheWriteError):
                error.completed, error.label = len(report.fetched), label
            raise error
        try:
            manifest.record(want)
        except OSError as exc:
            error = CacheWriteError(want.name, manifest.journal, exc)
            error.completed, error.label = len(report.fetched), label
            raise error from None
        report.fetched.append(want.name)
        report.bytes += want.size


def _worker(work: queue.Queue, results: queue.Queue, progress: _Progress, timeout: float,
            transfers: _Transfers) -> None:
    while not transfers.stopped.is_set():
        try:
            want = work.get_nowait()
        except queue.Empty:
            return
        try:
            _fetch_one(want, progress, timeout, transfers)
        except _Stopped:
            return
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread as a result
            if transfers.stopped.is_set():
                return
            results.put((want, exc))
        else:
            results.put((want, None))


def _remove_stale_parts(dest: Path) -> None:
    """Delete temporary files a killed sync left beside ``dest`` (their writer is gone)."""
    for part in dest.parent.glob(f".{dest.name}.part-*"):
        pid = part.name.rsplit(".part-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            part.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fetch_one(want: Wanted, progress: _Progress, timeout: float,
               transfers: _Transfers) -> None:
    last_error = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _download_verified(want, progress, timeout, transfers)
            progress.add(files=1)
            return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:  # the server says no: asking again will not help
                raise DownloadError(f"{want.name}: HTTP {exc.code} {exc.reason}") from None
            last_error = str(exc)
        except (OSError, DownloadError) as exc:
            if transfers.stopped.is_set():
                raise _Stopped() from None
            last_error = str(exc) or type(exc).__name__
        if attempt < ATTEMPTS:
            time.sleep(0.2 * attempt)
        if transfers.stopped.is_set():
            raise _Stopped()
    raise DownloadError(f"{want.name}: {last_error} (after {ATTEMPTS} attempts)")


@contextlib.contextmanager
def _writing(want: Wanted, path: Path):
    """Turn an OSError of a cache write into CacheWriteError (never retried)."""
    try:
        yield
    except OSError as exc:
        raise CacheWriteError(want.name, path, exc) from None


def _download_verified(want: Wanted, progress: _Progress, timeout: float,
                       transfers: _Transfers) -> None:
    """Stream to ``.NAME.part-PID-TID`` beside the destination; rename only when verified.
    Reads failing are network errors (retried); writes failing are CacheWriteError."""
    with _writing(want, want.dest.parent):
        want.dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = want.dest.with_name(f".{want.dest.name}.part-{os.getpid()}-{threading.get_ident()}")
    digest, size = hashlib.sha1(), 0
    token = None
    try:
        with urllib.request.urlopen(want.url, timeout=timeout) as response:
            token = transfers.add(response, tmp)
            with _writing(want, tmp):
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                for block in iter(lambda: response.read1(CHUNK), b""):
                    with _writing(want, tmp):
                        _write_all(fd, block)
                    digest.update(block)
                    size += len(block)
                    progress.add(nbytes=len(block))
            finally:
                os.close(fd)
        if transfers.stopped.is_set():
            raise _Stopped()
        if size != want.size:
            raise DownloadError(f"got {size} bytes, the server lists {want.size}")
        if want.sha1 and want.sha1 != "none" and digest.hexdigest() != want.sha1:
            raise DownloadError(f"sha1 {digest.hexdigest()} does not match the server's "
                                f"{want.sha1}")
        with _writing(want, want.dest):
            os.replace(tmp, want.dest)
    except BaseException:
        progress.add(nbytes=-size)
        raise
    finally:
        if token is not None:
            transfers.remove(token)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    """write(2) until all is written: a filling disk writes part, then raises ENOSPC."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
