"""What the image's own jwst asks CRDS for, run inside the image against a mounted cache.

``check``: for every step of the pipelines a NIRISS exposure goes through, the reference
types it declares and its ``pars-*`` type, each looked up in the context's NIRISS imap, then
every NIRISS reference of the context that the cache holds opened with the image's own
datamodels. ``select``: the references one exposure needs, as this jwst's steps ask for them
(the pipelines of its EXP_TYPE), computed locally by the image's crds client.

Stage 1 and 2 pipelines ask for every type of every step before their first step runs, so a
type the imap does not list stops the run. The host sends this file's text with ``python
-c`` (any image, old ones included): standard library at import, jwst and crds inside the
functions, Python 3.7 syntax. Its answer is one line on stdout, ``MARK`` and JSON.
"""

import json
import os
import sys
import warnings

MARK = "NIRISS-PIPE-REFCHECK "
INSTRUMENT = "niriss"
# (alias, class in jwst.pipeline): where NIRISS exposures go. calwebb_tso3 and calwebb_spec3
# run for SOSS and WFSS the spec2 steps that need references (extract_1d, photom).
CHECKED = (("calwebb_detector1", "Detector1Pipeline"), ("calwebb_image2", "Image2Pipeline"),
           ("calwebb_spec2", "Spec2Pipeline"), ("calwebb_image3", "Image3Pipeline"),
           ("calwebb_ami3", "Ami3Pipeline"))
# EXP_TYPE -> the stage 1 and 2 pipelines an exposure of it goes through
IMAGING = ("calwebb_detector1", "calwebb_image2")
SPECTRA = ("calwebb_detector1", "calwebb_spec2")
MODES = {"NIS_IMAGE": IMAGING, "NIS_AMI": IMAGING, "NIS_TACQ": IMAGING,
         "NIS_TACONFIRM": IMAGING, "NIS_FOCUS": IMAGING, "NIS_WFSS": SPECTRA,
         "NIS_SOSS": SPECTRA, "NIS_DARK": ("calwebb_dark",), "NIS_LAMP": ("calwebb_detector1",),
         "NIS_EXTCAL": ("calwebb_detector1",)}
CLASSES = dict(CHECKED, calwebb_dark="DarkPipeline")
NOT_A_FILE = ("N/A", "OMIT")


def pipeline_class(alias):
    import jwst.pipeline

    return getattr(jwst.pipeline, CLASSES[alias], None)


def steps_of(pipeline, prefix=""):
    """``[(step name, step class)]`` of a pipeline class, nested pipelines opened."""
    found = []
    for name, step in pipeline.step_defs.items():
        if hasattr(step, "step_defs"):
            found.append((prefix + name, step))
            found += steps_of(step, prefix + name + ".")
        else:
            found.append((prefix + name, step))
    return found


def declared(aliases):
    """``(reftypes, pars)``: ``{type: ["step (pipeline)", ...]}`` for each type the steps of
    these pipelines declare, and for each ``pars-*`` type of them and their steps."""
    reftypes, pars = {}, {}
    for alias in aliases:
        pipeline = pipeline_class(alias)
        if pipeline is None:
            continue
        pars.setdefault(pipeline.get_config_reftype(), []).append(f"{alias} (itself)")
        for name, step in steps_of(pipeline):
            user = f"{name} ({alias})"
            pars.setdefault(step.get_config_reftype(), []).append(user)
            types = step.reference_file_types
            for reftype in types if isinstance(types, (list, tuple)) else ():
                reftypes.setdefault(reftype.lower(), []).append(user)
    return reftypes, pars


def imap_of(context):
    import crds

    return crds.get_cached_mapping(context).get_imap(INSTRUMENT)


def selections(imap):
    """``{reftype: rmap name, or 'N/A'}`` of an imap."""
    found = {}
    for reftype, value in imap.selections.items():
        found[reftype.lower()] = getattr(value, "name", None) or str(value)
    return found


def held_references(imap):
    """``[(reftype, name, path)]`` of the references the imap's rmaps name that the cache
    holds, where the crds client looks for them."""
    from crds.core import config

    found = []
    for reftype, rmap in sorted(imap.selections.items()):
        if not hasattr(rmap, "reference_names"):
            continue
        for name in sorted(set(rmap.reference_names())):
            if name.upper() in NOT_A_FILE:
                continue
            path = config.locate_file(name, "jwst")
            if os.path.isfile(path):
                found.append((reftype.lower(), name, path))
    return found


def datamodels():
    try:
        from stdatamodels.jwst import datamodels
    except ImportError:  # older releases ship them as jwst.datamodels
        from jwst import datamodels
    return datamodels


def open_problem(dm, reftype, path):
    """Why the image's datamodels (or, for pars-* and JSON, asdf or json) refuse a reference:
    ``(error or None, [validation warnings])``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if path.endswith(".json"):
                with open(path) as stream:
                    json.load(stream)
            elif reftype.startswith("pars-"):
                import asdf

                with asdf.open(path) as tree:
                    tree.tree.keys()
            else:
                with dm.open(path) as model:
                    model.validate()
        except Exception as exc:  # noqa: BLE001 - any refusal is the answer
            return f"{type(exc).__name__}: {str(exc).strip()[:300]}", []
    notes = sorted({str(w.message)[:200] for w in caught
                    if type(w.message).__name__ == "ValidationWarning"})
    return None, notes


def check(context, open_references=True):
    import crds
    import jwst

    imap = imap_of(context)
    have = selections(imap)
    reftypes, pars = declared([alias for alias, _cls in CHECKED])
    result = {"jwst": jwst.__version__, "crds": crds.__version__, "imap": imap.name,
              "pipelines": [alias for alias, _cls in CHECKED if pipeline_class(alias)],
              "steps": len({user for users in pars.values() for user in users
                            if not user.endswith("(itself)")}),
              "reftypes": {t: {"users": u, "imap": have.get(t)} for t, u in reftypes.items()},
              "pars": {t: {"users": u, "imap": have.get(t)} for t, u in pars.items()},
              "references": [], "datamodels": None}
    if open_references:
        dm = datamodels()
        result["datamodels"] = getattr(dm, "__name__", "datamodels")
        for reftype, name, path in held_references(imap):
            error, notes = open_problem(dm, reftype, path)
            result["references"].append({"name": name, "reftype": reftype, "error": error,
                                         "warnings": notes})
    return result


def best_references(header, reftypes, context):
    import crds

    best = crds.getrecommendations(header, reftypes=sorted(reftypes), context=context,
                                   observatory="jwst")
    return {t: v for t, v in sorted(best.items())
            if isinstance(v, str) and not v.upper().startswith(("NOT FOUND", "N/A"))}


def select(context, datasets):
    """Per exposure: its EXP_TYPE, the pipelines it goes through, the types their steps ask
    for (and which the context lacks), and the references the context selects for it."""
    from crds import data_file

    imap = imap_of(context)
    have = selections(imap)
    out = {}
    for path in datasets:
        try:
            header = data_file.get_conditioned_header(path, observatory="jwst")
        except Exception as exc:  # noqa: BLE001 - named to the user as this file's problem
            out[path] = {"error": f"{type(exc).__name__}: {str(exc).strip()[:300]}"}
            continue
        exp_type = str(header.get("META.EXPOSURE.TYPE", header.get("EXP_TYPE", "UNDEFINED")))
        pipelines = MODES.get(exp_type, ("calwebb_detector1",))
        reftypes, pars = declared(pipelines)
        asked = sorted(set(reftypes) | set(pars))
        known = [t for t in asked if t in have]
        out[path] = {"exp_type": exp_type, "pipelines": list(pipelines), "asked": asked,
                     "not_in_imap": sorted(set(reftypes) - set(have)),
                     "selected": best_references(header, known, context) if known else {}}
    return out


def main(opts):
    try:
        import jwst  # noqa: F401
    except ImportError as exc:
        sys.stdout.write(MARK + json.dumps({"error": f"no jwst in this image: {exc}"})
                         + "\n")
        return 3
    if opts["what"] == "check":
        answer = check(opts["context"], opts.get("open", True))
    else:
        answer = {"datasets": select(opts["context"], opts["datasets"])}
    sys.stdout.write(MARK + json.dumps(answer, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
