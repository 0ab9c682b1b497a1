"""What each context needs from a cache, as the sync that filled it computed it.

``config/jwst/niriss-pipe-contexts.json`` holds, per context, the scope, the instrument,
the exact reference names the crds client selected for that scope, and whether the sync
completed. The sync writes it before its reference downloads start and again at the end,
so a cut sync still says what is missing; ``runtime.cachecheck`` reads it (in the image
too, where it is the only source for ``datasets`` scope). Written whole by rename, under a
lock file, so concurrent syncs of other contexts keep their entries and no reader ever sees
half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from niriss_pipe.runtime.cachecheck import RECORD, read_records

RECORD_PATH = Path(RECORD)


def entry(scope: str, instrument: str, references: list[str], complete: bool,
          datasets: tuple[str, ...] = ()) -> dict:
    """One context's record; ``datasets`` are exposure file names (never host paths)."""
    record = {"scope": scope, "instrument": instrument, "references": sorted(references),
              "complete": complete}
    if datasets:
        record["datasets"] = sorted(datasets)
    return record


def write(cache: Path, context: str, record: dict, merge: bool = False) -> None:
    """Set ``context``'s entry, keeping every other context's; ``merge``: add to what the
    entry already says instead (a product's references to an earlier sync's)."""
    with _locked(cache):
        records = read_records(str(cache))
        old = records.get(context)
        records[context] = merged(old, record) if merge and isinstance(old, dict) else record
        _replace(cache / RECORD_PATH, records)


def merged(old: dict, new: dict) -> dict:
    """One record for two syncs of a context: a complete sync of a wider scope that already
    names every new reference stays as it is; otherwise the union of both, complete only
    when what the old one named is now known to be there."""
    old_refs, new_refs = set(old.get("references") or []), set(new.get("references") or [])
    order = ("none", "datasets", "instrument")
    wider = old.get("scope") in order and order.index(old["scope"]) >= order.index(new["scope"])
    if wider and old.get("complete") and new_refs <= old_refs:
        return old
    record = entry(new["scope"], new.get("instrument", "niriss"), sorted(old_refs | new_refs),
                   bool(new.get("complete") and (old.get("complete") or old_refs <= new_refs)),
                   tuple(sorted(set(old.get("datasets") or []) | set(new.get("datasets") or []))))
    return record


def forget(cache: Path, contexts: list[str]) -> None:
    """Drop the entries of ``contexts`` (pruned from the cache)."""
    path = cache / RECORD_PATH
    if not path.is_file():
        return
    with _locked(cache):
        records = read_records(str(cache))
        kept = {name: rec for name, rec in records.items() if name not in contexts}
        if kept != records:
            _replace(path, kept)


def text(records: dict) -> bytes:
    """The file's bytes for ``records`` (also what a baked image carries)."""
    return (json.dumps(records, indent=1, sort_keys=True) + "\n").encode()


def _replace(path: Path, records: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(text(records))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(cache: Path):
    lock = (cache / RECORD_PATH).with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
