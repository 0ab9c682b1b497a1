"""What a host CRDS cache holds, and pruning what no kept context needs.

Sizes are grouped by instrument and reference type from CRDS file names
(``jwst_<instrument>_<reftype>_NNNN.<ext>``). Each context is listed complete or
incomplete with what it lacks (``crdscache.status``, the same check the image runs);
which files pruning keeps comes from the ``crds`` client's own reading of the mappings.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from niriss_pipe.core.errors import UserError, opt, os_error, prog, shown
from niriss_pipe.core.progress import human_bytes
from niriss_pipe.crds import hostcache as crdscache
from niriss_pipe.crds import record as syncrecord
from niriss_pipe.crds.paths import check_readable
from niriss_pipe.crds.sync import crds_environment
from niriss_pipe.runtime import cachecheck
from niriss_pipe.runtime.contract import SERVERLESS_URL

REF_NAME = re.compile(r"^jwst_(?P<instrument>[a-z0-9]+)_(?P<reftype>[a-z0-9-]+)_\d{4}\.\w+$")


@dataclass
class CacheSummary:
    contexts: list[str]
    sizes: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # -> [files, bytes]
    states: dict[str, str] = field(default_factory=dict)  # context -> complete / incomplete: ...

    @property
    def total(self) -> int:
        return sum(nbytes for _, nbytes in self.sizes.values())


def summarize(cache: Path) -> CacheSummary:
    contexts = crdscache.contexts(cache)
    states = {c: crdscache.describe(crdscache.status(cache, c), cache) for c in contexts}
    sizes: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for path in _reference_files(cache):
        match = REF_NAME.match(path.name)
        key = (match["instrument"], match["reftype"]) if match else ("other", "other")
        sizes[key][0] += 1
        sizes[key][1] += path.stat().st_size
    return CacheSummary(contexts, dict(sorted(sizes.items())), states)


def format_summary(cache: Path, summary: CacheSummary) -> str:
    lines = [f"{cache}: {len(summary.contexts)} contexts, {human_bytes(summary.total)} of "
             "references"]
    lines += [f"  context {name}: {summary.states.get(name, 'not checked')}"
              for name in summary.contexts]
    by_instrument: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (instrument, _), (files, nbytes) in summary.sizes.items():
        by_instrument[instrument][0] += files
        by_instrument[instrument][1] += nbytes
    for instrument, (files, nbytes) in sorted(by_instrument.items()):
        lines.append(f"  {instrument:<10} {files:6d} files {human_bytes(nbytes):>12}")
        for (inst, reftype), (rfiles, rbytes) in summary.sizes.items():
            if inst == instrument:
                lines.append(f"    {reftype:<16} {rfiles:6d} files {human_bytes(rbytes):>12}")
    return "\n".join(lines)


def unneeded(cache: Path, keep: list[str]) -> list[Path]:
    """Mappings and references in ``cache`` that none of the ``keep`` contexts uses."""
    cache = cache.resolve()
    missing = [c for c in keep if not (cache / "mappings" / "jwst" / c).is_file()]
    if missing:
        raise UserError(f"the cache {cache} does not hold {', '.join(missing)}, so what it "
                        "needs is unknown.", "sync it first, or keep only contexts it holds.")
    needed: set[str] = set()
    with crds_environment(cache, SERVERLESS_URL):
        import crds

        for context in keep:
            try:  # the client loads a mapping's children when they are first asked for
                pmap = crds.get_cached_mapping(context)
                needed |= set(pmap.mapping_names()) | set(pmap.reference_names())
            except PermissionError:
                raise  # prune's own paragraph: make the cache readable
            except _load_errors() as exc:
                raise _unloadable(cache, context, exc) from None
    candidates = [*sorted((cache / "mappings" / "jwst").glob("*map")), *_reference_files(cache)]
    return [p for p in candidates if p.name not in needed]


def _load_errors() -> tuple[type[BaseException], ...]:
    """What the crds client raises for a cached mapping it cannot use: its own errors (a file
    that does not parse, lacks a header key or fails its sha1sum), bytes that are not UTF-8
    (UnicodeDecodeError), a mapping that is missing or a folder (OSError), and what its
    reading of a damaged selector can raise."""
    from crds.core.exceptions import CrdsError

    return (CrdsError, ValueError, SyntaxError, LookupError, TypeError, AttributeError, OSError)


def _unloadable(cache: Path, context: str, exc: BaseException) -> UserError:
    """The paragraph for a kept context the crds client could not load: the mapping files it
    lacks, or the one it cannot read (found by loading its closure leaves first)."""
    import crds

    mapdir = cache / "mappings" / "jwst"
    sync = f"{prog()} sync --context {context} {opt('cache')} {cache}"
    absent = [name for name in cachecheck.missing_mappings(str(cache), context)
              if not (mapdir / name).exists()]
    if absent:
        named = ", ".join(absent[:5]) + (f" and {len(absent) - 5} more" if len(absent) > 5
                                         else "")
        return UserError(f"the cache {cache} holds {context} but not all the mappings it "
                         f"names (it lacks {named}), so what it needs is unknown; nothing was "
                         "pruned.", f"fetch them: {sync}")
    culprit, reason = context, exc
    for name in _closure_leaves_first(mapdir, context):
        try:
            loaded = crds.get_cached_mapping(name)
            loaded.mapping_names()  # its children, loaded (and so checked) only when asked
        except PermissionError:
            raise
        except _load_errors() as found:
            culprit, reason = name, found
            break
    path = mapdir / culprit
    return UserError(f"{path}: the crds client cannot load this mapping of {context} "
                     f"({_why(path, reason)}), so what {context} needs is unknown; nothing "
                     "was pruned.",
                     f"fetch it again: {sync} {opt('verify')} (sync replaces cached files "
                     f"that do not match the server); or, if no CRDS server has {context}, "
                     f"remove {culprit}.")


def _closure_leaves_first(mapdir: Path, context: str) -> list[str]:
    """The cached mappings of ``context``: its rmaps, then its imaps, then the pmap; so the
    first one that fails to load is itself damaged, not a parent of a damaged one."""
    imaps = [name for name in _named(mapdir / context, "imap") if (mapdir / name).exists()]
    rmaps = [name for imap in imaps for name in _named(mapdir / imap, "rmap")
             if (mapdir / name).exists()]
    return [*dict.fromkeys(rmaps), *imaps, context]


def _named(path: Path, ext: str) -> list[str]:
    """The ``.ext`` mappings the selector of the mapping at ``path`` names (none when it
    cannot be read; the header names parents, in derived_from, so only the selector)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    match = cachecheck.SELECTOR.search(text)
    selector = text[match.end():] if match else ""
    return sorted(set(re.findall(r"""['"](jwst_[\w.\-]+\.""" + ext + r""")['"]""", selector)))


def _why(path: Path, exc: BaseException) -> str:
    """Why a mapping did not load, in a few words."""
    from crds.core.exceptions import ChecksumError

    try:
        if path.is_file() and path.stat().st_size == 0:
            return "the file is empty"
    except OSError:
        pass
    if isinstance(exc, UnicodeDecodeError):
        return "it is not UTF-8 text"
    if isinstance(exc, ChecksumError):
        return "its sha1sum does not match its text"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder"
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"crds says {shown(text, 160)}"


def _reference_files(cache: Path) -> list[Path]:
    root = cache / "references" / "jwst"
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")) \
        if root.is_dir() else []


@dataclass
class Pruned:
    removed: list[Path]
    bytes: int
    kept: list[str]


def prune(cache: Path, keep: list[str], *, dry_run: bool, reporter) -> Pruned:
    """Remove (or with ``dry_run`` only list) what no ``keep`` context uses; drop the removed
    contexts from the sync record."""
    check_readable(cache)
    try:
        doomed = unneeded(cache, keep)
        total = sum(p.stat().st_size for p in doomed)
        for path in doomed:
            if not dry_run:
                path.unlink()
            reporter.detail(f"{'would remove' if dry_run else 'removed'} {path}")
        if not dry_run:
            syncrecord.forget(cache, [p.name for p in doomed if p.suffix == ".pmap"])
    except OSError as exc:
        raise os_error(exc, opt("cache"), "make the cache readable (and writable to prune) by "
                       "this user, or run as its owner.") from None
    return Pruned(doomed, total, keep)


def summary_of(cache: Path) -> CacheSummary:
    """What the cache holds, per context, instrument and reference type."""
    check_readable(cache)
    try:
        return summarize(cache)
    except OSError as exc:
        raise os_error(exc, opt("cache"), "make the cache readable by this user, or run as "
                       "its owner.") from None


def listing(cache: Path) -> str:
    """``summary_of`` as the lines ``build.py cache`` prints."""
    return format_summary(cache, summary_of(cache))
