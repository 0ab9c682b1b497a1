"""The user's CRDS cache folder: refused early when it cannot work, cleaned up after a failure.

A --cache that is a file, unreadable or on a read-only file system is named in one
paragraph before anything is written. A command that fails (or is interrupted) leaves no
empty folder it made: folders that did not exist before it are removed when empty.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from niriss_pipe.core.errors import UserError, prog


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_writable(cache: Path, option: str = "--cache") -> None:
    """Refuse a cache folder the command could not fill (it may not exist yet)."""
    if cache.exists() and not cache.is_dir():
        raise UserError(f"{option} {cache} is a file, not a folder.",
                        f"give a folder (it is made when missing), e.g. {option} crds_cache.")
    existing = _nearest_existing(cache)
    if not existing.is_dir():
        raise UserError(f"{option} {cache}: {existing} is a file, so the folder cannot be made.",
                        f"give {option} a path under a folder.")
    if _read_only_fs(existing):
        raise UserError(f"{option} {cache} is on a read-only file system.",
                        "give a folder on a writable disk (a read-only cache can still be "
                        "mounted into containers and checked with verify-cache).")
    if not os.access(existing, os.W_OK | os.X_OK) or not os.access(existing, os.R_OK):
        where = "" if existing == Path(os.path.abspath(cache)) else f" (in {existing})"
        raise UserError(f"{option} {cache} is not writable by this user{where}.",
                        "give a folder you can write, or fix its permissions.")
    _check_subfolders(cache, option, writable=True)


def check_readable(cache: Path, option: str = "--cache") -> None:
    """Refuse a cache folder the command cannot read."""
    if not cache.exists():
        raise UserError(f"there is no CRDS cache at {cache}.",
                        f"give {option} DIR, or fill one with {prog()} sync SPEC.")
    if not cache.is_dir():
        raise UserError(f"{option} {cache} is a file, not a CRDS cache folder.",
                        f"give {option} the folder a sync filled.")
    if not os.access(cache, os.R_OK | os.X_OK):
        raise UserError(f"{option} {cache} is not readable by this user.",
                        "run as its owner, or make it readable (chmod -R a+rX).")
    _check_subfolders(cache, option, writable=False)


def _check_subfolders(cache: Path, option: str, writable: bool) -> None:
    """The folders a cache is made of, when present, must be folders this user can use."""
    mode = os.R_OK | os.X_OK | (os.W_OK if writable else 0)
    for sub in ("config", "config/jwst", "mappings", "mappings/jwst", "references",
                "references/jwst"):
        path = cache / sub
        if path.exists() and not path.is_dir():
            raise UserError(f"{option} {cache}: {path} is a file where the cache has a folder.",
                            f"remove or move it, or give {option} another folder.")
        if path.is_dir() and not os.access(path, mode):
            what = "writable" if writable else "readable"
            raise UserError(f"{option} {cache}: {path} is not {what} by this user.",
                            "run as the cache's owner, or fix its permissions.")


def _folders(root: Path) -> set[str]:
    if not root.is_dir():
        return set()
    found = {str(root)}
    for dirpath, dirnames, _ in os.walk(root):
        found.update(os.path.join(dirpath, d) for d in dirnames)
    return found


@contextlib.contextmanager
def cleanup_on_failure(cache: Path):
    """On any exception (Ctrl-C too), remove the empty folders that appeared under and above
    ``cache`` while the block ran."""
    cache = Path(os.path.abspath(cache))
    top = _nearest_existing(cache)
    before = _folders(cache) | {str(top)}
    try:
        yield
    except BaseException:
        _remove_new_empty(cache, top, before)
        raise


def _remove_new_empty(cache: Path, top: Path, before: set[str]) -> None:
    candidates = sorted(_folders(cache) - before, key=len, reverse=True)
    parent = cache
    while parent != top and parent != parent.parent:  # the folders made above the cache
        if str(parent) not in before:
            candidates.append(str(parent))
        parent = parent.parent
    for folder in sorted(set(candidates), key=lambda f: f.count(os.sep), reverse=True):
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # only when empty
