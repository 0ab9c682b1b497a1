"""Spec layer: the image spec as values (what a validated ``images/*.yaml`` says)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

# The Python that each Debian suite ships: what a ``venv`` image gets.
SUITE_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MANAGERS = ("venv", "conda")
REFERENCE_MODES = ("mount", "bake")
REFERENCE_SCOPES = ("none", "instrument", "datasets")


@dataclass(frozen=True)
class BaseSpec:
    """Where the image starts: a pulled registry image, or one made with debootstrap."""

    suite: str
    image: str | None = None  # registry reference; None -> debootstrap
    mirror: str = DEFAULT_MIRROR
    variant: str = "minbase"

    @property
    def debootstrap(self) -> bool:
        return self.image is None

    @property
    def reference(self) -> str:
        """The name the Dockerfile's FROM uses: for a base made here, its suite, variant and
        mirror (another mirror, a snapshot.debian.org date say, is another base)."""
        if self.image:
            return self.image
        mirror = hashlib.sha256(self.mirror.encode()).hexdigest()[:8]
        return f"niriss-pipe-base:{self.suite}-{self.variant}-{mirror}"

    @property
    def pinned(self) -> bool:
        return self.image is None or "@sha256:" in self.image


@dataclass(frozen=True)
class JwstSpec:
    """A PyPI release (``version``) or a git source (``git`` + ``ref``)."""

    version: str | None = None
    git: str | None = None
    ref: str | None = None

    @property
    def label(self) -> str:
        """Short form for tags: ``3.0.0`` or the git ref."""
        return self.version or (self.ref or "").removeprefix("v")

    @property
    def requirement(self) -> str:
        """What pip installs."""
        if self.version:
            return f"jwst=={self.version}"
        url = self.git if self.git.startswith("git+") else f"git+{self.git}"
        return f"jwst @ {url}@{self.ref}"


@dataclass(frozen=True)
class ImageSpec:
    """A validated image spec."""

    path: Path
    name: str
    context: str
    niriss_imap: str | None
    references: str
    jwst: JwstSpec
    python_version: str
    manager: str
    base: BaseSpec
    apt_packages: tuple[str, ...] = ()
    pip_packages: tuple[str, ...] = ()
    scope: str = "instrument"  # which references a sync or a bake brings
    datasets: tuple[Path, ...] = ()  # for scope 'datasets', resolved against the spec's folder
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def pmap_stem(self) -> str:
        return self.context.removesuffix(".pmap")
