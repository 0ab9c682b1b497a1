"""A ``--mem`` suggestion for a SLURM batch submitted without one: the full-frame benchmark's
peak (``data/memory.tsv``, from bench/fullframe.py) scaled to the largest input's size, read
from its FITS header. It suggests; it sets nothing (a site's default may be what the user
wants)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from niriss_pipe.core.errors import opt

CARD, BLOCK, MAX_BLOCKS = 80, 2880, 64  # a primary header is read 36 cards at a time
KEYS = ("NGROUPS", "NINTS", "SUBSIZE1", "SUBSIZE2")
HEADROOM = 1.5  # the suggestion over the scaled peak: other data, other jwst paths


@dataclass(frozen=True)
class Measured:
    """One benchmark row: a pipeline's peak on an exposure of a size, with some cores."""

    pipelines: frozenset[str]
    cores: int
    nx: int
    ny: int
    ngroups: int
    nints: int
    peak_gib: float
    base_gib: float  # what does not grow with the data: Python, jwst, the references' share

    @property
    def voxels(self) -> int:
        return self.nx * self.ny * self.ngroups * self.nints


def measured() -> list[Measured]:
    text = resources.files("niriss_pipe").joinpath("data/memory.tsv").read_text()
    rows = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            pipelines, cores, shape, peak, base = line.split("\t")
            nx, ny, ngroups, nints = (int(part) for part in shape.split("x"))
            rows.append(Measured(frozenset(pipelines.split(",")), int(cores), nx, ny, ngroups,
                                 nints, float(peak), float(base)))
    return rows


def header(path: Path) -> dict[str, int]:
    """NGROUPS, NINTS, SUBSIZE1/2 from a FITS primary header (integers only), or {}."""
    found: dict[str, int] = {}
    try:
        with open(path, "rb") as stream:
            if stream.read(9) != b"SIMPLE  =":
                return {}
            stream.seek(0)
            for _ in range(MAX_BLOCKS):
                block = stream.read(BLOCK)
                if len(block) < BLOCK:
                    return found
                for i in range(0, BLOCK, CARD):
                    card = block[i:i + CARD].decode("ascii", "replace")
                    key = card[:8].strip()
                    if key == "END":
                        return found
                    if key in KEYS and card[8:10] == "= ":
                        value = card[10:].split("/", 1)[0].strip()
                        if value.isdigit():
                            found[key] = int(value)
    except OSError:
        return {}
    return found


def suggestion(pipeline: str, inputs: list[Path], cpus: int) -> str | None:
    """One line, or None when the benchmark has no figure for this pipeline."""
    rows = [row for row in measured() if pipeline in row.pipelines]
    if not rows:
        return None
    row = max((r for r in rows if r.cores <= cpus), key=lambda r: r.cores, default=rows[0])
    largest = max(inputs, key=_size)
    keys = header(largest)
    shape = (keys.get("SUBSIZE1"), keys.get("SUBSIZE2"), keys.get("NGROUPS"),
             keys.get("NINTS"))
    if all(shape):
        voxels = math.prod(shape)
        sized = (f"the largest input, {largest.name}, is {shape[0]}x{shape[1]}x{shape[2]}"
                 f"{'' if shape[3] == 1 else f' x {shape[3]} integrations'}")
    else:
        voxels = row.voxels
        sized = (f"the size of {largest.name} could not be read from its header, so it is "
                 "taken to be the benchmark's")
    need = row.base_gib + (row.peak_gib - row.base_gib) * voxels / row.voxels
    suggest = max(1, math.ceil(need * HEADROOM))
    cores = f"{row.cores} core{'s' if row.cores > 1 else ''}"
    return (f"no {opt('mem')} given: {pipeline} on a {row.nx}x{row.ny}x{row.ngroups} exposure "
            f"peaked at {row.peak_gib:g} GiB here with {cores} "
            f"(docs/benchmarks.md); {sized}: about {need:.1f} GiB, consider {opt('mem')} "
            f"{suggest}G (the site's default applies otherwise).")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1
