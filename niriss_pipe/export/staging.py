"""Outputs under hidden temporary names beside them, renamed only when complete: an interrupted
or failed export leaves nothing half-written under a real name."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path


# -- staging: temporary names, renamed when complete -------------------------------------------
class Staging:
    """Hidden temporary paths beside the outputs. ``commit`` renames them onto the real names
    (replacing old outputs only then); leaving the block without commit removes them all."""

    def __init__(self):
        self.temps: dict[Path, Path] = {}
        self.scratch_paths: list[Path] = []

    def temp_for(self, target: Path) -> Path:
        path = target.with_name(f".{target.name}.partial-{os.getpid()}")
        self.temps[target] = path
        return path

    def scratch(self, near: Path, suffix: str) -> Path:
        """A temporary path that is always removed (intermediate files)."""
        path = near.with_name(f".{near.name}.{suffix}-{os.getpid()}")
        self.scratch_paths.append(path)
        return path

    def commit(self) -> None:
        for target, temp in self.temps.items():
            old = None
            if target.exists() and (target.is_dir() or temp.is_dir()):  # no atomic replace
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                target.rename(old)
            os.replace(temp, target)
            if old is not None:
                remove_output(old)
        self.temps.clear()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info) -> None:
        for path in [*self.temps.values(), *self.scratch_paths]:
            remove_output(path)


def remove_output(path: Path) -> None:
    """Remove a file or tree, also one with read-only folders (a non-root export)."""
    if path.is_dir() and not path.is_symlink():
        if os.geteuid() != 0:
            owner_writable(path)
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def owner_writable(root: Path) -> None:
    """Give every folder u+rwx, parents before children, so its owner can fill or delete it."""
    os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) | 0o700)
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode) and mode & 0o700 != 0o700:
                os.chmod(path, stat.S_IMODE(mode) | 0o700)
