"""Which wheel file of each locked package a build installs: named by the lock's hashes.

A lock pins ``name==version`` with the sha256 of every file of that release (sdist and all
wheels). The build installs one wheel per package from a folder of verified files, so the host
picks it as pip would for the image's interpreter: the most specific compatible tag first
(packaging's order for CPython on manylinux x86_64), among the files whose hash the lock names.
Pure: no network, no engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packaging import tags as pep425

from niriss_pipe.core import grammar
from niriss_pipe.runtime.contract import canonical_name

_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)(?:\[[^\]]*\])?==([^\s;\\]+)"
                          r"((?:\s*\\\n\s*--hash=sha256:[0-9a-f]{64})+)", re.MULTILINE)
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")
_PLATFORM = re.compile(r"x86_64-manylinux_2_([0-9]+)", re.ASCII)


@dataclass(frozen=True)
class Locked:
    """One locked package: its canonical name, version and the sha256 of each allowed file."""

    name: str
    version: str
    hashes: frozenset[str]


@dataclass(frozen=True)
class WheelFile:
    """One file of the index or a wheelhouse: its (checked) name and sha256."""

    filename: str
    sha256: str


def locked(text: str) -> list[Locked]:
    """Every hash-pinned requirement of a lock's text, in the lock's order."""
    return [Locked(canonical_name(name), version, frozenset(_HASH.findall(hashes)))
            for name, version, hashes in _REQUIREMENT.findall(text)]


def target_tags(python: str, platform: str) -> list[str]:
    """Wheel tags the image's interpreter takes, most specific first (pip's order): CPython
    ``python`` (``3.11``) on ``x86_64-manylinux_2_N`` (the lock's platform)."""
    match = _PLATFORM.fullmatch(platform)
    if match is None:
        raise ValueError(f"not a manylinux x86_64 platform: {platform!r}")
    newest = int(match.group(1))
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(newest, 4, -1)]
    legacy = {17: "manylinux2014_x86_64", 12: "manylinux2010_x86_64", 5: "manylinux1_x86_64"}
    platforms = [p for minor, p in zip(range(newest, 4, -1), platforms)
                 for p in ([p, legacy[minor]] if minor in legacy else [p])]
    platforms.append("linux_x86_64")
    major, minor = (int(part) for part in python.split(".")[:2])
    version = (major, minor)
    found = [*pep425.cpython_tags(version, platforms=platforms),
             *pep425.compatible_tags(version, interpreter=f"cp{major}{minor}",
                                     platforms=platforms)]
    return [str(tag) for tag in found if tag.platform != "linux_x86_64"]


def file_tags(filename: str) -> set[str] | None:
    """The tags a wheel file name claims (compressed tag sets expanded); None if not a wheel."""
    parts = grammar.wheel_filename(filename)
    if parts is None:
        return None
    return {f"{py}-{abi}-{plat}" for py in parts["python"].split(".")
            for abi in parts["abi"].split(".") for plat in parts["platform"].split(".")}


def is_file_of(filename: str, package: Locked) -> bool:
    """True when ``filename`` is a wheel of ``package``'s name and version."""
    parts = grammar.wheel_filename(filename)
    return (parts is not None and canonical_name(parts["name"]) == package.name
            and parts["version"] == package.version)


def is_source_of(filename: str, package: Locked) -> bool:
    """True when ``filename`` is a source release (sdist) of ``package``'s name and version:
    ``name-version.tar.gz`` or ``.zip``, the name in any of its spellings."""
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            name, dash, version = filename[:-len(suffix)].rpartition("-")
            return bool(dash) and canonical_name(name) == package.name \
                and version == package.version
    return False


def choose(package: Locked, files: list[WheelFile], ranked: list[str]) -> WheelFile | None:
    """The wheel of ``package`` the image's interpreter prefers among ``files`` whose hash the
    lock names (None: no such wheel; the build then needs another file or another lock)."""
    rank = {tag: index for index, tag in enumerate(ranked)}
    best: tuple[int, str, WheelFile] | None = None
    for candidate in files:
        if candidate.sha256 not in package.hashes or not is_file_of(candidate.filename, package):
            continue
        scores = [rank[tag] for tag in file_tags(candidate.filename) or () if tag in rank]
        if scores and (best is None or (min(scores), candidate.filename) < best[:2]):
            best = (min(scores), candidate.filename, candidate)
    return best[2] if best else None
