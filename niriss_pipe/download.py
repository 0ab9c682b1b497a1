"""Parallel, verified, resumable downloads of CRDS files into a cache.

The ``crds`` client fetches one file at a time, and it checks size and sha1
only *after* moving a download to its real name, so a corrupt file can be left
in the cache. Here each file streams into a hidden temporary file next to its
destination while its sha1 is computed, and is renamed into place only when
size and sha1 match the server's metadata: nothing half-written or unverified
ever carries a real name. Verified files are recorded in a manifest so an
interrupted sync resumes without re-reading or re-fetching them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .progress import Reporter, human_bytes

CHUNK = 1 << 20
ATTEMPTS = 3


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


class Manifest:
    """``{relative path: {sha1, size, mtime_ns}}`` of files verified against the server.

    A file whose size and mtime still match its entry is trusted without re-hashing;
    anything else is hashed again before it is trusted.
    """

    def __init__(self, path: Path, root: Path):
        self.path, self.root = path, root
        self.lock = threading.Lock()
        try:
            self.entries: dict[str, dict] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def key(self, dest: Path) -> str:
        return str(dest.relative_to(self.root)) if dest.is_relative_to(self.root) else str(dest)

    def trusted(self, want: Wanted, rehash: bool = False) -> bool:
        """Present with the server's size and sha1; ``rehash`` re-reads even recorded files."""
        try:
            stat = want.dest.stat()
        except FileNotFoundError:
            return False
        if stat.st_size != want.size:
            return False
        entry = self.entries.get(self.key(want.dest))
        if (not rehash and entry and entry.get("sha1") == want.sha1
                and entry.get("mtime_ns") == stat.st_mtime_ns):
            return True
        if sha1_of(want.dest) == want.sha1:
            self.record(want)
            return True
        return False

    def record(self, want: Wanted) -> None:
        stat = want.dest.stat()
        with self.lock:
            self.entries[self.key(want.dest)] = {"sha1": want.sha1, "size": stat.st_size,
                                                 "mtime_ns": stat.st_mtime_ns}

    def problems(self) -> dict[str, str]:
        """Offline check of every recorded file against its recorded sha1: {path: problem}."""
        found = {}
        for key, entry in sorted(self.entries.items()):
            path = self.root / key
            if not path.is_file():
                found[key] = "missing"
            elif path.stat().st_size != entry["size"]:
                found[key] = f"size {path.stat().st_size}, recorded {entry['size']}"
            elif sha1_of(path) != entry["sha1"]:
                found[key] = "sha1 differs from the verified download"
        return found

    def forget(self, dest: Path) -> None:
        with self.lock:
            self.entries.pop(self.key(dest), None)

    def save(self) -> None:
        """Write atomically: a reader never sees half a manifest."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with self.lock:
            tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


def sha1_of(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class DownloadError(Exception):
    pass


class _Progress:
    """``refs  12/40 files  123.4 MiB/456.7 MiB  45.6 MiB/s``: one updating line on a
    terminal, a line every few seconds otherwise."""

    def __init__(self, reporter: Reporter, label: str, files: int, total: int):
        self.reporter, self.label, self.files, self.total = reporter, label, files, total
        self.done_files = self.done_bytes = 0
        self.started = self.last = time.monotonic()
        self.lock = threading.Lock()
        self.tty = getattr(reporter.out, "isatty", lambda: False)()

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        with self.lock:
            self.done_bytes += nbytes
            self.done_files += files
            now = time.monotonic()
            if now - self.last >= (0.2 if self.tty else 5.0):
                self.last = now
                self._show(end="\r" if self.tty else "\n")

    def _show(self, end: str) -> None:
        took = max(time.monotonic() - self.started, 1e-6)
        line = (f"  {self.label} {self.done_files}/{self.files} files  "
                f"{human_bytes(self.done_bytes)}/{human_bytes(self.total)}  "
                f"{human_bytes(self.done_bytes / took)}/s")
        print(line.ljust(72), end=end, file=self.reporter.out, flush=True)

    def close(self) -> None:
        if self.tty:
            print(" " * 72, end="\r", file=self.reporter.out, flush=True)


def fetch(files: list[Wanted], manifest: Manifest, *, jobs: int = 8,
          reporter: Reporter | None = None, label: str = "files",
          timeout: float = 60.0, rehash: bool = False) -> FetchReport:
    """Make every file in ``files`` present and verified; fetch in parallel what is not.
    A present file that fails verification is replaced (``report.repaired``)."""
    reporter = reporter or Reporter(out=sys.stderr)
    report = FetchReport()
    todo = []
    for want in files:
        (report.skipped if manifest.trusted(want, rehash) else todo).append(want)
    report.repaired = [w.name for w in todo if w.dest.exists()]
    for want in todo:
        _remove_stale_parts(want.dest)
    report.skipped = [w.name for w in report.skipped]
    if not todo:
        return report
    progress = _Progress(reporter, label, len(todo), sum(w.size for w in todo))
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            futures = {pool.submit(_fetch_one, want, progress, timeout): want for want in todo}
            for future in as_completed(futures):
                want = futures[future]
                try:
                    future.result()
                except DownloadError as exc:
                    manifest.forget(want.dest)
                    report.failed[want.name] = str(exc)
                else:
                    manifest.record(want)
                    report.fetched.append(want.name)
                    report.bytes += want.size
    finally:
        progress.close()
        manifest.save()
        report.seconds = time.monotonic() - started
    return report


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


def _fetch_one(want: Wanted, progress: _Progress, timeout: float) -> None:
    last_error = ""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            _download_verified(want, progress, timeout)
            progress.add(files=1)
            return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:  # the server says no: asking again will not help
                raise DownloadError(f"{want.name}: HTTP {exc.code} {exc.reason}") from None
            last_error = str(exc)
        except (OSError, DownloadError) as exc:
            last_error = str(exc) or type(exc).__name__
        if attempt < ATTEMPTS:
            time.sleep(0.2 * attempt)
    raise DownloadError(f"{want.name}: {last_error} (after {ATTEMPTS} attempts)")


def _download_verified(want: Wanted, progress: _Progress, timeout: float) -> None:
    """Stream to ``.NAME.part-PID-TID`` beside the destination; rename only when verified."""
    want.dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = want.dest.with_name(f".{want.dest.name}.part-{os.getpid()}-{threading.get_ident()}")
    digest, size = hashlib.sha1(), 0
    try:
        with urllib.request.urlopen(want.url, timeout=timeout) as response, \
                open(tmp, "wb") as out:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                digest.update(block)
                size += len(block)
                progress.add(nbytes=len(block))
        if size != want.size:
            raise DownloadError(f"got {size} bytes, the server lists {want.size}")
        if want.sha1 and want.sha1 != "none" and digest.hexdigest() != want.sha1:
            raise DownloadError(f"sha1 {digest.hexdigest()} does not match the server's "
                                f"{want.sha1}")
        os.replace(tmp, want.dest)
    except BaseException:
        progress.add(nbytes=-size)
        raise
    finally:
        tmp.unlink(missing_ok=True)
