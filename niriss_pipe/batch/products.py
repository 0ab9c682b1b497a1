"""What a task's products say about themselves, for the batch report: the calibration
version, the CRDS context and the references each used (from the FITS primary header, read
with the standard library: the host needs no astropy for it), and the previews beside them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from niriss_pipe.batch.plan import Plan, Task

BLOCK, CARD = 2880, 80
MAX_BLOCKS = 1000  # ~36,000 cards: far beyond any JWST primary header
# Product kinds, in the order the report prefers them (the first found is the task's).
SUFFIXES = ("_rate.fits", "_rateints.fits", "_cal.fits", "_i2d.fits")
NOT_A_REFERENCE = ("N/A", "", "NONE")


@dataclass
class Product:
    path: Path
    header: dict[str, str]
    preview: Path | None = None     # NAME.png
    thumbnail: Path | None = None   # NAME.thumb.png
    references: dict[str, str] = field(default_factory=dict)  # R_DARK -> jwst_niriss_dark_...

    @property
    def cal_ver(self) -> str:
        return self.header.get("CAL_VER", "")

    @property
    def context(self) -> str:
        return self.header.get("CRDS_CTX", "")

    @property
    def steps(self) -> dict[str, int]:
        """``{"COMPLETE": 11, "SKIPPED": 1}`` over the S_* step keywords."""
        tally: dict[str, int] = {}
        for key, value in self.header.items():
            if key.startswith("S_"):
                tally[value] = tally.get(value, 0) + 1
        return tally


def _value(text: str) -> str:
    """A card's value as text: a string without its quotes, else the value before '/'."""
    text = text.strip()
    if text.startswith("'"):
        out, i = [], 1
        while i < len(text):
            if text[i] == "'":
                if text[i + 1:i + 2] == "'":  # '' is a quote inside the string
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(text[i])
            i += 1
        return "".join(out).rstrip()
    return text.split("/", 1)[0].strip()


def primary_header(path: Path) -> dict[str, str]:
    """The primary header's ``KEY = value`` cards as text (empty when it is not FITS)."""
    cards: dict[str, str] = {}
    try:
        with open(path, "rb") as stream:
            if stream.read(9) != b"SIMPLE  =":
                return cards
            stream.seek(0)
            for _ in range(MAX_BLOCKS):
                block = stream.read(BLOCK)
                if len(block) < BLOCK:
                    break
                for start in range(0, BLOCK, CARD):
                    card = block[start:start + CARD].decode("ascii", "replace")
                    key = card[:8].strip()
                    if key == "END":
                        return cards
                    if card[8:10] == "= ":
                        cards.setdefault(key, _value(card[10:]))
    except OSError:
        pass
    return cards


def task_product(plan: Plan, task: Task) -> Product | None:
    """The task's main product (rate first), with its header facts and previews."""
    folder = plan.folder / "products" / task.product_dir
    for suffix in SUFFIXES:
        found = sorted(folder.glob(f"*{suffix}")) if folder.is_dir() else []
        if found:
            path = found[0]
            header = primary_header(path)
            stem = path.name[:-len(".fits")]
            preview, thumbnail = path.with_name(f"{stem}.png"), path.with_name(f"{stem}.thumb.png")
            references = {key: value.removeprefix("crds://") for key, value in header.items()
                          if key.startswith("R_") and value.upper() not in NOT_A_REFERENCE}
            return Product(path, header, preview if preview.is_file() else None,
                           thumbnail if thumbnail.is_file() else None, references)
    return None
