"""Build a synthetic CRDS observatory store for the test server (run inside a niriss-pipe image).

The references must be real FITS files made by the installed jwst datamodels, so this script
runs where jwst is installed, reusing the image's own synthetic builders:

    docker run --rm --network none -v /work/main:/src:ro -v STORE:/store \\
        niriss-pipe:jwst_1584 python /src/tests/crds_server/store.py /store

Layout written under STORE:

    mappings/     jwst_0001.pmap, jwst_0002.pmap, their imaps and rmaps (flat)
    references/   NIRISS and FGS reference files (flat)
    datasets/     niriss_sub64_uncal.fits, a synthetic NIRISS SUB64 exposure
    store.json    what the store holds and what each context and dataset should select

The two contexts differ by one NIRISS rmap (dark 0001 -> 0002) selecting one new dark. The
rmaps use Match/UseAfter on keys the exposure has, so a dataset selects a strict subset of
the NIRISS references: a second dark for another READPATT and a superbias whose USEAFTER is
later than the exposure are never selected for it.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from niriss_pipe.runtime import synth

DETECTOR = "META.INSTRUMENT.DETECTOR"
DATE_TIME = ("META.OBSERVATION.DATE", "META.OBSERVATION.TIME")
EARLY, LATE = "2000-01-01 00:00:00", "2023-06-01 00:00:00"  # the exposure is from 2023-01-01
DATASET = "niriss_sub64_uncal.fits"
DARK_KEYS = (DETECTOR, "META.EXPOSURE.READPATT", "META.SUBARRAY.NAME")
DATASET_KEYS = dict(zip(DARK_KEYS, ("NIS", "NISRAPID", "SUB64")))  # what synth's exposure has
DATASET_WHEN = f"{synth.OBS_DATE} {synth.OBS_TIME[:8]}"


def _simple(instrument, reftype, detector="NIS"):
    """One reference for every exposure of `detector` (serial 0001)."""
    return (DETECTOR,), {(detector,): {EARLY: f"jwst_{instrument}_{reftype}_0001.fits"}}


def niriss_rules(dark):
    """NIRISS rmap selectors: reftype -> (match parkeys, {match key: {useafter: reference}})."""
    rules = {t: _simple("niriss", t) for t in synth.CORE_REFTYPES}
    rules["dark"] = (DARK_KEYS, {("NIS", "NISRAPID", "SUB64"): {EARLY: dark},
                                 ("NIS", "NIS", "SUB64"): {EARLY: "jwst_niriss_dark_0003.fits"}})
    rules["superbias"] = ((DETECTOR,), {("NIS",): {EARLY: "jwst_niriss_superbias_0001.fits",
                                                   LATE: "jwst_niriss_superbias_0002.fits"}})
    return rules


FGS_RULES = {t: _simple("fgs", t, "GUIDER1") for t in ("dark", "gain")}
FGS_META = {"exposure": {"readpatt": "FGSRAPID"}}  # synth's builders are NIRISS-flavoured

# context serial -> NIRISS rmap serial per reftype that differs from 0001
CONTEXTS = {"0001": {}, "0002": {"dark": "0002"}}


# ---------------------------------------------------------------------------- mappings

def _header(mapping, name, derived_from, **extra):
    return {"derived_from": derived_from, "mapping": mapping, "name": name,
            "observatory": "JWST", **extra}


def rmap_text(instrument, reftype, name, derived_from, rule):
    """An rmap with a Match of UseAfter selectors, its sha1sum header set."""
    keys, matches = rule
    header = _header("REFERENCE", name, derived_from, filekind=reftype.upper(),
                     instrument=instrument.upper(), parkey=(keys, DATE_TIME))
    entries = {key: synth.dict_selector("UseAfter", {d: repr(ref) for d, ref in dates.items()})
               for key, dates in matches.items()}
    return synth.mapping_text(header, synth.dict_selector("Match", entries))


def imap_text(instrument, name, derived_from, selections):
    header = _header("INSTRUMENT", name, derived_from, instrument=instrument.upper(),
                     parkey=("REFTYPE",))
    body = {k: repr(v) for k, v in sorted(selections.items())}
    return synth.mapping_text(header, synth.dict_selector("", body))


def pmap_text(name, derived_from, imaps):
    header = _header("PIPELINE", name, derived_from, parkey=("META.INSTRUMENT.NAME",))
    body = {k: repr(v) for k, v in sorted(imaps.items())}
    return synth.mapping_text(header, synth.dict_selector("", body))


# -------------------------------------------------------------------------- references

def _meta_path(parkey, value):
    """{'exposure': {'readpatt': 'NIS'}} from ('META.EXPOSURE.READPATT', 'NIS')."""
    node = value
    for part in reversed(parkey.lower().split(".")[1:]):
        node = {part: node}
    return node


def _merge(into, extra):
    for key, value in extra.items():
        if isinstance(value, dict):
            _merge(into.setdefault(key, {}), value)
        else:
            into[key] = value
    return into


def reference_meta(instrument, detector, keys, match, useafter):
    """Reference keywords consistent with the rmap entry that selects the file."""
    meta = {"instrument": {"name": instrument.upper(), "detector": detector},
            "useafter": useafter.replace(" ", "T")}
    for parkey, value in zip(keys, match):
        _merge(meta, _meta_path(parkey, value))
    return meta


def write_reference(dm, path, reftype, meta):
    """A real reference file: synth's builder for `reftype`, then the rmap entry's keywords."""
    cls_name, arrays, extra, subarray = synth.REFERENCES[reftype]
    model = getattr(dm, cls_name)(**{name: make() for name, make in arrays.items()})
    synth.set_meta(model.meta, synth.reference_meta(reftype, extra, subarray))
    synth.set_meta(model.meta, meta)
    model.save(str(path))
    model.close()


def write_references(dm, refdir, instrument, rules, extra=None):
    """Write every reference `rules` name; return {reference: reftype}."""
    written = {}
    for reftype, (keys, matches) in rules.items():
        for match, dates in matches.items():
            for useafter, ref in dates.items():
                if ref not in written:
                    meta = reference_meta(instrument, match[0], keys, match, useafter)
                    _merge(meta, extra or {})
                    write_reference(dm, refdir / ref, reftype, meta)
                    written[ref] = reftype
    return written


# ------------------------------------------------------------------------------- store

def selected(rules, header, when):
    """The references CRDS should pick for `header` at `when`: the expectation tests check."""
    refs = []
    for keys, matches in rules.values():
        for match, dates in matches.items():
            if all(header[key] == value for key, value in zip(keys, match)):
                refs.append(dates[max(d for d in dates if d <= when)])
    return sorted(refs)


def _references(rules):
    return sorted({ref for _keys, matches in rules.values()
                   for dates in matches.values() for ref in dates.values()})


def write_mappings(mapdir, na_types):
    """Both contexts' mappings; return the manifest's per-context view."""
    contexts = {}
    for name, rule in FGS_RULES.items():
        rmap = f"jwst_fgs_{name}_0001.rmap"
        (mapdir / rmap).write_text(rmap_text("fgs", name, rmap, "synthetic", rule))
    fgs_imap = "jwst_fgs_0001.imap"
    fgs_sel = {t: f"jwst_fgs_{t}_0001.rmap" for t in FGS_RULES}
    (mapdir / fgs_imap).write_text(imap_text("fgs", fgs_imap, "synthetic", fgs_sel))
    for serial, changed in CONTEXTS.items():
        rmaps = {t: f"jwst_niriss_{t}_{changed.get(t, '0001')}.rmap" for t in synth.CORE_REFTYPES}
        rules = niriss_rules(f"jwst_niriss_dark_{changed.get('dark', '0001')}.fits")
        for reftype, rmap in rmaps.items():
            derived = f"jwst_niriss_{reftype}_0001.rmap" if reftype in changed else "synthetic"
            (mapdir / rmap).write_text(rmap_text("niriss", reftype, rmap, derived, rules[reftype]))
        imap, pmap = f"jwst_niriss_{serial}.imap", f"jwst_{serial}.pmap"
        selections = {**dict.fromkeys(na_types, "N/A"), **rmaps}
        (mapdir / imap).write_text(imap_text("niriss", imap, "synthetic", selections))
        (mapdir / pmap).write_text(pmap_text(pmap, "synthetic", {"NIRISS": imap, "FGS": fgs_imap}))
        contexts[pmap] = {
            "imaps": {"niriss": imap, "fgs": fgs_imap},
            "mappings": sorted([pmap, imap, fgs_imap, *rmaps.values(),
                                *(f"jwst_fgs_{t}_0001.rmap" for t in FGS_RULES)]),
            "references": {"niriss": _references(rules), "fgs": _references(FGS_RULES)},
            "dataset_selects": {DATASET: selected(rules, DATASET_KEYS, DATASET_WHEN)},
        }
    return contexts


def build(store):
    """Write the whole store under `store` and return its manifest."""
    store = Path(store)
    dirs = {d: store / d for d in ("mappings", "references", "datasets")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    dm = synth.datamodels()
    reftypes, pars = synth.detector1_reftypes()
    na_types = sorted(set(reftypes + pars) - set(synth.CORE_REFTYPES))
    contexts = write_mappings(dirs["mappings"], na_types)
    written = {}
    for serial in CONTEXTS:
        dark = f"jwst_niriss_dark_{CONTEXTS[serial].get('dark', '0001')}.fits"
        written.update(write_references(dm, dirs["references"], "niriss", niriss_rules(dark)))
    written.update(write_references(dm, dirs["references"], "fgs", FGS_RULES, FGS_META))
    synth.make_exposure(dirs["datasets"] / DATASET)
    manifest = {"contexts": contexts, "not_applicable": na_types,
                "references": dict(sorted(written.items())), "datasets": [DATASET]}
    (store / "store.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a synthetic CRDS store.")
    parser.add_argument("store")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crds-store-") as scratch:
        os.environ.update(synth.user_env(scratch))
        manifest = build(args.store)
    print(f"wrote {len(manifest['contexts'])} contexts, {len(manifest['references'])} "
          f"references and {len(manifest['datasets'])} dataset under {args.store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
