"""Offline end-to-end self-test: calwebb_detector1 on synthetic NIRISS data.

Proves that an image's jwst, crds and stdatamodels work together without a
network or a real CRDS cache: the real `strun` runs against a synthetic
context, and the product must record every NIRISS step and synthetic reference.
"""

import argparse
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from niriss_pipe.runtime import synth
from niriss_pipe.runtime.contract import SERVERLESS_URL

NAME = "selftest"
LOG_TAIL = 40

# calwebb_detector1 steps that apply to a NIRISS ramp, in pipeline order.
NIRISS_STEPS = ("group_scale", "dq_init", "saturation", "ipc", "superbias", "refpix", "linearity",
                "dark_current", "jump", "persistence", "ramp_fit", "gain_scale")
CAL_STEP_ATTR = {"dark_current": "dark_sub"}  # every other step records under its own name
EXPECTED_SKIPS = {"group_scale": "NFRAMES=1 equals FRMDIVSR=1, nothing to rescale"}
ERROR_LINE = re.compile(r" - (ERROR|CRITICAL) - ")


class Failure(Exception):
    """A self-test check failed; the message is the one-line reason."""


def offline_env(crds_path, pmap):
    """Child environment that pins CRDS to the synthetic cache and forbids network use."""
    env = dict(os.environ)
    for var in ("CRDS_MAPPING_URI", "CRDS_REFERENCE_URI", "CRDS_CONFIG_URI"):
        env.pop(var, None)
    env.update(CRDS_PATH=str(crds_path), CRDS_CONTEXT=pmap, CRDS_SERVER_URL=SERVERLESS_URL,
               CRDS_MODE="local", CRDS_READONLY_CACHE="1")
    return env


def find_strun():
    """The strun of this interpreter's environment first, so a stray one on PATH is not used."""
    beside = Path(sys.executable).parent / "strun"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("strun")


def _run_strun(uncal, workdir, env, log_path, verbose):
    strun = find_strun()
    if strun is None:
        raise Failure("strun not found next to the interpreter or on PATH")
    cmd = [strun, "calwebb_detector1", uncal.name]
    with open(log_path, "w", encoding="utf-8") as log:
        if not verbose:
            return subprocess.run(cmd, cwd=workdir, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, check=False).returncode
        with subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) as proc:
            for line in proc.stdout:
                sys.stdout.write(line)
                log.write(line)
        return proc.returncode


def _expectations():
    """(status, reason) per step: the installed jwst's default skips must skip, the rest run."""
    from jwst.pipeline import Detector1Pipeline

    logging.disable(logging.INFO)  # older stpipe logs every step instance it creates
    try:
        pipeline = Detector1Pipeline()
    finally:
        logging.disable(logging.NOTSET)
    expected = {}
    for step in NIRISS_STEPS:
        if step in EXPECTED_SKIPS:
            expected[step] = ("SKIPPED", EXPECTED_SKIPS[step])
        elif getattr(pipeline, step).skip:
            expected[step] = ("SKIPPED", "off by default in this jwst")
        else:
            expected[step] = ("COMPLETE", "")
    return expected, Detector1Pipeline.step_defs


def _row(model, step, expected, step_class, references):
    """(step, status, note, problem) from the product's cal_step and ref_file records."""
    status = getattr(model.meta.cal_step, CAL_STEP_ATTR.get(step, step)) or "not recorded"
    want, reason = expected
    problems = [] if status == want else [f"{step} is {status}, expected {want}"]
    if reason:
        return step, status, f"({reason})", "; ".join(problems)
    used = []
    for reftype in step_class.reference_file_types:
        if reftype in references:
            recorded = getattr(model.meta.ref_file, reftype).name or "none"
            used.append(recorded.rsplit("/", 1)[-1])
            if not recorded.endswith(references[reftype]):
                problems.append(f"{step} used {reftype} {recorded}, not {references[reftype]}")
    return step, status, ", ".join(used) or "-", "; ".join(problems)


def _check_product(rate, references):
    expected, step_defs = _expectations()
    with synth.datamodels().open(str(rate)) as model:
        return [_row(model, step, expected[step], step_defs[step], references)
                for step in NIRISS_STEPS]


def _print_table(rows):
    print(f"{'step':<13} {'status':<13} reference")
    for step, status, note, problem in rows:
        print(f"{step:<13} {status:<13} {note}" + (f"   <-- {problem}" if problem else ""))


def _log_errors(log_path):
    lines = Path(log_path).read_text(encoding="utf-8", errors="replace").splitlines()
    return [line for line in lines if ERROR_LINE.search(line)]


def _selftest(workdir, log_path, verbose):
    """Build inputs, run strun, check the product; return the number of steps checked."""
    for stale in workdir.glob(f"{NAME}_*"):
        stale.unlink()
    info = synth.make_context(workdir / "crds")
    uncal = synth.make_exposure(workdir / f"{NAME}_uncal.fits")
    env = offline_env(workdir / "crds", info["pmap"])
    returncode = _run_strun(uncal, workdir, env, log_path, verbose)
    if returncode != 0:
        raise Failure(f"strun calwebb_detector1 exited with status {returncode}")
    errors = _log_errors(log_path)
    if errors:
        raise Failure(f"{len(errors)} ERROR lines in the strun log, first: {errors[0].strip()}")
    rate = workdir / f"{NAME}_rate.fits"
    if not rate.is_file():
        raise Failure(f"no product {rate.name}")
    rows = _check_product(rate, info["references"])
    _print_table(rows)
    problems = [problem for *_, problem in rows if problem]
    if problems:
        raise Failure("; ".join(problems))
    return len(rows)


def _print_log_tail(log_path):
    if log_path.is_file():
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        print("\n".join(["--- last lines of the strun log ---", *lines[-LOG_TAIL:], "---"]))


def run_selftest(workdir, verbose=False):
    """Run the self-test in `workdir`; print a table and a PASS/FAIL line; True on pass."""
    workdir = Path(workdir).resolve()  # strun runs inside it: relative paths would break
    workdir.mkdir(parents=True, exist_ok=True)
    # Fixes for an arbitrary uid apply to this process (it imports jwst) and to strun.
    os.environ.update(synth.user_env(workdir))
    log_path = workdir / f"{NAME}_strun.log"
    started = time.monotonic()
    try:
        nsteps = _selftest(workdir, log_path, verbose)
    except Exception as exc:  # any failure is a verdict, not a traceback
        if not verbose:
            _print_log_tail(log_path)
        reason = str(exc) if isinstance(exc, Failure) else f"{type(exc).__name__}: {exc}"
        print(f"selftest: work files kept in {workdir}")
        print(f"selftest: FAIL: {reason}")
        return False
    print(f"selftest: PASS (jwst {version('jwst')}, {nsteps} steps, "
          f"{time.monotonic() - started:.1f} s)")
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m niriss_pipe.runtime.selftest",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it")
    parser.add_argument("-v", "--verbose", action="store_true", help="stream the strun log")
    args = parser.parse_args(argv)
    if args.keep:
        return 0 if run_selftest(args.keep, args.verbose) else 1
    workdir = tempfile.mkdtemp(prefix="niriss-selftest-")
    passed = run_selftest(workdir, args.verbose)
    if passed:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
