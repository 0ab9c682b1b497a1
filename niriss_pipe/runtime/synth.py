"""Deterministic synthetic NIRISS data and a self-contained synthetic CRDS context.

The self-test must drive the real pipeline and the real CRDS client with no
network and no multi-GB cache.  Every file is built with the installed
datamodels classes, so the installed schemas decide the layout, and the
mappings are written exactly as the CRDS client verifies them on load.
"""

import argparse
import getpass
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from niriss_pipe.runtime.contract import SYNTHETIC_FULL_SERIAL, SYNTHETIC_SERIAL

SERIAL = SYNTHETIC_SERIAL  # never an STScI context number: never shadows one in a shared cache
SEED = 20230101
SHAPE = (64, 64)
SUBARRAY = {"name": "SUB64", "xstart": 1, "ystart": 1, "xsize": 64, "ysize": 64,
            "fastaxis": -2, "slowaxis": -1}
FRAME_TIME = 0.05016  # s, NIRISS SUB64


class Frame:
    """A readout: array shape, subarray keywords, frame time, the context serial its
    references go under, and the scene's count rates (DN/s, kept below saturation)."""

    def __init__(self, name, shape, subarray, frame_time, serial, sky, star):
        self.name, self.shape, self.subarray = name, shape, subarray
        self.frame_time, self.serial, self.sky, self.star = frame_time, serial, sky, star


SUB64 = Frame("sub64", SHAPE, SUBARRAY, FRAME_TIME, SERIAL, 500.0, 20000.0)
# Full frame (NIS, NISRAPID): 10.737 s per frame, so the scene is fainter; the benchmark's.
FULL = Frame("full", (2048, 2048), {"name": "FULL", "xstart": 1, "ystart": 1, "xsize": 2048,
                                    "ysize": 2048, "fastaxis": -2, "slowaxis": -1},
             10.73676, SYNTHETIC_FULL_SERIAL, 2.0, 150.0)
FRAMES = {frame.name: frame for frame in (SUB64, FULL)}
OBS_DATE, OBS_TIME, START_MJD = "2023-01-01", "00:00:00.000", 59945.0
USEAFTER = "2000-01-01T00:00:00"

BIAS_DN, SKY_RATE, STAR_RATE, NOISE_DN = 10000.0, 500.0, 20000.0, 5.0
GAIN, READNOISE_DN, SATURATION_DN = 1.6, 10.0, 60000.0
MAX_NGROUPS = 20  # groups covered by the synthetic dark; longer ramps would skip dark_current

# The eight NIRISS detector1 types: always built, whatever the pipeline enumerates.
CORE_REFTYPES = ("dark", "gain", "ipc", "linearity", "mask", "readnoise", "saturation", "superbias")

RMAP_PARKEY = (("META.INSTRUMENT.DETECTOR",), ("META.OBSERVATION.DATE", "META.OBSERVATION.TIME"))


def datamodels():
    """The installed datamodels package (older jwst releases shipped it as jwst.datamodels)."""
    try:
        from stdatamodels.jwst import datamodels
    except ImportError:
        from jwst import datamodels
    return datamodels


def user_env(base):
    """Environment fixes for an arbitrary container uid, with scratch space under `base`.

    jwst.stpipe asks getpass.getuser() at import, which fails for a uid with no
    passwd entry unless USER is set; astropy and matplotlib write config and caches
    under HOME and warn on every run when it is unwritable.
    """
    env = {}
    try:
        getpass.getuser()
    except (KeyError, OSError):
        env["USER"] = f"uid{os.getuid()}"
    home = os.environ.get("HOME", "")
    if not (os.path.isdir(home) and os.access(home, os.W_OK | os.X_OK)):
        home = Path(base) / "home"
        dirs = {"HOME": home, "XDG_CACHE_HOME": home / ".cache",
                "XDG_CONFIG_HOME": home / ".config"}
        for var, path in dirs.items():
            path.mkdir(parents=True, exist_ok=True)
            env[var] = str(path)
    return env


def set_meta(node, values):
    """Assign a nested dict onto a datamodel meta node."""
    for key, value in values.items():
        if isinstance(value, dict):
            set_meta(getattr(node, key), value)
        else:
            setattr(node, key, value)


# --------------------------------------------------------------------- exposure

def _ramp(ngroups, nints, frame=SUB64):
    """Bias + sky + one star, linear in time, with small Gaussian read noise."""
    if frame is not SUB64:
        return _big_ramp(ngroups, nints, frame)
    rng = np.random.default_rng(SEED)
    y, x = np.mgrid[: SHAPE[0], : SHAPE[1]]
    rate = SKY_RATE + STAR_RATE * np.exp(-((x - 40) ** 2 + (y - 24) ** 2) / 8.0)
    times = FRAME_TIME * np.arange(1, ngroups + 1)
    ramp = BIAS_DN + rate * times[:, None, None]
    noisy = ramp + rng.normal(0.0, NOISE_DN, (nints, ngroups) + SHAPE)
    return np.round(noisy).astype(np.uint16)


def _big_ramp(ngroups, nints, frame):
    """Bias + sky + a field of stars + cosmic-ray hits (jumps), one group at a time (a
    full-frame ramp in float64 at once would take gigabytes)."""
    rng = np.random.default_rng(SEED)
    ny, nx = frame.shape
    rate = np.full(frame.shape, frame.sky, dtype=np.float32)
    for _ in range(400):  # stars: 7x7 Gaussian stamps away from the reference pixels
        y, x = rng.integers(8, ny - 8), rng.integers(8, nx - 8)
        yy, xx = np.mgrid[-3:4, -3:4]
        peak = frame.star * rng.uniform(0.05, 1.0)
        rate[y - 3:y + 4, x - 3:x + 4] += peak * np.exp(-(xx ** 2 + yy ** 2) / 2.0)
    hits = ny * nx // 2000  # about 0.05 % of pixels per integration
    out = np.empty((nints, ngroups) + frame.shape, dtype=np.uint16)
    for i in range(nints):
        jump = np.zeros(frame.shape, dtype=np.float32)
        where = rng.integers(0, ny * nx, hits), rng.integers(1, ngroups, hits)
        for g in range(ngroups):
            now = where[1] == g
            jump.flat[where[0][now]] += rng.uniform(200.0, 2000.0, int(now.sum()))
            signal = BIAS_DN + rate * (frame.frame_time * (g + 1)) + jump
            signal += rng.normal(0.0, NOISE_DN, frame.shape).astype(np.float32)
            out[i, g] = np.clip(np.round(signal), 0, SATURATION_DN)
    return out


def _exposure_meta(ngroups, nints, frame=SUB64):
    """Keywords calwebb_detector1 and CRDS best-reference selection read."""
    frame_time = frame.frame_time
    int_time = ngroups * frame_time
    duration = nints * (ngroups + 1) * frame_time  # one reset frame per integration
    return {
        "telescope": "JWST",
        "instrument": {"name": "NIRISS", "detector": "NIS", "filter": "CLEAR", "pupil": "F150W"},
        "observation": {"date": OBS_DATE, "time": OBS_TIME},
        "subarray": dict(frame.subarray),
        "exposure": {
            "type": "NIS_IMAGE", "readpatt": "NISRAPID", "nints": nints, "ngroups": ngroups,
            "nframes": 1, "groupgap": 0, "frame_divisor": 1, "sample_time": 10,
            "nresets_at_start": 1, "nresets_between_ints": 1, "drop_frames1": 0, "drop_frames3": 0,
            "frame_time": frame_time, "group_time": frame_time,
            "integration_time": int_time, "exposure_time": nints * int_time, "duration": duration,
            "start_time": START_MJD, "mid_time": START_MJD + duration / 2 / 86400.0,
            "end_time": START_MJD + duration / 86400.0,
        },
    }


def make_exposure(path, ngroups=5, nints=1, frame=SUB64):
    """Write a NIRISS NIS_IMAGE uncal exposure (SUB64, or full frame) and return its path."""
    path = Path(path)
    if not path.name.endswith("_uncal.fits"):
        raise ValueError(f"exposure name must end with _uncal.fits: {path.name}")
    if not 1 <= ngroups <= MAX_NGROUPS or nints < 1:
        raise ValueError(f"need 1 <= ngroups <= {MAX_NGROUPS} and nints >= 1")
    model = datamodels().Level1bModel(data=_ramp(ngroups, nints, frame))
    set_meta(model.meta, _exposure_meta(ngroups, nints, frame))
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    model.close()
    return path


# ------------------------------------------------------------------- references

def _full(value, shape=None, dtype=np.float32):
    return np.full(shape or _SHAPE[0], value, dtype=dtype)


_SHAPE = [SHAPE]  # the shape of the references being written (make_context sets it)


def _linearity_coeffs():
    """Identity polynomial: corrected = 0 + 1 * raw."""
    coeffs = np.zeros((5,) + _SHAPE[0], dtype=np.float32)
    coeffs[1] = 1.0
    return coeffs


def _ipc_kernel():
    """A 3x3 kernel with no coupling."""
    kernel = np.zeros((3, 3), dtype=np.float32)
    kernel[1, 1] = 1.0
    return kernel


def _trappars_table():
    """One trap family; with zero trap density it never captures charge."""
    names = ("capture0", "capture1", "capture2", "decay_param")
    return np.array([(0.0, -1e-3, 0.0, -1e-3)], dtype=[(n, "<f8") for n in names])


_DQ = {"dq": lambda: _full(0, dtype=np.uint32)}
_EXPOSURE = {"readpatt": "NISRAPID", "nframes": 1, "groupgap": 0}

# reftype -> (datamodel class, arrays, extra meta, carries subarray keywords)
REFERENCES = {
    "dark": ("DarkModel", {"data": lambda: _full(0.0, (MAX_NGROUPS,) + _SHAPE[0]),
                           "err": lambda: _full(0.0, (MAX_NGROUPS,) + _SHAPE[0]), **_DQ},
             {"exposure": {**_EXPOSURE, "ngroups": MAX_NGROUPS}}, True),
    "gain": ("GainModel", {"data": lambda: _full(GAIN)}, {"exposure": {"gain_factor": 1.0}}, True),
    "ipc": ("IPCModel", {"data": _ipc_kernel}, {}, False),
    "linearity": ("LinearityModel", {"coeffs": _linearity_coeffs, **_DQ}, {}, True),
    "mask": ("MaskModel", _DQ, {}, True),
    "readnoise": ("ReadnoiseModel", {"data": lambda: _full(READNOISE_DN)},
                  {"exposure": {"readpatt": "NISRAPID"}}, True),
    "saturation": ("SaturationModel", {"data": lambda: _full(SATURATION_DN), **_DQ}, {}, True),
    "superbias": ("SuperBiasModel", {"data": lambda: _full(0.0), "err": lambda: _full(0.0), **_DQ},
                  {"exposure": {"readpatt": "NISRAPID"}}, True),
    "trapdensity": ("TrapDensityModel", {"data": lambda: _full(0.0), **_DQ}, {}, True),
    "trappars": ("TrapParsModel", {"trappars_table": _trappars_table}, {}, False),
    "persat": ("PersistenceSatModel", {"data": lambda: _full(SATURATION_DN), **_DQ}, {}, True),
}


def reference_meta(reftype, extra, subarray, frame=SUB64):
    meta = {
        "reftype": reftype.upper(), "author": "niriss-pipe synth", "pedigree": "DUMMY",
        "description": f"Synthetic {reftype} for offline self-tests", "useafter": USEAFTER,
        "telescope": "JWST", "instrument": {"name": "NIRISS", "detector": "NIS"}, **extra,
    }
    if subarray:
        meta["subarray"] = dict(frame.subarray)
    return meta


def _write_reference(dm, reftype, path, frame=SUB64):
    cls_name, arrays, extra, subarray = REFERENCES[reftype]
    _SHAPE[0] = frame.shape
    try:
        model = getattr(dm, cls_name)(**{name: make() for name, make in arrays.items()})
    finally:
        _SHAPE[0] = SHAPE
    set_meta(model.meta, reference_meta(reftype, extra, subarray, frame))
    model.save(str(path))
    model.close()


def detector1_reftypes():
    """Reference types and pars-* types the installed calwebb_detector1 can ask CRDS for."""
    from jwst.pipeline import Detector1Pipeline

    steps = list(Detector1Pipeline.step_defs.values())
    reftypes = {t for step in steps for t in step.reference_file_types}
    pars = {cls.get_config_reftype() for cls in [Detector1Pipeline, *steps]}
    return sorted(reftypes | set(CORE_REFTYPES)), sorted(pars)


# --------------------------------------------------------------------- mappings

def mapping_text(header, selector):
    """Mapping text carrying the sha1sum CRDS checks: sha1 of the text minus sha1sum lines."""
    def render(sha1):
        items = sorted({**header, "sha1sum": sha1}.items())
        lines = ["header = {", *(f"    {k!r} : {v!r}," for k, v in items), "}", "",
                 f"selector = {selector}", ""]
        return "\n".join(lines)

    draft = render("")
    body = "".join(line for line in draft.splitlines(True) if "sha1sum" not in line)
    return render(hashlib.sha1(body.encode("utf-8")).hexdigest())


def dict_selector(call, entries):
    body = "".join(f"    {k!r} : {v},\n" for k, v in entries.items())
    return f"{call}({{\n{body}}})" if call else f"{{\n{body}}}"


def _rmap(reftype, name, reference):
    header = {"derived_from": "niriss-pipe synthetic", "filekind": reftype.upper(),
              "instrument": "NIRISS", "mapping": "REFERENCE", "name": name,
              "observatory": "JWST", "parkey": RMAP_PARKEY}
    useafter = f"UseAfter({{\n        {USEAFTER.replace('T', ' ')!r} : {reference!r},\n    }})"
    return mapping_text(header, dict_selector("Match", {("NIS",): useafter}))


def _imap(name, selections):
    header = {"derived_from": "niriss-pipe synthetic", "instrument": "NIRISS",
              "mapping": "INSTRUMENT", "name": name, "observatory": "JWST",
              "parkey": ("REFTYPE",)}
    return mapping_text(header, dict_selector("", {k: repr(v) for k, v in selections.items()}))


def _pmap(name, imap):
    header = {"derived_from": "niriss-pipe synthetic", "mapping": "PIPELINE", "name": name,
              "observatory": "JWST", "parkey": ("META.INSTRUMENT.NAME",)}
    return mapping_text(header, dict_selector("", {"NIRISS": repr(imap)}))


def _server_config(pmap):
    """The cached server_info the client reads instead of asking a server."""
    return repr({"observatory": "jwst", "operational_context": pmap, "latest_context": pmap,
                 "bad_files_list": [], "last_synced": f"{OBS_DATE} {OBS_TIME}",
                 "force_remote_mode": False, "mappings": [pmap]}) + "\n"


def _write_once(path, text):
    """Keep what a shared cache already holds: a real sync's config must survive."""
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()


def make_context(crds_path, serial=None, frame=SUB64):
    """Write a synthetic CRDS context for NIRISS detector1 into a (new or shared) cache: SUB64
    references under jwst_9999.pmap, or full-frame ones under jwst_9998.pmap."""
    serial = serial or frame.serial
    root = Path(crds_path)
    mapdir, cfgdir = root / "mappings" / "jwst", root / "config" / "jwst"
    for d in (mapdir, cfgdir):
        d.mkdir(parents=True, exist_ok=True)
    pmap, imap = f"jwst_{serial}.pmap", f"jwst_niriss_{serial}.imap"
    _write_once(cfgdir / "server_config", _server_config(pmap))
    mode = _write_once(cfgdir / "ref_cache_subdir_mode", "instrument\n")
    refdir = root / "references" / "jwst" / ("niriss" if mode == "instrument" else "")
    refdir.mkdir(parents=True, exist_ok=True)

    dm = datamodels()
    reftypes, pars = detector1_reftypes()
    references = {}
    for reftype in reftypes:
        if reftype in REFERENCES and hasattr(dm, REFERENCES[reftype][0]):
            references[reftype] = f"jwst_niriss_{reftype}_{serial}.fits"
            _write_reference(dm, reftype, refdir / references[reftype], frame)
            rmap = f"jwst_niriss_{reftype}_{serial}.rmap"
            (mapdir / rmap).write_text(_rmap(reftype, rmap, references[reftype]), encoding="utf-8")

    selections = {t: f"jwst_niriss_{t}_{serial}.rmap" if t in references else "N/A"
                  for t in reftypes + pars}
    (mapdir / imap).write_text(_imap(imap, selections), encoding="utf-8")
    (mapdir / pmap).write_text(_pmap(pmap, imap), encoding="utf-8")
    return {"pmap": pmap, "imap": imap, "references": references,
            "not_applicable": sorted(t for t, v in selections.items() if v == "N/A")}


# -------------------------------------------------------------------------- CLI

class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line and no usage dump."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv=None):
    parser = _Parser(prog="python -m niriss_pipe.runtime.synth",
                     description="Write synthetic NIRISS test data.")
    sub = parser.add_subparsers(dest="what", required=True)
    ctx = sub.add_parser("context", help="synthetic CRDS cache")
    ctx.add_argument("crds_path")
    exp = sub.add_parser("exposure", help="synthetic *_uncal.fits exposure")
    exp.add_argument("outfile")
    exp.add_argument("--ngroups", type=int, default=5)
    for each in (ctx, exp):
        each.add_argument("--frame", choices=sorted(FRAMES), default="sub64",
                          help="sub64 (64x64, the self-test's) or full (2048x2048)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="niriss-synth-") as scratch:
        os.environ.update(user_env(scratch))
        return _write(parser, args)


def _write(parser, args):
    try:
        if args.what == "context":
            info = make_context(args.crds_path, frame=FRAMES[args.frame])
            print(f"wrote CRDS context {info['pmap']} with {len(info['references'])} "
                  f"references under {args.crds_path}")
        else:
            frame = FRAMES[args.frame]
            path = make_exposure(args.outfile, ngroups=args.ngroups, frame=frame)
            print(f"wrote {path} (NIS_IMAGE {frame.subarray['name']}, {args.ngroups} groups)")
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
