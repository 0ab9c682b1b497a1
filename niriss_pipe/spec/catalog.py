"""The jwst release catalog: which CRDS context and Python each jwst release goes with.

Read from ``data/jwst_releases.tsv`` (the jwst README's "DMS Operational Build
Versions" table plus each tag's ``python_requires``). The spec layer uses it to
refuse a Python that a jwst release does not support before any build starts.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from importlib import resources

_VERSION_RE = re.compile(r"[0-9]+(?:\.[0-9]+)*", re.ASCII)  # whole string (fullmatch)


@dataclass(frozen=True)
class Release:
    """One jwst release row of the catalog."""

    tag: str
    dms_build: str
    crds_context: str  # "" when the README lists none (release candidates)
    released: str
    python_requires: str  # e.g. ">=3.11,<3.15"; "" when unknown
    delivery_python: str

    def supports_python(self, version: str) -> bool:
        """True when ``version`` (``3.11`` or ``3.11.4``) satisfies ``python_requires``."""
        return all(_satisfies(version, clause) for clause in _clauses(self.python_requires))


def version_tuple(version: str) -> tuple[int, ...]:
    """``'3.11.4'`` -> ``(3, 11, 4)``; raises ValueError for anything else."""
    if not _VERSION_RE.fullmatch(version):
        raise ValueError(f"not a dotted version number: {version!r}")
    return tuple(int(part) for part in version.split("."))


def _clauses(requires: str) -> list[str]:
    return [c.strip() for c in requires.split(",") if c.strip()]


def _satisfies(version: str, clause: str) -> bool:
    match = re.match(r"^(>=|<=|==|!=|<|>)\s*([\d.]+)$", clause)
    if not match:
        return True  # an operator we do not model (~=, ===): do not refuse on it
    op, bound = match.groups()
    have, want = version_tuple(version), version_tuple(bound)
    # Compare on the bound's precision: "3.11" satisfies ">=3.11" and "<3.12".
    have = have[: len(want)] if op in ("<", ">=", "==", "!=") else have
    return {
        ">=": have >= want,
        "<=": have <= want,
        ">": have > want,
        "<": have < want,
        "==": have == want,
        "!=": have != want,
    }[op]


@functools.lru_cache(maxsize=1)
def releases() -> dict[str, Release]:
    """All catalogued releases by tag, newest first."""
    text = resources.files("niriss_pipe").joinpath("data/jwst_releases.tsv").read_text()
    rows = [line for line in text.splitlines() if line and not line.startswith("#")]
    reader = csv.DictReader(rows, delimiter="\t")
    table = {
        row["tag"]: Release(
            tag=row["tag"],
            dms_build=row["dms_build"] or "",
            crds_context=row["crds_context"] or "",
            released=row["released"],
            python_requires=row["python_requires"] or "",
            delivery_python=row["delivery_python"] or "",
        )
        for row in reader
    }
    return dict(sorted(table.items(), key=lambda kv: version_tuple(kv[0]), reverse=True))


def release(tag: str) -> Release | None:
    """The catalogued release ``tag`` (a leading ``v`` is ignored), or None."""
    return releases().get(tag.removeprefix("v"))


def newest() -> Release:
    """The newest catalogued release: the default spec's jwst."""
    return next(iter(releases().values()))
