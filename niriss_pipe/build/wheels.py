"""The host's cache of verified wheels: what the environment stage installs from.

Every build used to download its 61 wheels inside the build with pip. Now the host keeps one
folder of wheels shared by every spec (``$XDG_CACHE_HOME/niriss-pipe/wheels``, or ``--to``/
``--wheels DIR``), fills it from the index by the lock's hashes, and checks every file against
the lock's sha256 each time it is used: a file is trusted for its hash, never for its name or
where it came from. The build context carries exactly the wheels the lock names (build/
render: a stage of their own, never a layer of the final image).
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.core.cache import cache_path
from niriss_pipe.core.digest import file_digest
from niriss_pipe.core.errors import UserError, opt, prog, shown
from niriss_pipe.core.progress import Reporter, TransferProgress, human_bytes
from niriss_pipe.render.dockerfile import UV_SHA256, UV_VERSION
from niriss_pipe.spec import lock as locking
from niriss_pipe.spec import pypi
from niriss_pipe.spec.wheels import (
    Locked,
    WheelFile,
    choose,
    is_file_of,
    is_source_of,
    locked,
    target_tags,
)

CHUNK = 1 << 20
JOBS = 6  # parallel downloads: the index serves many small wheels; more gains little


class SourcesInLock(UserError):
    """The index has some locked packages only as source releases (sdists) for this image:
    such a lock is installed by pip from the index in the build, not from wheels."""

    def __init__(self, sources: list[str]):
        self.sources = sources
        shown_names = ", ".join(sources[:6]) + (f" and {len(sources) - 6} more"
                                                if len(sources) > 6 else "")
        super().__init__(f"the lock holds {len(sources)} source release(s) with no wheel for "
                         f"this image ({shown_names}); they are built in the build from the "
                         "index, so this lock cannot be fetched for, or built, offline.",
                         "build it with the network, or lock a release that has wheels "
                         f"({prog()} lock SPEC --upgrade).")


@dataclass(frozen=True)
class Verified:
    """A wheel on disk whose sha256 is one the lock names."""

    path: Path
    sha256: str
    size: int


def cache_dir(environ=os.environ) -> Path:
    """``$XDG_CACHE_HOME/niriss-pipe/wheels``, else ``~/.cache/niriss-pipe/wheels``."""
    return cache_path("wheels", environ)


def wanted(lock_text: str) -> list[Locked]:
    """What a build of this lock installs: uv (pinned by hash), then every locked package."""
    return [Locked("uv", UV_VERSION, frozenset({UV_SHA256})), *locked(lock_text)]


def _ranked(lock_text: str) -> tuple[list[str], list[str]]:
    """(wheel tags for the lock's packages, tags for uv, a host tool: any manylinux x86_64)."""
    recorded = json.loads(locking.recorded_inputs(lock_text) or "{}")
    return (target_tags(recorded.get("python", "3.11"),
                        recorded.get("platform", "x86_64-manylinux_2_28")),
            target_tags("3.11", "x86_64-manylinux_2_36"))


def scan(directory: Path, packages: list[Locked]) -> list[WheelFile]:
    """The files of ``directory`` that are wheels of ``packages`` by name, hashed. A name that
    is not one safe wheel file name (a path, a quote, a newline, non-ASCII) is never read."""
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UserError(f"the wheel folder {directory} cannot be read ({exc.strerror}).",
                        f"give a readable folder with {opt('wheels')} DIR.") from None
    found = []
    for entry in entries:
        if not entry.is_file(follow_symlinks=False):
            continue
        if any(is_file_of(entry.name, package) for package in packages):
            found.append(WheelFile(entry.name, file_digest(Path(entry.path))))
    return found


def resolve(lock_text: str, directory: Path, reporter: Reporter | None = None, *,
            download: bool = True, fetch_hint: str = "") -> dict[str, Verified]:
    """``{wheel file name: verified file}`` for every wheel a build of this lock installs,
    from ``directory``; missing ones are downloaded into it by their hash when ``download``,
    else a UserError names them and the fetch command (``fetch_hint``)."""
    packages = wanted(lock_text)
    ranked, tool = _ranked(lock_text)
    present = scan(directory, packages)
    chosen: dict[str, WheelFile] = {}
    missing: list[Locked] = []
    for package in packages:
        pick = choose(package, present, tool if package.name == "uv" else ranked)
        if pick is None:
            missing.append(package)
        else:
            chosen[package.name] = pick
    if missing and not download:
        names = ", ".join(f"{p.name}=={p.version}" for p in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise UserError(f"{len(missing)} wheel(s) the lock names are not in {directory} with "
                        f"a hash the lock allows: {names}{more}; {opt('offline')} builds "
                        "only from verified files on this host.",
                        f"run: {fetch_hint or prog() + ' fetch SPEC'} (on a host with the "
                        "index), then build again.")
    if missing:
        listings = _index_files(missing, ranked, tool)
        sources = [f"{p.name}=={p.version}" for p, listing in zip(missing, listings)
                   if listing is None]
        if sources:
            raise SourcesInLock(sources)
        chosen.update(_download(missing, listings, directory, reporter))
    result = {}
    for package in packages:
        pick = chosen[package.name]
        path = directory / pick.filename
        result[pick.filename] = Verified(path, pick.sha256, path.stat().st_size)
    return result


def sources_in(lock_text: str, directory: Path) -> list[str]:
    """The locked packages the index has only as source releases for this image (asking the
    index for the ones ``directory`` lacks, downloading nothing): what ``render`` needs to
    know to show the Dockerfile ``build`` uses."""
    packages = wanted(lock_text)
    ranked, tool = _ranked(lock_text)
    present = scan(directory, packages)
    missing = [p for p in packages
               if choose(p, present, tool if p.name == "uv" else ranked) is None]
    listings = _index_files(missing, ranked, tool) if missing else []
    return [f"{p.name}=={p.version}" for p, listing in zip(missing, listings) if listing is None]


def _index_files(packages: list[Locked], ranked: list[str],
                 tool: list[str]) -> list[tuple[WheelFile, str, int] | None]:
    """Each package's wheel in the index, by hash (None: a source release only), in
    parallel."""
    with ThreadPoolExecutor(JOBS) as pool:
        return list(pool.map(lambda p: _index_file(p, tool if p.name == "uv" else ranked),
                             packages))


def _download(packages: list[Locked], listings: list[tuple[WheelFile, str, int]],
              directory: Path, reporter: Reporter | None) -> dict[str, WheelFile]:
    """Download each listed wheel and verify it (in parallel)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"the wheel folder {directory} cannot be made ({exc.strerror}).",
                        f"give a writable folder with {opt('wheels')} DIR.") from None
    total = sum(size for _, _, size in listings)
    progress = TransferProgress(reporter, "wheels", len(listings), total) if reporter else None
    try:
        with ThreadPoolExecutor(JOBS) as pool:
            list(pool.map(lambda item: _fetch_one(*item[:2], directory, progress), listings))
    finally:
        if progress:
            progress.close()
    if reporter:
        reporter.detail(f"downloaded {len(listings)} wheel(s), {human_bytes(total)}, "
                        f"into {directory}")
    return {package.name: wheel for package, (wheel, _, _) in zip(packages, listings)}


def _index_file(package: Locked, ranked: list[str]) -> tuple[WheelFile, str, int] | None:
    """(the wheel to get, its URL, its size) from the index's JSON simple API; None when the
    index has the release only as a source release whose hash the lock names."""
    files = pypi.project_files(package.name)
    if files is None:
        raise UserError(f"the package index {pypi.PYPI_SIMPLE} could not be asked for "
                        f"{package.name}=={package.version}.",
                        "check the network (or the proxy and its CA), or copy a wheelhouse "
                        f"made by {prog()} fetch on another host and give it with "
                        f"{opt('wheels')} DIR.")
    listed = {}
    for entry in files:
        sha = (entry.get("hashes") or {}).get("sha256", "")
        listed[sha] = entry
    candidates = [WheelFile(entry["filename"], sha) for sha, entry in listed.items()
                  if isinstance(entry.get("filename"), str)]
    pick = choose(package, candidates, ranked)
    if pick is None:
        if any(candidate.sha256 in package.hashes and is_source_of(candidate.filename, package)
               for candidate in candidates):
            return None
        locked_hashes = ", ".join(sorted(package.hashes)[:2])
        raise UserError(f"the index lists no file of {package.name}=={package.version} for "
                        f"this image with a hash the lock names (sha256 {locked_hashes}...): "
                        "the lock was edited, or the index serves other files than it did.",
                        f"lock the spec again ({prog()} lock SPEC) and review the change; "
                        "nothing was built.")
    entry = listed[pick.sha256]
    return pick, entry["url"], int(entry.get("size") or 0)


def _fetch_one(wheel: WheelFile, url: str, directory: Path,
               progress: TransferProgress | None) -> None:
    """Download ``url`` to ``directory/<name>.part``, check its sha256, then rename it."""
    final = directory / wheel.filename
    part = directory / f".{wheel.filename}.part"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(part, "wb") as out:
            for block in iter(lambda: response.read(CHUNK), b""):
                digest.update(block)
                out.write(block)
                if progress:
                    progress.add(len(block))
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise UserError(f"downloading {wheel.filename} from {shown(url)} failed ({exc}).",
                        "check the network (or the proxy and its CA) and run the command "
                        "again; verified wheels already downloaded are kept.") from None
    if digest.hexdigest() != wheel.sha256:
        part.unlink(missing_ok=True)
        raise UserError(f"{wheel.filename} from {shown(url)} has sha256 {digest.hexdigest()}, "
                        f"not {wheel.sha256} as the lock and the index say; it was not kept.",
                        "run the command again; if it persists, the index or a proxy serves "
                        "another file than it lists.")
    os.replace(part, final)
    if progress:
        progress.add(files=1)
