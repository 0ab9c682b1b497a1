"""A CRDS cache of real size, with no real content: for timing and checking the cache check.

Real JWST contexts have six instrument imaps of some 40 rmaps each; NIRISS rmaps select a
few thousand references through Match keys (tuples with '|' alternatives, 'N/A' choices)
and UseAfter dates. This writes that shape, in the crds client's own rmap syntax, with
every NIRISS reference present as an empty file (the check never opens references):

    write_cache(root, rmaps=40, references=3000)  ->  (context, [reference names])
"""

from __future__ import annotations

import json
from pathlib import Path

INSTRUMENTS = ("fgs", "miri", "nircam", "niriss", "nirspec", "system")
SERIAL = "0500"
DETECTOR_KEYS = ("META.INSTRUMENT.DETECTOR", "META.INSTRUMENT.FILTER",
                 "META.INSTRUMENT.PUPIL", "META.EXPOSURE.TYPE")
FILTERS = ("CLEAR", "F090W", "F115W", "F140M", "F150W", "F158M", "F200W", "F277W", "F356W",
           "F380M", "F430M", "F444W", "F480M", "GR150R", "GR150C")
EXPTYPES = "NIS_IMAGE|NIS_AMI|NIS_TACQ|NIS_TACONFIRM|NIS_FOCUS"
USEAFTERS = 5  # dates per match key


def reftype(n: int) -> str:
    return f"type{n:02d}" if n % 8 else f"pars-step{n:02d}"  # every 8th a parameter type


def rmap_text(instrument: str, rtype: str, name: str, refs: list[str]) -> str:
    """An rmap as crds writes them: header, then a Match of UseAfter selectors."""
    ext = ".asdf" if rtype.startswith("pars-") else ".fits"
    header = {
        "classes": ("Match", "UseAfter"), "derived_from": name.replace(SERIAL, "0499"),
        "filekind": rtype.upper(), "instrument": instrument.upper(), "mapping": "REFERENCE",
        "name": name, "observatory": "JWST",
        "parkey": (DETECTOR_KEYS, ("META.OBSERVATION.DATE", "META.OBSERVATION.TIME")),
        "sha1sum": "0" * 40, "suffix": rtype, "text_descr": f"Synthetic {rtype} for timing "
        f"(references end {ext})", "reference_to_dataset": {"FILTER": "META.INSTRUMENT.FILTER"},
    }
    lines = ["header = {", *(f"    {k!r} : {v!r}," for k, v in sorted(header.items())), "}", "",
             "selector = Match({"]
    for start in range(0, len(refs), USEAFTERS):
        key = ("NIS", FILTERS[(start // USEAFTERS) % len(FILTERS)],
               f"CLEARP|NRM|P{start:04d}", EXPTYPES)
        lines.append(f"    {key!r} : UseAfter({{")
        for k, ref in enumerate(refs[start:start + USEAFTERS]):
            lines.append(f"        '{2014 + k:04d}-01-01 00:00:00' : {ref!r},")
        lines.append("    }),")
    lines += ["    ('NIS', 'N/A', 'N/A', 'NIS_DARK') : 'N/A',", "})", ""]
    return "\n".join(lines)


def write_cache(root: Path, rmaps: int = 40, references: int = 3000,
                record: bool = False) -> tuple[str, list[str]]:
    """Write the cache under ``root``; return its context and its NIRISS reference names."""
    mapdir = root / "mappings" / "jwst"
    refdir = root / "references" / "jwst" / "niriss"
    config = root / "config" / "jwst"
    for folder in (mapdir, refdir, config):
        folder.mkdir(parents=True, exist_ok=True)
    (config / "server_config").write_text("{'observatory': 'jwst'}\n")
    (config / "ref_cache_subdir_mode").write_text("instrument\n")
    per_rmap = -(-references // rmaps)
    imaps, names = {}, []
    for instrument in INSTRUMENTS:
        imap = f"jwst_{instrument}_{SERIAL}.imap"
        imaps[instrument.upper()] = imap
        selections = {}
        for n in range(rmaps):
            rtype = reftype(n)
            rmap = f"jwst_{instrument}_{rtype}_{SERIAL}.rmap"
            selections[rtype] = rmap
            refs = []
            if instrument == "niriss":
                ext = ".asdf" if rtype.startswith("pars-") else ".fits"
                refs = [f"jwst_niriss_{rtype}_{n * per_rmap + k:04d}{ext}"
                        for k in range(min(per_rmap, references - len(names)))]
                names += refs
            (mapdir / rmap).write_text(rmap_text(instrument, rtype, rmap, refs))
        selections.update({f"na{n:02d}": "N/A" for n in range(12)})
        body = "".join(f"    {k!r} : {v!r},\n" for k, v in sorted(selections.items()))
        (mapdir / imap).write_text(
            f"header = {{\n    'instrument' : {instrument.upper()!r},\n    'mapping' : "
            f"'INSTRUMENT',\n    'name' : {imap!r},\n}}\n\nselector = {{\n{body}}}\n")
    context = f"jwst_{SERIAL}.pmap"
    body = "".join(f"    {k!r} : {v!r},\n" for k, v in sorted(imaps.items()))
    (mapdir / context).write_text(f"header = {{\n    'mapping' : 'PIPELINE',\n    'name' : "
                                  f"{context!r},\n}}\n\nselector = {{\n{body}}}\n")
    for name in names:
        (refdir / name).touch()
    if record:
        (config / "niriss-pipe-contexts.json").write_text(json.dumps(
            {context: {"scope": "instrument", "instrument": "niriss", "references": names,
                       "complete": True}}, indent=1))
    return context, sorted(names)
