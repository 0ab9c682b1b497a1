"""The build context: the rendered Dockerfile plus the files it copies, as one reproducible tar.

The tar is byte-for-byte the same for the same inputs (sorted names, zero
mtimes and owners), so its sha256 together with the base image id is the
image's *content* identity: building again with the same content is a no-op.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from .render import CA_BUNDLE_NAME

PACKAGE_DIR = Path(__file__).resolve().parent
RUNTIME_FILES = ("__init__.py", "cachecheck.py", "selftest.py", "synth.py")


@dataclass(frozen=True)
class BuildContext:
    dockerfile: str
    files: dict[str, bytes]  # path in the context -> content

    def tar(self) -> bytes:
        """The context as a deterministic tar archive."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            entries = {"Dockerfile": self.dockerfile.encode(), **self.files}
            for name in sorted(entries):
                data = entries[name]
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    def digest(self, base_id: str) -> str:
        """sha256 hex of everything that decides the image's content."""
        h = hashlib.sha256()
        h.update(base_id.encode() + b"\0")
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        h.update(self.dockerfile.encode())
        return h.hexdigest()


def make_context(dockerfile: str, ca_bundle: Path | None = None) -> BuildContext:
    """Collect the runtime package, the entrypoint and, when asked, a CA bundle."""
    files = {"niriss_pipe/__init__.py": (PACKAGE_DIR / "__init__.py").read_bytes()}
    for name in RUNTIME_FILES:
        files[f"niriss_pipe/runtime/{name}"] = (PACKAGE_DIR / "runtime" / name).read_bytes()
    files["entrypoint.sh"] = (PACKAGE_DIR / "runtime" / "entrypoint.sh").read_bytes()
    if ca_bundle is not None:
        files[CA_BUNDLE_NAME] = ca_bundle.read_bytes()
    return BuildContext(dockerfile=dockerfile, files=files)
