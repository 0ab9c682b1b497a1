"""CRDS layer (host side): what a host CRDS cache holds for a context, and what it lacks.

The in-image ``runtime.cachecheck`` walks the mapping closure and checks the
references a context needs with the standard library only; the host reuses it
rather than importing ``crds``, so ``verify-cache``, ``cache`` and the image's
``check-cache`` agree on what "complete" means.
"""

from __future__ import annotations

import re
from pathlib import Path

from niriss_pipe.core.errors import SpecError
from niriss_pipe.runtime import cachecheck
from niriss_pipe.runtime.cachecheck import missing_mappings
from niriss_pipe.spec.model import ImageSpec

DEFAULT_CACHE = Path("crds_cache")
_NIRISS_IMAP_RE = re.compile(r"""['"]NIRISS['"]\s*:\s*['"](jwst_niriss_[0-9]{4}\.imap)['"]""")


def mapping_path(cache: Path, name: str) -> Path:
    return cache / "mappings" / "jwst" / name


def niriss_imap(cache: Path, pmap: str) -> str | None:
    """The NIRISS imap that ``pmap`` selects, when the pmap is in the cache."""
    path = mapping_path(cache, pmap)
    if not path.is_file():
        return None
    match = _NIRISS_IMAP_RE.search(path.read_text())
    return match.group(1) if match else None


def resolve_imap(spec: ImageSpec, cache: Path) -> str | None:
    """The spec's imap, checked against the cached pmap; or derived from it; or None."""
    derived = niriss_imap(cache, spec.context)
    if spec.niriss_imap and derived and spec.niriss_imap != derived:
        raise SpecError(str(spec.path), "crds.niriss_imap",
                        f"says {spec.niriss_imap}, but {spec.context} in {cache} selects "
                        f"{derived}.", f"write niriss_imap: {derived}, or remove the field.")
    return spec.niriss_imap or derived


def has_context(cache: Path, pmap: str) -> bool:
    """True when the cache holds the server config and the full mapping closure of ``pmap``."""
    return (cache / "config" / "jwst" / "server_config").is_file() and not missing_mappings(
        str(cache), pmap)


def contexts(cache: Path) -> list[str]:
    """The contexts a cache holds (cached pmaps) or a sync recorded."""
    mapdir = cache / "mappings" / "jwst"
    held = {p.name for p in mapdir.glob("*.pmap")} if mapdir.is_dir() else set()
    return sorted(held | set(cachecheck.read_records(str(cache))))


def status(cache: Path, pmap: str) -> cachecheck.Status:
    """What ``pmap`` needs from the cache and what is missing: the scope its sync recorded,
    else every NIRISS reference its cached rmaps select (as the image checks it)."""
    return cachecheck.check(str(cache), pmap)


def describe(state: cachecheck.Status, cache: Path) -> str:
    """``complete (...)`` or ``incomplete: <what is missing>; fix: <sync command>``."""
    interrupted = "" if not state.record or state.record.get("complete", True) else (
        "; its last sync did not finish")
    if not state.complete:
        return (f"incomplete: {state.missing_text()}{interrupted}; fix: "
                f"{state.sync_command(str(cache))}")
    if state.references is None:
        return f"complete (mappings; references not checked: {state.unchecked})"
    return (f"complete ({state.references} references, scope {state.scope}, named by "
            f"{state.source})")
