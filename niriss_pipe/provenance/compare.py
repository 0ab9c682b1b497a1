"""Provenance layer: pure comparisons of what an image holds with what it should hold (an
environment with its lock, one manifest with another)."""

from __future__ import annotations

from dataclasses import dataclass, field

from niriss_pipe.runtime.contract import (
    canonical_name,
)

# Installed by ``python -m venv`` (and conda's pip), not by the lock: never "extra".
SEEDED = frozenset({"pip", "setuptools", "wheel"})


def same_version(a: str, b: str) -> bool:
    """Equal as versions (``1.0`` == ``1.0.0``), else as text."""
    if a == b:
        return True
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging comes with pip's vendored world
        return False
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


@dataclass
class EnvDiff:
    """How an installed environment differs from its lock."""

    missing: dict[str, str] = field(default_factory=dict)  # name -> locked version
    extra: dict[str, str] = field(default_factory=dict)  # name -> installed version
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (lock, inst)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def problems(self) -> list[str]:
        """One phrase per difference, by package name."""
        return ([f"{n} missing (locked {v})" for n, v in sorted(self.missing.items())]
                + [f"{n} {i} installed, locked {lk}" for n, (lk, i) in sorted(self.changed.items())]
                + [f"{n} {v} installed but not in the lock" for n, v in sorted(self.extra.items())])


def compare_environment(locked: dict[str, str], installed: dict[str, str],
                        ignore: frozenset[str] = SEEDED) -> EnvDiff:
    """Compare ``{name: version}`` maps (any spelling of names); ``ignore`` names are never
    counted as extra (they may still be locked, and are then compared)."""
    lock = {canonical_name(k): v for k, v in locked.items()}
    have = {canonical_name(k): v for k, v in installed.items()}
    diff = EnvDiff()
    for name, version in lock.items():
        if name not in have:
            diff.missing[name] = version
        elif not same_version(version, have[name]):
            diff.changed[name] = (version, have[name])
    for name, version in have.items():
        if name not in lock and name not in ignore:
            diff.extra[name] = version
    return diff


@dataclass
class ManifestDiff:
    """Two ``{path: content id}`` manifests compared."""

    only_first: list[str]
    only_second: list[str]
    differing: list[str]
    total: int  # paths in either

    @property
    def count(self) -> int:
        return len(self.only_first) + len(self.only_second) + len(self.differing)

    @property
    def ok(self) -> bool:
        return self.count == 0

    def paths(self, limit: int = 20) -> list[str]:
        """The first ``limit`` differing paths, each marked with how it differs."""
        marked = sorted([(p, "differs") for p in self.differing]
                        + [(p, "only in build 1") for p in self.only_first]
                        + [(p, "only in build 2") for p in self.only_second])
        return [f"{path} ({how})" for path, how in marked[:limit]]


def compare_manifests(first: dict[str, str], second: dict[str, str]) -> ManifestDiff:
    return ManifestDiff(
        only_first=sorted(set(first) - set(second)),
        only_second=sorted(set(second) - set(first)),
        differing=sorted(p for p in set(first) & set(second) if first[p] != second[p]),
        total=len(set(first) | set(second)))


def shorten(items: list[str], limit: int = 8) -> str:
    """``a, b, c and 12 more``."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
