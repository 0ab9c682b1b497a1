"""The day a git source's environment is resolved as of: the commit's date, moved later only as
far as the commit's own requirements need to be installable.

A date alone can predate what the source itself asks for (jwst 3.0.0 was tagged before the
stcal it requires reached PyPI): for each of its requirements that applies to the image's
Python, the first day the index held a file of a satisfying release that installs there.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from packaging.markers import InvalidMarker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from niriss_pipe.spec.pypi import project_files


@dataclass(frozen=True)
class Need:
    """A requirement that moved the day: first installable as ``version`` on ``day``."""

    requirement: str
    version: str
    day: dt.date


def marker_environment(python: str) -> dict[str, str]:
    """PEP 508 marker values of the image: CPython ``python`` on x86_64 Linux, no extras."""
    full = python if python.count(".") >= 2 else f"{python}.0"
    return {"python_version": ".".join(python.split(".")[:2]), "python_full_version": full,
            "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
            "os_name": "posix", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "extra": ""}


def applicable(requirements: tuple[str, ...], python: str) -> list[Requirement]:
    """The requirements that apply to the image (markers true, no extras-only ones)."""
    found = []
    for text in requirements:
        try:
            requirement = Requirement(text)
            if requirement.url or (requirement.marker is not None
                                   and not requirement.marker.evaluate(
                                       marker_environment(python))):
                continue
        except (InvalidRequirement, InvalidMarker):
            continue
        found.append(requirement)
    return found


def installs_here(filename: str, python: str) -> Version | None:
    """The release a file belongs to when it can be installed on CPython ``python`` on x86_64
    Linux (an sdist always can, given compilers); None otherwise."""
    cp = "cp" + "".join(python.split(".")[:2])
    try:
        if filename.endswith(".whl"):
            _, version, _, tags = parse_wheel_filename(filename)
            ok = any(tag.interpreter in (cp, "py3", f"py{cp[2]}")
                     and tag.abi in ("none", "abi3", cp)
                     and (tag.platform == "any" or ("x86_64" in tag.platform
                                                    and "linux" in tag.platform))
                     for tag in tags)
            return version if ok else None
        if filename.endswith((".tar.gz", ".zip")):
            return parse_sdist_filename(filename)[1]
    except (InvalidWheelFilename, InvalidSdistFilename, InvalidVersion):
        return None
    return None


def first_installable(requirement: Requirement, python: str,
                      files: list[dict]) -> tuple[str, dt.date] | None:
    """(version, day) of the first upload of a file that satisfies ``requirement`` and installs
    on ``python``; None when the index has none."""
    best: tuple[str, str] | None = None
    here = python if python.count(".") >= 2 else f"{python}.0"
    pre = bool(requirement.specifier.prereleases)  # only when the requirement names one
    for item in files:
        if item.get("yanked") or not item.get("upload-time"):
            continue
        version = installs_here(item["filename"], python)
        if version is None or not requirement.specifier.contains(version, prereleases=pre):
            continue
        needs = item.get("requires-python")
        try:
            if needs and not SpecifierSet(needs).contains(here, prereleases=True):
                continue
        except ValueError:
            pass
        stamp = item["upload-time"]
        if best is None or stamp < best[1]:
            best = (str(version), stamp)
    return (best[0], dt.date.fromisoformat(best[1][:10])) if best else None


def needs(requirements: tuple[str, ...], python: str, after: dt.date,
          files_of=None) -> tuple[list[Need], list[str]]:
    """The requirements first installable after ``after`` (what moves the day), and those
    the index could not answer for (they cannot move it). ``files_of(name)``: the index's
    files of a project (default: PyPI's JSON simple API)."""
    files_of = files_of or project_files
    wanted = applicable(requirements, python)
    with ThreadPoolExecutor(max_workers=8) as pool:
        listings = list(pool.map(lambda r: files_of(canonicalize_name(r.name)), wanted))
    moved, unknown = [], []
    for requirement, files in zip(wanted, listings):
        found = first_installable(requirement, python, files) if files is not None else None
        if found is None:
            unknown.append(str(requirement))
        elif found[1] > after:
            moved.append(Need(str(requirement), found[0], found[1]))
    return sorted(moved, key=lambda n: n.day), unknown


def resolve_day(commit_day: dt.date, requirements: tuple[str, ...], python: str,
                files_of=None) -> tuple[str, list[Need], list[str]]:
    """(exclude-newer day, what moved it, what the index could not answer): the day after the
    later of the commit's day and the last of its requirements' first installable days."""
    moved, unknown = needs(requirements, python, commit_day, files_of)
    day = max([commit_day, *(n.day for n in moved)])
    return (day + dt.timedelta(days=1)).isoformat(), moved, unknown
