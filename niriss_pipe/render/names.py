"""Render layer: the names an image gets from its spec (tags, labels, OS packages). Pure."""

from __future__ import annotations

from niriss_pipe import __version__
from niriss_pipe.runtime.contract import label
from niriss_pipe.spec.model import ImageSpec


def pmap_tag(spec: ImageSpec) -> str:
    """The short, user-facing tag: the pmap stem (``jwst_1584``)."""
    return spec.pmap_stem


def full_tag(spec: ImageSpec) -> str:
    """The fully qualified tag: pmap, jwst and Python (``jwst_1584-jwst3.0.0-py3.11``)."""
    jwst = "".join(c if c.isalnum() or c in "._" else "-" for c in spec.jwst.label)
    return f"{spec.pmap_stem}-jwst{jwst}-py{spec.python_version}"[:128]


def apt_packages(spec: ImageSpec) -> list[str]:
    """OS packages: the manager's needs, git for git sources, then the spec's own."""
    needed = {"ca-certificates"}
    needed |= {"python3", "python3-venv"} if spec.manager == "venv" else {"bzip2", "curl"}
    if spec.jwst.git:
        needed.add("git")
    return sorted(needed | set(spec.apt_packages))


def labels(spec: ImageSpec, imap: str | None,
           commit: str | None = None) -> list[tuple[str, str]]:
    """The static label set, sorted; build-time values are added as ARGs by the template.
    ``commit``: the commit a git source's lock pins."""
    items = {
        "org.opencontainers.image.title": "niriss-pipe",
        "org.opencontainers.image.description":
            f"JWST calibration pipeline (jwst {spec.jwst.label}) for NIRISS, "
            f"offline with CRDS context {spec.context}",
        "org.opencontainers.image.version": full_tag(spec),
        "org.opencontainers.image.base.name": spec.base.reference,
        label("crds.context"): spec.context,
        label("crds.references"): spec.references,
        label("crds.scope"): spec.scope,
        label("python.version"): spec.python_version,
        label("python.manager"): spec.manager,
        label("base.suite"): spec.base.suite,
        label("spec"): spec.path.name,
        label("tool.version"): __version__,
    }
    if imap:
        items[label("crds.niriss-imap")] = imap
    items[label("lock.file")] = f"locks/{spec.path.stem}.txt"
    if spec.jwst.version:
        items[label("jwst.version")] = spec.jwst.version
    else:
        items[label("jwst.git")] = spec.jwst.git
        items[label("jwst.ref")] = spec.jwst.ref
        if commit:
            items[label("jwst.commit")] = commit
    if spec.base.debootstrap:
        items[label("base.mirror")] = spec.base.mirror
        items[label("base.variant")] = spec.base.variant
    return sorted(items.items())
