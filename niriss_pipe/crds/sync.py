"""CRDS layer: fill a host cache for one context with the real ``crds`` client's view of it.

The ``crds`` client decides *what* belongs in the cache (the server's file
list and metadata, the mapping closure, the NIRISS references of the context,
or the best references of given datasets, computed locally as ``crds sync
--dataset-files`` does) and writes the server config that makes the cache work
offline. ``download.fetch`` then does the transfers in parallel, verified
against the server's size and sha1 before anything takes its real name.

Before fetching, the sync checks the cache's free space against what it is about to
fetch, and records what the context needs (``syncrecord``) so an interrupted sync still
says what is missing. Anything a user can cause (a --cache that is a file, read-only or
full) is a UserError; a failed sync leaves no temporary file and no empty folder it made.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.core.errors import UserError, opt, os_error, prog, shown
from niriss_pipe.core.progress import Reporter, human_bytes
from niriss_pipe.crds import record as syncrecord
from niriss_pipe.crds.download import CacheWriteError, FetchReport, Manifest, Wanted, fetch
from niriss_pipe.crds.paths import check_writable, cleanup_on_failure
from niriss_pipe.spec.load import PMAP_RE

DEFAULT_SERVER = "https://jwst-crds.stsci.edu"
SCOPES = ("none", "instrument", "datasets")
MANIFEST = Path("config/jwst/niriss-pipe-verified.json")
CONFIRM_OVER = 5 * 2**30  # ask before downloading more than this
HEADROOM = 64 * 2**10  # beyond the files: server config, records, the manifest's compaction
HEADROOM_PER_FILE = 512  # bytes of manifest and journal per file


@dataclass(frozen=True)
class SyncRequest:
    context: str
    cache: Path
    scope: str = "instrument"
    datasets: tuple[Path, ...] = ()
    server: str = DEFAULT_SERVER
    jobs: int = 8
    assume_yes: bool = False
    confirm_over: int = CONFIRM_OVER
    instrument: str = "niriss"
    verify: bool = False  # re-hash every cached file against the server, re-fetch bad ones
    # scope datasets: exactly these references (a product's R_*; none when all are N/A);
    # None: the references are chosen for the datasets in the image
    named: tuple[str, ...] | None = None
    image: str | None = None  # scope datasets: the image whose jwst chooses the references


@dataclass
class SyncResult:
    mappings: FetchReport
    references: FetchReport
    mapping_files: list[Wanted]
    reference_files: list[Wanted]

    @property
    def reference_names(self) -> list[str]:
        return [w.name for w in self.reference_files]


@contextmanager
def crds_environment(cache: Path, server: str):
    """Point the crds client at ``cache`` and ``server`` for the duration, then restore."""
    saved = {k: os.environ.get(k) for k in ("CRDS_PATH", "CRDS_SERVER_URL", "CRDS_CONTEXT",
                                            "CRDS_READONLY_CACHE", "CRDS_MODE")}
    os.environ.update(CRDS_PATH=str(cache), CRDS_SERVER_URL=server, CRDS_MODE="local",
                      CRDS_READONLY_CACHE="0")
    os.environ.pop("CRDS_CONTEXT", None)
    os.environ.setdefault("CRDS_CLIENT_TIMEOUT_SECONDS", "30")
    # The client reads CRDS_SERVER_URL once, when first imported: tell it again, so a second
    # sync in one process (a library user, the tests) asks the server it is given.
    from crds.client import api

    before = api.get_crds_server()
    api.set_crds_server(server)
    try:
        yield
    finally:
        api.set_crds_server(before)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def sync(request: SyncRequest, reporter: Reporter) -> SyncResult:
    """Sync ``request.context`` into ``request.cache``; raise UserError on any failure."""
    _check(request)
    check_writable(request.cache, "--cache")
    cache = request.cache.resolve()
    with cleanup_on_failure(cache):
        try:
            return _sync(request, cache, reporter)
        except CacheWriteError as exc:
            raise _write_error(exc, cache) from None
        except OSError as exc:
            raise os_error(exc, opt("cache"), "check the cache folder (it must be a writable "
                           "folder with room for the files); then run the same sync again: "
                           "verified files are kept.") from None


def _sync(request: SyncRequest, cache: Path, reporter: Reporter) -> SyncResult:
    cache.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(cache / MANIFEST, cache)
    with crds_environment(cache, request.server):
        from crds.client import api

        info = _server_info(api, request.server)
        if request.context not in info.get("mappings", [request.context]):
            raise UserError(f"the CRDS server {request.server} does not know the context "
                            f"{request.context}.", f"check the pmap name; the server's operational "
                            f"context is {info.get('operational_context', 'unknown')}.")
        names = _rpc(api.get_mapping_names, request, request.context)
        mappings = _wanted(info, "mapping_url", names, lambda n: cache / "mappings/jwst" / n)
        reporter.say(f"{request.context}: {len(names)} mappings")
        config_size = len(repr(info))  # the server config written next (its download_metadata
        mapping_report = _fetch(mappings, manifest, request, reporter, "mappings",  # is big)
                                before=lambda todo: check_space(cache, todo, "mappings",
                                                                config_size))
        _write_config(info, cache)

        refs = _reference_names(request, cache, reporter)
        wanted = _wanted(info, "reference_url", refs, _reference_path)
        datasets = tuple(p.name for p in _dataset_files(request.datasets))

        def before_references(todo: list[Wanted]) -> None:
            total = sum(w.size for w in todo)
            reporter.say(f"references ({request.scope}): {len(refs)} files, {len(todo)} to "
                         f"fetch, {human_bytes(total)}")
            check_space(cache, todo, "references")
            _confirm(request, total, len(todo))
            syncrecord.write(cache, request.context, syncrecord.entry(
                request.scope, request.instrument, refs, False, datasets),
                merge=request.named is not None)

        ref_report = _fetch(wanted, manifest, request, reporter, "references",
                            before=before_references)
        syncrecord.write(cache, request.context, syncrecord.entry(
            request.scope, request.instrument, refs, True, datasets),
            merge=request.named is not None)
    return SyncResult(mapping_report, ref_report, mappings, wanted)


def check_space(cache: Path, todo: list[Wanted], label: str, extra: int = 0) -> None:
    """Refuse before fetching when the cache's file system cannot hold ``todo`` (each file
    rounded up to whole blocks) and ``extra`` bytes more."""
    if not todo and not extra:
        return
    stat = os.statvfs(cache)
    block = stat.f_frsize or 4096
    need = (sum(-(-w.size // block) * block for w in todo) + HEADROOM + extra
            + HEADROOM_PER_FILE * len(todo))
    free = stat.f_bavail * stat.f_frsize
    if need > free:
        raise UserError(
            f"the CRDS cache {cache} has {human_bytes(free)} free on its file system, but the "
            f"{len(todo)} {label} to fetch need {human_bytes(need)} "
            f"({human_bytes(sum(w.size for w in todo))} of files); nothing of them was written.",
            f"free space there, or give {opt('cache')} a folder on a disk with room (a cache can "
            "be moved or mounted anywhere)"
            + (f", or fetch less with {opt('scope')} datasets {opt('datasets')} <exposures>"
               if label == "references" else "") + "; then run the same sync again.")


def _write_error(exc: CacheWriteError, cache: Path) -> UserError:
    done = f"the {exc.completed} {exc.label} fetched before it are verified and recorded"
    if exc.disk_full:
        free = human_bytes(_free(cache))
        return UserError(f"the file system of the CRDS cache {cache} is full ({free} free): "
                         f"writing {exc.name} failed and was not retried. Nothing partial was "
                         f"kept; {done}.",
                         f"free space there, or give {opt('cache')} a folder on a disk with room; "
                         "then run the same sync again: only the missing files are fetched.")
    return UserError(f"cannot write into the CRDS cache {cache}: {exc}. Nothing partial was kept; "
                     f"{done}.", f"make the folder writable (or give {opt('cache')} another one); "
                     "then run the same sync again.")


def _free(path: Path) -> int:
    try:
        stat = os.statvfs(path)
    except OSError:
        return 0
    return stat.f_bavail * stat.f_frsize


def _check(request: SyncRequest) -> None:
    if not PMAP_RE.match(request.context):
        raise UserError(f"{shown(request.context)} is not a CRDS pipeline context name.",
                        "give a pmap like jwst_1584.pmap.")
    if request.scope not in SCOPES:
        raise UserError(f"{opt('scope')} {request.scope}: not one of {', '.join(SCOPES)}.",
                        "use none, instrument or datasets.")
    if request.scope == "datasets":
        if not request.datasets:
            raise UserError(f"{opt('scope')} datasets needs the exposures to sync for.",
                            f"add {opt('datasets')} FILE... (or a folder of *_uncal.fits).")
        for path in request.datasets:
            if not path.exists():
                raise UserError(f"dataset {path} does not exist.", "give existing FITS files.")
        if not request.image and request.named is None:  # a product names its own
            raise UserError(f"{opt('scope')} datasets chooses the references with the "
                            "jwst of the image they are for (the reference types differ from "
                            "release to release), and no image was given.",
                            f"give {opt('image')} IMAGE, or a SPEC whose image is built "
                            f"({prog()} build SPEC first).")


def _server_info(api, server: str) -> dict:
    try:
        info = api.get_server_info()
    except Exception as exc:  # noqa: BLE001 - the client raises many kinds for "unreachable"
        raise UserError(f"cannot reach the CRDS server at {server} ({_first_line(exc)}).",
                        f"check {opt('server')} / CRDS_SERVER_URL and the network (proxy "
                        "variables); on a machine with no network, sync on one that has it and "
                        "copy or mount the cache.") from None
    if info.get("observatory") != "jwst":
        raise UserError(f"the CRDS server at {server} serves '{info.get('observatory')}', "
                        "not jwst.", "use a JWST CRDS server, e.g. " + DEFAULT_SERVER)
    return info


def _rpc(method, request: SyncRequest, *args):
    try:
        return method(*args)
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"the CRDS server {request.server} refused {method.__name__}"
                        f"{args!r}: {_first_line(exc)}", "check the context name.") from None


def _wanted(info: dict, url_key: str, names: list[str], dest) -> list[Wanted]:
    base = info[url_key]["jwst"]
    metadata = info.get("download_metadata") or {}
    unknown = [n for n in names if n not in metadata]
    if unknown:
        from crds.client import api

        metadata = {**metadata, **api.get_file_info_map("jwst", unknown, ["size", "sha1sum"])}
    files = []
    for name in names:
        meta = metadata.get(name)
        if not meta or "NOT FOUND" in str(meta):
            raise UserError(f"the CRDS server does not list {name}.",
                            "the context names a file the server cannot serve; report it to "
                            "the CRDS team or use another context.")
        files.append(Wanted(name, base + name, dest(name), int(meta["size"]),
                            meta.get("sha1sum", "")))
    return files


def _reference_path(name: str) -> Path:
    from crds.core import config

    return Path(config.locate_file(name, "jwst"))


def _write_config(info: dict, cache: Path) -> None:
    """Cache the server info and an explicit instrument layout, as ``crds sync`` would."""
    from crds.core import heavy_client

    heavy_client.cache_server_info(heavy_client.ConfigInfo(info), "jwst")
    mode = cache / "config" / "jwst" / "ref_cache_subdir_mode"
    if not mode.exists():
        mode.write_text("instrument\n")


def _reference_names(request: SyncRequest, cache: Path, reporter: Reporter) -> list[str]:
    import crds

    if request.scope == "none":
        return []
    if request.named is not None:  # what a product says it used: no selection to compute
        return sorted(set(request.named))
    if request.scope == "instrument":
        imap = crds.get_cached_mapping(request.context).get_imap(request.instrument)
        return sorted(n for n in imap.reference_names() if n.upper() not in ("N/A", "OMIT"))
    return _dataset_references(request, cache, reporter)


def _dataset_references(request: SyncRequest, cache: Path, reporter: Reporter) -> list[str]:
    """What the exposures need, chosen in the image by its own jwst (the host has none)."""
    from niriss_pipe.crds.refcheck import select_references
    from niriss_pipe.engine.client import Engine

    datasets = _dataset_files(request.datasets)
    if not datasets:
        raise UserError(f"{opt('datasets')} {' '.join(map(str, request.datasets))}: no "
                        "exposures there.", "give *_uncal.fits files or folders holding them.")
    selection = select_references(Engine(reporter), request.image, request.context, cache,
                                  datasets)
    for path, info in sorted(selection.per_dataset.items()):
        reporter.say(f"  {Path(path).name}: {info['exp_type']} through "
                     f"{', '.join(info['pipelines'])}: {len(info['selected'])} references")
        if info["not_in_imap"]:
            lacks = info["not_in_imap"]
            named = ", ".join(lacks[:6]) + (f" and {len(lacks) - 6} more" if len(lacks) > 6
                                             else "")
            reporter.warn(f"{request.context} has no {named} for "
                          f"{request.instrument}, which the jwst of {request.image} asks for: "
                          "a run of this exposure stops there.")
    return selection.names


def _dataset_files(paths: tuple[Path, ...]) -> list[Path]:
    files = []
    for path in paths:
        files += sorted(path.glob("*_uncal.fits")) if path.is_dir() else [path]
    return files


def _confirm(request: SyncRequest, total: int, count: int) -> None:
    if total <= request.confirm_over or request.assume_yes:
        return
    question = f"download {count} files, {human_bytes(total)}? [y/N] "
    if not sys.stdin.isatty():
        raise UserError(f"this sync would download {human_bytes(total)} (over the "
                        f"{human_bytes(request.confirm_over)} threshold).",
                        f"re-run with {opt('yes')}, or narrow it with "
                        f"{opt('scope')} datasets.")
    if input(question).strip().lower() not in ("y", "yes"):
        raise UserError("sync cancelled; nothing was downloaded.", "")


def _fetch(files: list[Wanted], manifest: Manifest, request: SyncRequest, reporter: Reporter,
           label: str, before=None) -> FetchReport:
    report = fetch(files, manifest, jobs=request.jobs, reporter=reporter, label=label,
                   rehash=request.verify, before=before)
    if report.repaired:
        reporter.say(f"  {label}: {len(report.repaired)} cached files did not match the "
                     f"server and were fetched again: {', '.join(report.repaired[:5])}")
    elif request.verify:
        reporter.say(f"  {label}: all {len(files)} verified against the server's sha1s")
    if report.fetched:
        reporter.say(f"  {label}: fetched {len(report.fetched)} files, "
                     f"{human_bytes(report.bytes)} in {report.seconds:.1f} s "
                     f"({human_bytes(report.rate)}/s); {len(report.skipped)} already verified")
    if report.failed:
        shown = "; ".join(f"{msg}" for msg in list(report.failed.values())[:3])
        raise UserError(f"{len(report.failed)} of {len(files)} {label} failed to download or "
                        f"verify: {shown}", "run the same sync again: verified files are kept "
                        "and only the failed ones are fetched; nothing unverified was kept.")
    return report


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
