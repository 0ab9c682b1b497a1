"""``verify --upstream`` inside the test image: the unit tests the image's own packages ship,
run against the installed files, offline.

It picks the suite's tests among what the installed jwst, stcal, stdatamodels and stpipe
ship; checks first that every test dependency of the test lock is installed (a missing one is
named, not reported as hundreds of failed imports); gives the crds client an offline cache
that holds no context (so tests that need CRDS fail with CRDS's own errors, which the plugin
counts apart); runs pytest once per package with the classifying plugin; and writes
``summary.json``, per-package JUnit XML and logs into the output folder. Standard library
(and the image's own packages) only, Python 3.7 syntax.

    python -m niriss_pipe.runtime.upstream --suite quick --out /out
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time

from niriss_pipe.runtime.contract import TEST_LOCK_IN_IMAGE

PACKAGES = ("jwst", "stcal", "stdatamodels", "stpipe")
PLUGIN = "niriss_pipe.runtime.upstream_plugin"
# quick: the detector1 steps' modules (asked of the image's own Detector1Pipeline) and these,
# the NIRISS modes' modules; paths this jwst does not ship are listed as absent.
QUICK_MODES = {
    "AMI": ("jwst/ami", "jwst/pipeline/tests/test_calwebb_ami3.py"),
    "SOSS": ("jwst/extract_1d/soss_extract", "jwst/pastasoss",
             "jwst/background/tests/test_background_soss.py"),
    "WFSS": ("jwst/extract_2d", "jwst/wfss_contam", "jwst/assign_wcs/tests/test_wfss.py",
             "jwst/background/tests/test_background_wfss.py"),
    "imaging": ("jwst/assign_wcs/tests/test_niriss.py", "jwst/flatfield",
                "jwst/photom/tests/test_photom.py"),
}
# Tests that assert how long the code took (wall clock): the machine's load decides them, not
# what the image computes. They are not run, and the summary lists them (never dropped
# silently); --only runs them like any other.
WALL_CLOCK = ("jwst/jump/tests/test_detect_jumps.py::test_exec_time_0_crs",
              "jwst/jump/tests/test_detect_jumps.py::test_exec_time_many_crs")
INI = "[pytest]\njunit_family = xunit2\naddopts =\n"  # not the repositories' (not shipped)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def site_packages():
    """The folder the tested packages are installed in (nodeids are relative to it)."""
    import jwst

    return os.path.dirname(os.path.dirname(os.path.abspath(jwst.__file__)))


def is_test_file(name):
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


def has_tests(path):
    if os.path.isfile(path):
        return is_test_file(os.path.basename(path))
    for _dirpath, _dirnames, filenames in os.walk(path):
        if any(is_test_file(name) for name in filenames):
            return True
    return False


def shipped(site):
    """The packages among PACKAGES that are installed and ship tests."""
    return [name for name in PACKAGES
            if os.path.isdir(os.path.join(site, name)) and has_tests(os.path.join(site, name))]


_SKIP = re.compile(r"^\s*skip\s*=\s*boolean\(default\s*=\s*(True|False)\)", re.MULTILINE)


def skipped_by_default(step_class):
    """Whether a step's own spec (or its nearest base's) says ``skip = boolean(default=True)``:
    steps of other instruments and optional corrections (emicorr, firstframe, persistence,
    picture_frame, clean_flicker_noise in jwst 3.0) that a default run does not apply."""
    for klass in getattr(step_class, "__mro__", (step_class,)):
        found = _SKIP.search(klass.__dict__.get("spec") or "")
        if found:
            return found.group(1) == "True"
    return False


def detector1_paths():
    """``jwst/<module>`` of each step the installed calwebb_detector1 runs by default (the
    ``full`` suite has the others)."""
    from jwst.pipeline import Detector1Pipeline

    found = []
    for step in Detector1Pipeline.step_defs.values():
        parts = step.__module__.split(".")
        path = "/".join(parts[:2])
        if len(parts) > 2 and path not in found and not skipped_by_default(step):
            found.append(path)
    return found


def suite_paths(suite, site, only=(), detector1=None):
    """``({package: [paths relative to site]}, [absent paths])`` for a suite, or for the
    modules ``only`` names (dotted, e.g. jwst.linearity)."""
    have = shipped(site)
    if only:
        chosen = {}
        for module in only:
            path = module.replace(".", "/")
            target = path if os.path.isdir(os.path.join(site, path)) else path + ".py"
            if not has_tests(os.path.join(site, target)):
                raise ValueError(f"{module} ships no tests in this image")
            chosen.setdefault(module.split(".")[0], []).append(target)
        return chosen, []
    if suite == "full":
        return {name: [name] for name in have}, []
    candidates = list(detector1 if detector1 is not None else detector1_paths())
    for paths in QUICK_MODES.values():
        candidates += [p for p in paths if p not in candidates]
    present = [p for p in candidates if has_tests(os.path.join(site, p))]
    absent = [p for p in candidates if p not in present]
    return ({"jwst": present} if present and "jwst" in have else {}), absent


def installed():
    """``{canonical name: version}`` of every distribution on sys.path (the first wins)."""
    try:
        from importlib import metadata
    except ImportError:  # Python 3.7
        import importlib_metadata as metadata
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) not in found:
            found[canonical(name)] = dist.version
    return found


def missing_dependencies(lock_text, have):
    """``[(name, locked version, installed version or None)]`` for every test-lock pin that
    is not installed as locked."""
    problems = []
    for name, version in _PIN.findall(lock_text):
        got = have.get(canonical(name))
        if got != version:
            problems.append((canonical(name), version, got))
    return sorted(problems)


def offline_crds(scratch):
    """The CRDS cache the tests see: the image's own when it holds a server config (baked),
    else an empty offline cache naming the image's context, so the client loads and every
    lookup fails with CRDS's own lookup errors rather than stopping the process."""
    crds_path = os.environ.get("CRDS_PATH", "/crds")
    if os.path.isfile(os.path.join(crds_path, "config", "jwst", "server_config")):
        return crds_path
    context = os.environ.get("CRDS_CONTEXT", "jwst-operational")
    config = os.path.join(scratch, "crds", "config", "jwst")
    os.makedirs(config)
    with open(os.path.join(config, "server_config"), "w") as stream:
        stream.write(repr({"observatory": "jwst", "operational_context": context,
                           "latest_context": context, "bad_files_list": [],
                           "last_synced": "1970-01-01 00:00:00", "force_remote_mode": False,
                           "mappings": []}) + "\n")
    return os.path.join(scratch, "crds")


def has_xdist():
    try:
        import xdist  # noqa: F401
    except ImportError:
        return False
    return True


def wall_clock_tests(paths, site):
    """The WALL_CLOCK tests these paths would run (their file is shipped and chosen)."""
    found = []
    for nodeid in WALL_CLOCK:
        name = nodeid.split("::", 1)[0]
        if os.path.isfile(os.path.join(site, name)) and any(
                name == p or name.startswith(p.rstrip("/") + "/") for p in paths):
            found.append(nodeid)
    return found


def pytest_command(paths, out, package, ini, site, jobs, deselect=()):
    command = [sys.executable, "-m", "pytest", *paths, "-p", PLUGIN, "-p", "no:cacheprovider",
               "-c", ini, "--rootdir", site, "-q", "-rN", "--color=no", "--tb=short",
               "--continue-on-collection-errors",
               "--junitxml", os.path.join(out, package + ".xml"),
               "-o", "junit_suite_name=" + package,
               "--niriss-pipe-results", os.path.join(out, package + ".results.json")]
    for nodeid in deselect:
        command += ["--deselect", nodeid]
    if jobs > 1 and has_xdist():
        command += ["-n", str(jobs)]
    return command


def run_package(package, paths, out, ini, site, jobs, env, deselect=()):
    """Run one package's tests; return its summary entry."""
    import subprocess

    log = os.path.join(out, package + ".log")
    started = time.monotonic()
    with open(log, "w") as stream:
        code = subprocess.call(pytest_command(paths, out, package, ini, site, jobs, deselect),
                               cwd=site,
                               stdout=stream, stderr=subprocess.STDOUT, env=env)
    seconds = round(time.monotonic() - started, 1)
    try:
        with open(os.path.join(out, package + ".results.json")) as stream:
            results = json.load(stream)
    except (OSError, ValueError):
        with open(log, errors="replace") as stream:
            tail = stream.read().strip().splitlines()[-5:]
        results = {"counts": {"errors": 1}, "tests": {"<pytest>": {
            "outcome": "errors", "detail": "pytest stopped (exit {}): {}".format(
                code, " | ".join(tail))}}}
    entry = {"paths": paths, "seconds": seconds, "exitstatus": code, "tests": results["tests"]}
    entry.update(results["counts"])
    return entry


def versions(have, names):
    return {name: have.get(name) for name in names}


def interfaces():
    """The network interfaces the tests see (``['lo']`` in a ``--network none`` container)."""
    try:
        return sorted(os.listdir("/sys/class/net"))
    except OSError:
        return None


def run(suite, out, only=(), jobs=1, lock=TEST_LOCK_IN_IMAGE):
    have = installed()
    summary = {"suite": "only " + ", ".join(only) if only else suite, "jobs": jobs,
               "network_interfaces": interfaces(),
               "python": sys.version.split()[0], "pytest": have.get("pytest"),
               "versions": versions(have, PACKAGES), "packages": {}, "absent": [],
               "wall_clock": [],
               "missing_dependencies": []}
    try:
        with open(lock) as stream:
            lock_text = stream.read()
    except OSError:
        lock_text = None
    missing = missing_dependencies(lock_text, have) if lock_text is not None else []
    if lock_text is None or "pytest" not in have:
        missing = missing or [("pytest", "(the test lock)", None)]
    summary["missing_dependencies"] = [{"name": n, "locked": v, "installed": i}
                                       for n, v, i in missing]
    if missing:
        return _write(out, summary, 3)
    site = site_packages()
    chosen, summary["absent"] = suite_paths(suite, site, only)
    with tempfile.TemporaryDirectory(prefix="upstream-") as scratch:
        env = dict(os.environ, CRDS_PATH=offline_crds(scratch))
        summary["crds_path"] = env["CRDS_PATH"]
        ini = os.path.join(scratch, "pytest.ini")
        with open(ini, "w") as stream:
            stream.write(INI)
        for package, paths in sorted(chosen.items()):
            print(f"{package}: running {len(paths)} test paths", flush=True)
            timed = [] if only else wall_clock_tests(paths, site)
            summary["wall_clock"] += timed
            entry = run_package(package, paths, out, ini, site, jobs, env, timed)
            summary["packages"][package] = entry
            print("{}: {passed} passed, {needs_crds} need CRDS, {failed} failed, {errors} "
                  "errors ({seconds:.0f} s)".format(package, **entry), flush=True)
    bad = any(entry["failed"] or entry["errors"] for entry in summary["packages"].values())
    return _write(out, summary, 1 if bad else 0)


def _write(out, summary, code):
    summary["exit"] = code
    with open(os.path.join(out, "summary.json"), "w") as stream:
        json.dump(summary, stream, indent=1, sort_keys=True)
    return code


def default_jobs():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m niriss_pipe.runtime.upstream",
                                     description="Run the image's shipped unit tests offline.")
    parser.add_argument("--suite", choices=("quick", "full"), default="quick")
    parser.add_argument("--only", nargs="+", default=[], metavar="MODULE")
    parser.add_argument("--out", required=True)
    parser.add_argument("--jobs", type=int, default=0, help="pytest-xdist workers (0: CPUs)")
    args = parser.parse_args(argv)
    try:
        return run(args.suite, args.out, tuple(args.only), args.jobs or default_jobs())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    sys.exit(main())
