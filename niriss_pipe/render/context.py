"""The build context: the rendered Dockerfile plus the files it copies, as one reproducible tar.

The tar is byte-for-byte the same for the same inputs (sorted names, zero
mtimes and owners), so its sha256 together with the base image id is the
image's *content* identity: building again with the same content is a no-op.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from niriss_pipe.render.dockerfile import (
    BUILD_ENV_NAME,
    BUILD_ONLY_NAME,
    CA_BUNDLE_NAME,
    DEBS_NAME,
    LOCK_NAME,
    OS_PACKAGES_NAME,
    OVERLAPS_NAME,
    WHEELS_NAME,
    build_env,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # niriss_pipe/


def runtime_files() -> list[str]:
    """Every module of ``runtime/``: what runs inside the image (all of it, so a new module
    cannot be left out of the image)."""
    return sorted(path.name for path in (PACKAGE_DIR / "runtime").glob("*.py"))


@dataclass(frozen=True)
class DiskFile:
    """A large context file (a baked CRDS reference, a wheel) streamed from disk, never held in
    memory; its digest is already verified (against the CRDS server, the lock), so it is not
    hashed again. ``sha1`` holds the digest, of ``algorithm``."""

    path: Path
    sha1: str
    algorithm: str = "sha1"


@dataclass(frozen=True)
class BuildContext:
    dockerfile: str
    files: dict[str, bytes]  # path in the context -> content
    disk: dict[str, DiskFile] = field(default_factory=dict)

    def write_tar(self, stream: BinaryIO) -> None:
        """Write the context as a deterministic tar archive to ``stream``."""
        with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
            entries: dict[str, bytes | DiskFile] = {"Dockerfile": self.dockerfile.encode(),
                                                    **self.files, **self.disk}
            for name in sorted(entries):
                item = entries[name]
                info = tarfile.TarInfo(name)
                info.mtime, info.mode, info.uid, info.gid = 0, 0o644, 0, 0
                info.uname = info.gname = ""
                if isinstance(item, DiskFile):
                    info.size = item.path.stat().st_size
                    with open(item.path, "rb") as data:
                        tar.addfile(info, data)
                else:
                    info.size = len(item)
                    tar.addfile(info, io.BytesIO(item))

    def tar(self) -> bytes:
        buffer = io.BytesIO()
        self.write_tar(buffer)
        return buffer.getvalue()

    def digest(self, base_id: str, extra: str = "") -> str:
        """sha256 hex of everything that decides the image's content (``extra``: build
        settings outside the context that change the image, such as its creation time)."""
        h = hashlib.sha256()
        h.update(base_id.encode() + b"\0")
        if extra:
            h.update(extra.encode() + b"\0")
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        for name in sorted(self.disk):
            item = self.disk[name]
            h.update(name.encode() + f"\0{item.algorithm}:".encode() + item.sha1.encode())
        h.update(self.dockerfile.encode())
        return h.hexdigest()


def make_context(dockerfile: str, lock: bytes, ca_bundle: Path | None = None,
                 crds_files: dict[str, bytes] | None = None,
                 crds_disk: dict[str, DiskFile] | None = None,
                 wheels: dict[str, DiskFile] | None = None,
                 debs: dict[str, DiskFile] | None = None) -> BuildContext:
    """Collect the lock, the runtime package, the entrypoint, and what only the build needs
    (under ``build-only/``: the build steps' settings, when asked a CA bundle, the verified
    wheels the lock names, ``{file name: file}``; under ``os-packages/debs/``: the verified
    .deb files and their SHA256SUMS, which may be empty); for baked images the CRDS cache
    files (under ``crds/``)."""
    files = {"niriss_pipe/__init__.py": (PACKAGE_DIR / "__init__.py").read_bytes()}
    for name in runtime_files():
        files[f"niriss_pipe/runtime/{name}"] = (PACKAGE_DIR / "runtime" / name).read_bytes()
    files["entrypoint.sh"] = (PACKAGE_DIR / "runtime" / "entrypoint.sh").read_bytes()
    files[LOCK_NAME] = lock
    only = BUILD_ONLY_NAME
    files[f"{only}/{OVERLAPS_NAME}"] = (PACKAGE_DIR / "templates" / "overlaps.py").read_bytes()
    files[f"{only}/{BUILD_ENV_NAME}"] = build_env(ca_bundle is not None)
    if ca_bundle is not None:
        files[f"{only}/{CA_BUNDLE_NAME}"] = ca_bundle.read_bytes()
    files.update(crds_files or {})
    disk = {f"{only}/{WHEELS_NAME}/{name}": item for name, item in (wheels or {}).items()}
    debs = debs or {}
    files[f"{OS_PACKAGES_NAME}/{DEBS_NAME}/SHA256SUMS"] = "".join(
        f"{debs[name].sha1}  {name}\n" for name in sorted(debs)).encode()
    disk.update({f"{OS_PACKAGES_NAME}/{DEBS_NAME}/{name}": item for name, item in debs.items()})
    disk.update(crds_disk or {})
    return BuildContext(dockerfile=dockerfile, files=files, disk=disk)
