"""A second synthetic CRDS store, for ``check`` and dataset-scoped syncs (run inside an image):

    docker run --rm --network none -v $PWD:/src:ro -v STORE:/store \\
        niriss-pipe:jwst_1584 python /src/tests/crds_server/checkstore.py /store

Its contexts, each with a NIRISS imap that lists every type the image's jwst declares (the
types it has no file for as 'N/A'), unless said otherwise:

    jwst_0011.pmap  two NIRISS modes: flat for NIS_IMAGE and for NIS_WFSS, area for NIS_IMAGE,
                    wfssbkg for NIS_WFSS, and a trapdensity that no step of jwst 3.0.0 asks
                    for; the exposure (NIS_IMAGE) selects only the detector1 and imaging ones
    jwst_0012.pmap  complete: the detector1 references of store.py's jwst_0001.pmap
    jwst_0013.pmap  as 0012 without linearity in the imap (not even 'N/A')
    jwst_0014.pmap  as 0012 with a gain whose SCI array has the wrong number of dimensions

store.json says what each context holds and what the exposure selects.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import store
from astropy.io import fits

from niriss_pipe.runtime import refcheck, synth

EXP_KEYS = (store.DETECTOR, "META.EXPOSURE.TYPE")
MODES = {  # reftype -> {exp_type: reference}: what the two modes select
    "flat": {"NIS_IMAGE": "jwst_niriss_flat_0011.fits", "NIS_WFSS": "jwst_niriss_flat_0012.fits"},
    "area": {"NIS_IMAGE": "jwst_niriss_area_0011.fits"},
    "wfssbkg": {"NIS_WFSS": "jwst_niriss_wfssbkg_0011.fits"},
}
UNASKED = {"trapdensity": "jwst_niriss_trapdensity_0011.fits"}  # no 3.0.0 step declares it
MODELS = {"flat": "FlatModel", "area": "PixelAreaModel", "wfssbkg": "WfssBkgModel",
          "trapdensity": "TrapDensityModel"}
REJECTED = "jwst_niriss_gain_0014.fits"


def mode_rules():
    rules = {t: (EXP_KEYS, {("NIS", exp): {store.EARLY: ref} for exp, ref in refs.items()})
             for t, refs in MODES.items()}
    rules.update({t: ((store.DETECTOR,), {("NIS",): {store.EARLY: ref}})
                  for t, ref in UNASKED.items()})
    return rules


def write_simple(dm, path, reftype, exp_type=None):
    """A small real reference of ``reftype`` (2-D data, NIRISS SUB64 keywords)."""
    model = getattr(dm, MODELS[reftype])(data=np.ones(synth.SHAPE, dtype=np.float32))
    for subarray in (True, False):  # some reference models have no subarray keywords
        meta = synth.reference_meta(reftype, {}, subarray)
        if exp_type:
            meta["exposure"] = {"type": exp_type}
        try:
            synth.set_meta(model.meta, meta)
            break
        except AttributeError:
            continue
    model.save(str(path))
    model.close()


def write_rejected(dm, path):
    """A gain the datamodel refuses: its SCI array is 3-D where GainModel wants 2-D."""
    scratch = path.with_name("good-" + path.name)
    store.write_reference(dm, scratch, "gain", store.reference_meta(
        "niriss", "NIS", (store.DETECTOR,), ("NIS",), store.EARLY))
    with fits.open(scratch) as hdul:
        hdul["SCI"].data = np.ones((2,) + synth.SHAPE, dtype=np.float32)
        hdul.writeto(path)
    scratch.unlink()


def write_context(mapdir, serial, rules, all_types):
    """The pmap, NIRISS imap and rmaps of one context; return its mapping names."""
    rmaps = {t: f"jwst_niriss_{t}_{serial}.rmap" for t in rules}
    for reftype, rmap in rmaps.items():
        (mapdir / rmap).write_text(store.rmap_text("niriss", reftype, rmap, "synthetic",
                                                   rules[reftype]))
    selections = {**{t: "N/A" for t in all_types if t not in rules}, **rmaps}
    imap, pmap = f"jwst_niriss_{serial}.imap", f"jwst_{serial}.pmap"
    (mapdir / imap).write_text(store.imap_text("niriss", imap, "synthetic", selections))
    (mapdir / pmap).write_text(store.pmap_text(pmap, "synthetic", {"NIRISS": imap}))
    return sorted([pmap, imap, *rmaps.values()])


def build(root):
    root = Path(root)
    dirs = {d: root / d for d in ("mappings", "references", "datasets")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    dm = synth.datamodels()
    reftypes, pars = refcheck.declared([alias for alias, _cls in refcheck.CHECKED])
    all_types = sorted(set(reftypes) | set(pars) | set(synth.CORE_REFTYPES))
    core = store.niriss_rules("jwst_niriss_dark_0001.fits")
    written = store.write_references(dm, dirs["references"], "niriss", core)
    for reftype, refs in MODES.items():
        for exp_type, ref in refs.items():
            write_simple(dm, dirs["references"] / ref, reftype, exp_type)
            written[ref] = reftype
    for reftype, ref in UNASKED.items():
        write_simple(dm, dirs["references"] / ref, reftype)
        written[ref] = reftype
    write_rejected(dm, dirs["references"] / REJECTED)
    written[REJECTED] = "gain"
    gain14 = dict(core, gain=((store.DETECTOR,), {("NIS",): {store.EARLY: REJECTED}}))
    no_linearity = {t: r for t, r in core.items() if t != "linearity"}
    contexts = {"0011": ({**core, **mode_rules()}, all_types), "0012": (core, all_types),
                "0013": (no_linearity, [t for t in all_types if t != "linearity"]),
                "0014": (gain14, all_types)}
    synth.make_exposure(dirs["datasets"] / store.DATASET)
    manifest = {"contexts": {}, "references": dict(sorted(written.items())),
                "datasets": [store.DATASET]}
    for serial, (rules, types) in contexts.items():
        mappings = write_context(dirs["mappings"], serial, rules, types)
        manifest["contexts"][f"jwst_{serial}.pmap"] = {
            "mappings": mappings,
            "references": store._references(rules),
            "dataset_selects": {store.DATASET: store.selected(
                {t: r for t, r in rules.items() if t not in UNASKED},
                {**store.DATASET_KEYS, "META.EXPOSURE.TYPE": "NIS_IMAGE"},
                store.DATASET_WHEN)}}
    (root / "store.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write the check store.")
    parser.add_argument("store")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crds-checkstore-") as scratch:
        os.environ.update(synth.user_env(scratch))
        manifest = build(args.store)
    print(f"wrote {len(manifest['contexts'])} contexts and {len(manifest['references'])} "
          f"references under {args.store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
