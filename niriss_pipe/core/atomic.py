"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Each write goes to a hidden temporary file beside the target and is renamed over it; on any
failure the temporary file, and every folder the write itself created, are removed, so a
refused or failed command leaves nothing half-written behind.
"""

from __future__ import annotations

import os
from pathlib import Path


def make_parents(path: Path) -> list[Path]:
    """Create the missing folders above ``path``; return them, outermost first.

    When one cannot be made (a full disk, no inodes left, a file in the way), the folders
    this call already made are removed, innermost first, before the error is raised: a
    failed call leaves the tree as it found it. A folder that appears meanwhile (another
    process made it) is used, not counted as made here, so it is never removed.
    """
    missing = []
    folder = path.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return make_folders(reversed(missing))


def make_folders(folders) -> list[Path]:
    """Create ``folders`` in order (each one's parent exists or comes earlier); return those
    this call made. One that is there already, or appears meanwhile, is used and not
    counted; when one cannot be made, those made are removed (``remove_folders``) before
    the error is raised."""
    created: list[Path] = []
    try:
        for folder in folders:
            try:
                folder.mkdir()
            except FileExistsError:
                if not folder.is_dir():
                    raise
                continue
            created.append(folder)
    except BaseException:
        remove_folders(created)
        raise
    return created


def remove_folders(created: list[Path]) -> None:
    """Undo ``make_parents``: remove the folders it created, innermost first, if empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except OSError:
            break


def write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    path = Path(path)
    created = make_parents(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            tmp.chmod(mode)
        os.replace(tmp, path)
    except OSError as exc:  # name the file the user asked for, not our temporary one
        _discard(tmp, created)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        _discard(tmp, created)
        raise


def _discard(tmp: Path, created: list[Path]) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError:  # a read-only file system refuses even that; nothing was written there
        pass
    remove_folders(created)


def write_text(path: Path, text: str, mode: int | None = None) -> None:
    write_bytes(path, text.encode(), mode)
