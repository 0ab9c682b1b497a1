"""The host's cache of OS packages (.deb files): what the os-packages stage installs from.

The stage used to run ``apt-get`` against Debian's mirror inside the build, so no build could
run without the network (an air-gapped site with the base image tarball still could not build),
and every ``--no-cache`` build downloaded the packages again. Now apt, in a container of the base
image with the network, downloads the spec's packages and what they need that the base lacks
(apt checks every file against the mirror's signed index); the host keeps them with their
sha256, one folder per base image and package list, and checks them each time they are used.
The build installs exactly those files, verified again inside, with no network.

The folder is kept until it is removed (``clean``): like the engine's layer cache before, the
OS packages of a base stay what they were on the first build, the same on every rebuild.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from niriss_pipe.core.cache import cache_path, read_json_object
from niriss_pipe.core.digest import file_digest
from niriss_pipe.core.errors import EngineError, UserError, opt, prog, shown
from niriss_pipe.core.progress import human_bytes
from niriss_pipe.engine.client import Engine
from niriss_pipe.render.context import DiskFile

FOLDER = "os-packages"  # in the cache, and in a fetched wheelhouse (fetch --to DIR)
MANIFEST = "manifest.json"
IN_HELPER = "/tmp/niriss-pipe-debs"
# apt's own names for what it downloads: package_version_arch.deb, an epoch's colon as %3a.
DEB_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]*_[A-Za-z0-9.+~-]*(?:%3a[A-Za-z0-9.+~-]+)?"
                      r"_[a-z0-9-]+\.deb")
SHA256 = re.compile(r"[0-9a-f]{64}")
DOWNLOAD = ("apt-get update -qq"
            f" && mkdir -p {IN_HELPER}/partial"
            " && apt-get install -y -qq --no-install-recommends --download-only"
            f" -o Dir::Cache::archives={IN_HELPER}/ -- \"$@\""
            f" && rm -rf {IN_HELPER}/partial {IN_HELPER}/lock")


@dataclass(frozen=True)
class OsPackages:
    """The verified .deb files of one base and package list, ``{file name: file}``."""

    folder: Path
    files: dict[str, DiskFile]

    @property
    def size(self) -> int:
        return sum(item.path.stat().st_size for item in self.files.values())


def cache_dir(environ=os.environ) -> Path:
    """``$XDG_CACHE_HOME/niriss-pipe/os-packages``, else ``~/.cache/niriss-pipe/os-packages``."""
    return cache_path(FOLDER, environ)


def folder_for(root: Path, base_id: str, packages: list[str]) -> Path:
    """``root/<16 hex>``: one folder per base image id and sorted package list."""
    key = hashlib.sha256("\0".join([base_id, *sorted(packages)]).encode()).hexdigest()
    return root / key[:16]


def verified(folder: Path, base_id: str, packages: list[str]) -> OsPackages | None:
    """The folder's files when its manifest is for this base and these packages and every
    file it names is there with its sha256; None otherwise (not fetched, or changed since)."""
    manifest = read_json_object(folder / MANIFEST)
    files = manifest.get("files")
    if manifest.get("base") != base_id or manifest.get("packages") != sorted(packages) \
            or not isinstance(files, dict):
        return None
    found = {}
    for name, sha in files.items():
        if not (isinstance(name, str) and DEB_NAME.fullmatch(name) and isinstance(sha, str)
                and SHA256.fullmatch(sha)):
            return None
        path = folder / name
        try:
            if not path.is_file() or path.is_symlink() or file_digest(path) != sha:
                return None
        except OSError:
            return None
        found[name] = DiskFile(path, sha, "sha256")
    return OsPackages(folder, found)


def folders_of(root: Path, base_ids: set[str]) -> list[Path]:
    """The folders of ``root`` fetched for one of ``base_ids`` (by their manifest): what
    ``clean`` removes with those base images, for no build can use them any more."""
    if not root.is_dir():
        return []
    return sorted(folder for folder in root.iterdir() if folder.is_dir()
                  and read_json_object(folder / MANIFEST).get("base") in base_ids)


def resolve(engine: Engine, base_id: str, base_reference: str, packages: list[str],
            root: Path, *, download: bool = True, fetch_hint: str = "",
            environment: dict[str, str] | None = None) -> OsPackages:
    """The verified .deb files the os-packages stage installs for ``packages`` on the base
    ``base_id``, from ``root``; downloaded by apt in a container of the base when missing and
    ``download``, else a UserError naming the fetch command (``fetch_hint``)."""
    folder = folder_for(root, base_id, packages)
    found = verified(folder, base_id, packages)
    if found is not None:
        return found
    if not download:
        raise UserError(f"the OS packages for this base ({', '.join(sorted(packages))}) are "
                        f"not in {root} as fetched for base {base_id[7:19]}, or changed since; "
                        f"{opt('offline')} builds only from verified files on this host.",
                        f"run: {fetch_hint or prog() + ' fetch SPEC'} (on a host with the "
                        "network and the same base), then build again.")
    return _download(engine, base_id, base_reference, packages, folder, environment)


def _download(engine: Engine, base_id: str, base_reference: str, packages: list[str],
              folder: Path, environment: dict[str, str] | None) -> OsPackages:
    """apt-get --download-only in a container of the base; the files into a folder beside
    ``folder``, hashed, then renamed into place with their manifest."""
    part = folder.with_name(f".{folder.name}.part-{os.getpid()}")
    engine.reporter.detail(f"downloading OS packages {' '.join(sorted(packages))} with apt "
                           f"in {base_reference}")
    try:
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir(parents=True)
    except OSError as exc:
        raise UserError(f"the OS packages folder {folder.parent} cannot be made "
                        f"({exc.strerror}).",
                        f"make it writable, or give another folder with {opt('wheels')} DIR."
                        ) from None
    try:
        with engine.run_collect(base_id, ["sh", "-eu", "-c", DOWNLOAD, "sh", *sorted(packages)],
                                IN_HELPER, environment=environment) as (code, output, chunks):
            if chunks is None:
                tail = " ".join(output.strip().splitlines()[-3:])[-400:]
                raise UserError(f"apt could not download the OS packages "
                                f"{' '.join(sorted(packages))} in {base_reference} (exit "
                                f"{code}: {shown(tail, limit=400)}).",
                                "check the network (or the proxy: HTTP_PROXY is passed to "
                                "apt) and the spec's 'apt' field, then run the command again.")
            files = _unpack(chunks, part)
        manifest = {"base": base_id, "packages": sorted(packages),
                    "files": {name: sha for name, sha in sorted(files.items())}}
        (part / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(part, folder)
    except OSError as exc:
        raise UserError(f"the OS packages could not be written to {folder} ({exc.strerror}).",
                        "free disk space or make the folder writable, then run the command "
                        "again.") from None
    finally:
        shutil.rmtree(part, ignore_errors=True)
    found = verified(folder, base_id, packages)
    if found is None:  # written and renamed just now: only another process could change it
        raise EngineError(f"the OS packages in {folder} changed while they were written.",
                          "run the command again.")
    size = human_bytes(found.size)
    engine.reporter.detail(f"downloaded {len(found.files)} OS package(s), {size}, into {folder}")
    return found


class _Chunks:
    """A file-like reader over the engine's tar stream."""

    def __init__(self, chunks):
        self.chunks, self.pending = iter(chunks), b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.pending) < size:
            block = next(self.chunks, b"")
            if not block:
                break
            self.pending += block
        if size < 0:
            data, self.pending = self.pending, b""
        else:
            data, self.pending = self.pending[:size], self.pending[size:]
        return data


def _unpack(chunks, part: Path) -> dict[str, str]:
    """The .deb files of the helper's folder (``niriss-pipe-debs/NAME.deb`` in the archive),
    written to ``part``: ``{name: sha256}``. Anything else in the archive is skipped; a .deb
    entry whose name is not apt's grammar (a path, a quote, a newline) is an error, for its
    name would reach SHA256SUMS and the build."""
    files = {}
    top = PurePosixPath(IN_HELPER).name
    with tarfile.open(fileobj=_Chunks(chunks), mode="r|") as tar:
        for member in tar:
            path = PurePosixPath(member.name)
            if not member.isreg() or path.parent != PurePosixPath(top) \
                    or not path.name.endswith(".deb"):
                continue
            if not DEB_NAME.fullmatch(path.name):
                raise EngineError(f"apt downloaded a file named {shown(path.name)}, which is "
                                  "no Debian package file name.",
                                  "check the base image's apt sources; nothing was kept.")
            digest = hashlib.sha256()
            source = tar.extractfile(member)
            with open(part / path.name, "wb") as out:
                for block in iter(functools.partial(source.read, 1 << 20), b""):
                    digest.update(block)
                    out.write(block)
            files[path.name] = digest.hexdigest()
    return files

