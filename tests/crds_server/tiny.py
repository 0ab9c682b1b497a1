"""The smallest store the real ``crds`` client loads: two contexts, one NIRISS dark each.

``store.py`` makes a store with the image's jwst datamodels (an engine); this one is written
here, stdlib only, for unit tests that run the real client against ``CRDSServer`` or load a
cache it filled (``cache --prune``). Each mapping carries the sha1sum the client checks.

    write_store(root)  ->  root/mappings/*.?map, root/references/*.fits

``jwst_0042.pmap`` selects ``jwst_niriss_dark_0001.fits``; ``jwst_0043.pmap`` shares nothing
with it and selects ``jwst_niriss_dark_0002.fits``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CONTEXTS = {"jwst_0042.pmap": "jwst_niriss_dark_0001.fits",
            "jwst_0043.pmap": "jwst_niriss_dark_0002.fits"}


def with_checksum(header: dict, selector: str) -> str:
    """A mapping's text: its header (with the client's sha1sum of the rest), its selector."""
    def text(fields: dict) -> str:
        lines = ["header = {", *(f"    {k!r} : {v!r}," for k, v in sorted(fields.items())),
                 "}", "", f"selector = {selector}", ""]
        return "\n".join(lines)

    body = text(header)  # the client hashes every line but the sha1sum line
    return text({**header, "sha1sum": hashlib.sha1(body.encode()).hexdigest()})


def mappings(context: str, reference: str) -> dict[str, str]:
    """{file name: text} of one context: its pmap, NIRISS imap and dark rmap."""
    serial = context.removeprefix("jwst_").removesuffix(".pmap")
    imap, rmap = f"jwst_niriss_{serial}.imap", f"jwst_niriss_dark_{serial}.rmap"
    common = {"derived_from": "none", "observatory": "JWST"}
    return {
        context: with_checksum({**common, "mapping": "PIPELINE", "name": context,
                                "parkey": ("META.INSTRUMENT.NAME",)},
                               f"{{\n    'NIRISS' : {imap!r},\n}}"),
        imap: with_checksum({**common, "instrument": "NIRISS", "mapping": "INSTRUMENT",
                             "name": imap, "parkey": ("REFTYPE",)},
                            f"{{\n    'dark' : {rmap!r},\n}}"),
        rmap: with_checksum({**common, "classes": ("Match",), "filekind": "DARK",
                             "instrument": "NIRISS", "mapping": "REFERENCE", "name": rmap,
                             "parkey": (("META.INSTRUMENT.DETECTOR",),)},
                            f"Match({{\n    ('NIS',) : {reference!r},\n}})"),
    }


def write_store(root: Path) -> Path:
    """Write both contexts' mappings and references (a few bytes each) under ``root``."""
    (root / "mappings").mkdir(parents=True, exist_ok=True)
    (root / "references").mkdir(parents=True, exist_ok=True)
    for context, reference in CONTEXTS.items():
        for name, text in mappings(context, reference).items():
            (root / "mappings" / name).write_text(text)
        (root / "references" / reference).write_bytes(f"dark {reference}\n".encode())
    return root
