"""Tar archives as streams: read one from an iterator of chunks (what the engine's ``save``
gives) and write one as chunks (what its ``load`` takes), with no file of the whole archive."""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

BLOCK = tarfile.BLOCKSIZE  # 512
END = b"\0" * (2 * BLOCK)  # the end-of-archive marker
CHUNK = 1 << 20


class ChunkReader:
    """A read-only file object over an iterator of byte chunks (``tarfile.open(mode="r|")``
    reads it front to back; nothing is kept once read)."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks: Iterator[bytes] = iter(chunks)
        self._buffer = b""
        self._offset = 0

    def read(self, size: int = -1) -> bytes:
        parts, wanted = [], size
        while wanted != 0:
            if self._offset >= len(self._buffer):
                self._buffer, self._offset = next(self._chunks, b""), 0
                if not self._buffer:
                    break
            end = len(self._buffer) if wanted < 0 else min(len(self._buffer),
                                                           self._offset + wanted)
            parts.append(self._buffer[self._offset:end])
            if wanted > 0:
                wanted -= end - self._offset
            self._offset = end
        return b"".join(parts)


def member(name: str, source: Path | bytes) -> Iterator[bytes]:
    """One regular file of a tar stream (mode 0644, owner 0, time 0): its header, its data
    from ``source`` (a file, read in chunks, or bytes) and the padding to the next block."""
    size = source.stat().st_size if isinstance(source, Path) else len(source)
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    if isinstance(source, Path):
        with open(source, "rb") as data:
            while chunk := data.read(CHUNK):
                yield chunk
    else:
        yield source
    if size % BLOCK:
        yield b"\0" * (BLOCK - size % BLOCK)
