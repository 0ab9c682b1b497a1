"""What a calibrated JWST product says of how it was made, from its primary header.

``CAL_VER`` (the jwst version), ``CRDS_CTX`` (the pmap), ``CRDS_VER``, the ``R_*`` keywords
(each reference used) and the ``S_*`` keywords (each step's status): ``new --from``,
``sync --for`` and ``reproduce`` start from these, so every value is checked against the
grammar of where it goes (a spec, a cache path, a container's environment) before use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError, shown

PROVENANCE = ("CAL_VER", "CAL_VCS", "CRDS_VER", "CRDS_CTX")  # then every R_* and S_*
NOT_A_FILE = ("N/A", "NONE", "")  # R_* values that name no reference (a step that needs none)


@dataclass(frozen=True)
class Product:
    path: Path
    cal_ver: str
    crds_ctx: str
    crds_ver: str | None
    references: dict[str, str] = field(default_factory=dict)  # R_* keyword -> value as written
    steps: dict[str, str] = field(default_factory=dict)  # S_* keyword -> COMPLETE, SKIPPED...
    provenance: dict[str, str] = field(default_factory=dict)  # every keyword compared later

    @property
    def reference_names(self) -> list[str]:
        """The CRDS reference files the product names (``crds://`` dropped), sorted."""
        return sorted({name for name in map(reference_name, self.references.values())
                       if name})

    def not_crds(self) -> dict[str, str]:
        """R_* keywords whose value is neither a CRDS reference nor N/A (a file the user gave
        the pipeline, which no sync can fetch)."""
        return {key: value for key, value in self.references.items()
                if reference_name(value) is None and value.strip().upper() not in NOT_A_FILE}


def reference_name(value: str) -> str | None:
    """``crds://jwst_niriss_dark_0017.fits`` (or the bare name) -> the name; else None."""
    name = value.strip().removeprefix("crds://")
    return name if grammar.is_crds_reference(name) else None


def _header(path: Path):
    if not path.is_file():
        raise UserError(f"{path} is not a file." if path.exists() else f"{path} does not exist.",
                        "give a calibrated JWST product (a *_rate.fits, *_cal.fits ...).")
    from astropy.io import fits

    try:
        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdus:
            header = hdus[0].header.copy()
    except (OSError, ValueError, IndexError, fits.VerifyError) as exc:
        raise UserError(f"{path} is not a FITS file ({str(exc).splitlines()[0][:200]}).",
                        "give a calibrated JWST product (a *_rate.fits, *_cal.fits ...).") \
            from None
    for card in header.cards:  # astropy parses a card's value only when it is first read
        try:
            card.value  # noqa: B018
        except (fits.VerifyError, ValueError):
            raise UserError(f"{path}: header card {shown(card.keyword)} cannot be parsed, "
                            "so the product's primary header is damaged.",
                            "give the product as the jwst pipeline wrote it, or correct that "
                            "card (a text value is quoted at both ends: KEY = 'value').") \
                from None
    return header


def read_product(path: Path) -> Product:
    """The product's provenance; a UserError naming the file and the keyword when it lacks
    one that is needed or holds a value that is not what JWST products write."""
    header = _header(path)

    def text(key: str, needed: bool = True) -> str | None:
        value = header.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if needed:
                raise UserError(f"{path} has no {key} keyword in its primary header, so it does "
                                "not say how it was made.",
                                "give a product that the jwst pipeline wrote (CAL_VER, CRDS_CTX "
                                "and the R_* and S_* keywords are in every calibrated product).")
            return None
        return str(value).strip()

    cal_ver, ctx = text("CAL_VER"), text("CRDS_CTX")
    if not grammar.is_cal_version(cal_ver):
        raise UserError(f"{path}: CAL_VER is {shown(cal_ver)}, not a jwst version.",
                        "give a product that the jwst pipeline wrote (CAL_VER like 1.12.5).")
    if not grammar.is_pmap(ctx):
        raise UserError(f"{path}: CRDS_CTX is {shown(ctx)}, not a CRDS pipeline context.",
                        "give a product whose CRDS_CTX names a jwst_NNNN.pmap.")
    first: dict[str, str] = {}  # keyword -> value of its first card, as header[key] gives
    for card in header.cards:  # not header[key]: a damaged keyword can read as a wildcard
        first.setdefault(card.keyword, str(card.value))
    refs = {key: value for key, value in first.items() if key.startswith("R_")}
    steps = {key: value.strip() for key, value in first.items() if key.startswith("S_")}
    provenance = {key: first[key].strip() for key in PROVENANCE if key in first}
    provenance.update({k: v.strip() for k, v in refs.items()})
    provenance.update(steps)
    return Product(path, cal_ver, ctx, text("CRDS_VER", needed=False), refs, steps, provenance)
