"""The record of cache files verified against the CRDS server, kept safe from kill -9.

``niriss-pipe-verified.json`` maps each file (relative to the cache) to its sha1, size and
mtime. Each verification is also appended at once, as one JSON line, to a journal beside it
(``niriss-pipe-verified.journal``), so a killed sync loses no record: loading merges the
journal (a truncated last line, the trace of a kill, is ignored), and a normal save compacts
it into the JSON, written whole by rename. A lock file serialises writers; readers share it,
so no reader sees the JSON and journal half-way through a compaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from pathlib import Path

from niriss_pipe.core.digest import file_digest


def sha1_of(path: Path) -> str:
    return file_digest(path, "sha1")


class Manifest:
    """``{relative path: {sha1, size, mtime_ns}}`` of files verified against the server.

    A file whose size and mtime still match its entry is trusted without re-hashing;
    anything else is hashed again before it is trusted.
    """

    def __init__(self, path: Path, root: Path):
        self.path, self.root = path, root
        self.journal = path.with_suffix(".journal")
        self.lockfile = path.with_suffix(".lock")
        self.lock = threading.Lock()
        self._append_fd: int | None = None
        with self._locked(shared=True):
            self.entries: dict[str, dict] = self._load()

    # -- reading
    def _load(self) -> dict[str, dict]:
        try:
            entries = json.loads(self.path.read_text())
        except FileNotFoundError:
            entries = {}
        except ValueError:  # written by rename, so only a hand edit gets here
            entries = {}
        if not isinstance(entries, dict):
            entries = {}
        for change in read_journal(self.journal):
            key = change.get("path")
            if not isinstance(key, str):
                continue
            if change.get("forget"):
                entries.pop(key, None)
            elif all(k in change for k in ("sha1", "size", "mtime_ns")):
                entries[key] = {k: change[k] for k in ("sha1", "size", "mtime_ns")}
        return entries

    @contextlib.contextmanager
    def _locked(self, shared: bool = False):
        """Hold the lock file (created only by writers: readers of a read-only cache skip)."""
        try:
            if shared:
                fd = os.open(self.lockfile, os.O_RDONLY)
            else:
                self.lockfile.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.lockfile, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            if not shared:
                raise
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def key(self, dest: Path) -> str:
        return str(dest.relative_to(self.root)) if dest.is_relative_to(self.root) else str(dest)

    def trusted(self, want, rehash: bool = False) -> bool:
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

    # -- writing
    def record(self, want) -> None:
        """Note ``want.dest`` as verified, durably at once (one journal line)."""
        stat = want.dest.stat()
        key = self.key(want.dest)
        entry = {"sha1": want.sha1, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        with self.lock:
            self.entries[key] = entry
            self._append({"path": key, **entry})

    def forget(self, dest: Path) -> None:
        with self.lock:
            if self.entries.pop(self.key(dest), None) is not None:
                self._append({"path": self.key(dest), "forget": True})

    def _append(self, change: dict) -> None:
        """One whole line per write(2) on an O_APPEND descriptor: a kill can cut only the
        last line, and a cut line is closed with a newline before anything follows it."""
        line = (json.dumps(change, sort_keys=True) + "\n").encode()
        with self._locked():
            if self._append_fd is None:
                fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                if _ends_cut(self.journal):
                    os.write(fd, b"\n")
                self._append_fd = fd
            while line:  # a full disk can cut a write short: the rest raises ENOSPC
                line = line[os.write(self._append_fd, line):]

    def save(self) -> None:
        """Compact the journal into the JSON, written whole by rename (and close the journal).
        Entries other processes journaled meanwhile are kept."""
        with self.lock, self._locked():
            self.close()
            merged = self._load()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
                os.replace(tmp, self.path)
            finally:
                tmp.unlink(missing_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self.journal, 0)
            self.entries = merged

    def close(self) -> None:
        if self._append_fd is not None:
            os.close(self._append_fd)
            self._append_fd = None


def read_journal(path: Path) -> list[dict]:
    """The journal's complete lines as dicts; a truncated or garbled line is skipped."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    changes = []
    for line in data.split(b"\n")[:-1]:  # the part after the last newline is cut: ignored
        try:
            change = json.loads(line)
        except ValueError:
            continue
        if isinstance(change, dict):
            changes.append(change)
    return changes


def _ends_cut(path: Path) -> bool:
    """True when the file's last byte is not a newline (a write cut short by a kill)."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, os.SEEK_END)
            if stream.tell() == 0:
                return False
            stream.seek(-1, os.SEEK_END)
            return stream.read(1) != b"\n"
    except FileNotFoundError:
        return False
