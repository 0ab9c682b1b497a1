"""Run a product's pipeline again on its input, as the product says it ran, and compare.

Inside the image (``build.py reproduce`` starts it): the product's ``S_*`` keywords, read
through the installed datamodels, say which steps ran; each pipeline that made the product
runs with ``strun`` on the input, with the steps the product records as skipped skipped and
those it records as complete run; then ``runtime.difference``
compares the new product with the given one and draws it. The answer is one line on stdout,
``MARK`` and JSON; exit 2 when the product cannot be reproduced this way.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from niriss_pipe.runtime import difference
from niriss_pipe.runtime.selftest import find_strun

MARK = "NIRISS-PIPE-RERUN "
EXIT_UNSUPPORTED = 2
LOG = "strun.log"
# Steps that record themselves under another cal_step name than their alias.
CAL_STEP = {"dark_current": "dark_sub", "imprint_subtract": "imprint",
            "master_background_mos": "master_background", "resample_spec": "resample"}
STAGE1 = {"rate": "calwebb_detector1", "rateints": "calwebb_detector1"}
STAGE2 = {"cal": "rate", "calints": "rateints"}  # stage-2 suffix -> the stage-1 product it reads
SPEC2_TYPES = ("NIS_WFSS", "NIS_SOSS")  # NIRISS exposure types calibrated by calwebb_spec2
PIPELINE_CLASSES = {"calwebb_detector1": "Detector1Pipeline", "calwebb_image2": "Image2Pipeline",
                    "calwebb_spec2": "Spec2Pipeline"}


class Unsupported(Exception):
    """The product is not one this module can make again; the message says why."""


def suffix_of(name):
    stem = name[:-len(".fits")] if name.endswith(".fits") else name
    return stem.rsplit("_", 1)[-1] if "_" in stem else ""


def product_facts(path):
    """(cal_step statuses, exposure type, suffix) of the given product."""
    from niriss_pipe.runtime.synth import datamodels

    with datamodels().open(path) as model:
        steps = {k: v for k, v in (model.meta.cal_step.instance or {}).items()
                 if isinstance(v, str)}
        exp_type = model.meta.exposure.type or ""
        filename = model.meta.filename or ""
    suffix = suffix_of(filename) if suffix_of(filename) in list(STAGE1) + list(STAGE2) \
        else suffix_of(os.path.basename(path))
    return steps, exp_type, suffix


def pipelines(suffix, exp_type):
    """[(strun alias, the suffix it writes)] that make a product of ``suffix``."""
    if suffix in STAGE1:
        return [(STAGE1[suffix], suffix)]
    if suffix in STAGE2:
        stage2 = "calwebb_spec2" if exp_type.upper() in SPEC2_TYPES else "calwebb_image2"
        return [("calwebb_detector1", STAGE2[suffix]), (stage2, suffix)]
    raise Unsupported(f"the product's suffix is '{suffix}': reproduce makes stage 1 (_rate, "
                      "_rateints) and stage 2 (_cal, _calints) products of one exposure again; "
                      "stage 3 products come from associations of many.")


def step_args(alias, steps):
    """``--steps.NAME.skip=...`` for each step of pipeline ``alias`` the product records:
    skipped steps skipped, the others run; steps it does not record keep their default."""
    import logging

    import jwst.pipeline

    cls = getattr(jwst.pipeline, PIPELINE_CLASSES[alias])
    logging.disable(logging.INFO)  # older stpipe logs every step instance it creates
    try:
        pipeline = cls()
    finally:
        logging.disable(logging.NOTSET)
    args, plan = [], []
    for name in cls.step_defs:
        status = steps.get(CAL_STEP.get(name, name))
        default_skip = bool(getattr(getattr(pipeline, name), "skip", False))
        if status == "SKIPPED":
            args.append(f"--steps.{name}.skip=true")
        elif status == "COMPLETE":  # explicit: a parameter reference could turn it off
            args.append(f"--steps.{name}.skip=false")
        plan.append({"step": name, "recorded": status, "default_skip": default_skip})
    return args, plan


def output_name(input_name, suffix):
    stem = input_name[:-len(".fits")] if input_name.endswith(".fits") else input_name
    for known in ("_uncal", "_rate", "_rateints"):
        if stem.endswith(known):
            stem = stem[:-len(known)]
            break
    return f"{stem}_{suffix}.fits"


def run(given, uncal, out, rtol, atol):
    """Run the pipelines, compare, draw; the answer as a dict."""
    steps, exp_type, suffix = product_facts(given)
    strun = find_strun()
    answer = {"suffix": suffix, "exp_type": exp_type, "commands": [], "steps": [],
              "seconds": {}}
    current = uncal
    started = time.monotonic()
    for alias, writes in pipelines(suffix, exp_type):
        args, plan = step_args(alias, steps)
        command = [strun, alias, current, "--output_dir=" + out] + args
        answer["commands"].append(["strun"] + command[1:])
        answer["steps"] += [dict(row, pipeline=alias) for row in plan]
        with open(os.path.join(out, LOG), "a", encoding="utf-8") as log:
            log.write("$ " + " ".join(answer["commands"][-1]) + "\n")
            log.flush()
            code = subprocess.run(command, cwd=out, stdout=log, stderr=subprocess.STDOUT,
                                  check=False).returncode
        if code != 0:
            answer["failed"] = {"command": answer["commands"][-1], "exit": code,
                                "log_tail": _tail(os.path.join(out, LOG))}
            return answer
        current = os.path.join(out, output_name(os.path.basename(current), writes))
    answer["seconds"]["pipeline"] = round(time.monotonic() - started, 2)
    answer["new_product"] = os.path.basename(current)
    if not os.path.isfile(current):
        answer["failed"] = {"command": answer["commands"][-1], "exit": 0,
                            "log_tail": ["the pipeline wrote no " + answer["new_product"]]}
        return answer
    started = time.monotonic()
    answer["comparison"] = difference.compare_files(given, current, rtol, atol)
    answer["pictures"] = difference.draw_all(answer["comparison"], given, current, out)
    answer["seconds"]["compare"] = round(time.monotonic() - started, 2)
    return answer


def _tail(path, lines=25):
    with open(path, encoding="utf-8", errors="replace") as log:
        return log.read().splitlines()[-lines:]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m niriss_pipe.runtime.rerun",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("given", help="the product to reproduce")
    parser.add_argument("input", help="the exposure it was made from (*_uncal.fits)")
    parser.add_argument("--out", default=".", help="where the new products and pictures go")
    parser.add_argument("--rtol", type=float, default=0.0)
    parser.add_argument("--atol", type=float, default=0.0)
    args = parser.parse_args(argv)
    try:
        answer = run(os.path.abspath(args.given), os.path.abspath(args.input),
                     os.path.abspath(args.out), args.rtol, args.atol)
    except Unsupported as exc:
        sys.stdout.write(MARK + json.dumps({"unsupported": str(exc)}) + "\n")
        return EXIT_UNSUPPORTED
    sys.stdout.write(MARK + json.dumps(answer, sort_keys=True) + "\n")
    return 1 if "failed" in answer else 0


if __name__ == "__main__":
    sys.exit(main())
