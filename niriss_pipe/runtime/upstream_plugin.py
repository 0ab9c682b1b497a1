"""The pytest plugin of ``verify --upstream``: it runs in the test image, in pytest's process
and in each xdist worker, and sorts every failure by its cause.

A test that fails because it needs a CRDS server or reference files (CRDS's own "server
connection and cache load FAILED", a CrdsNetworkError, CrdsLookupError or CrdsDownloadError
anywhere in the exception's chain, a file missing under the CRDS cache) is counted as
**needs CRDS**; every other failure or error is a failure of the image. pytest's own skips and
xfails are reported as such. Standard library and pytest only, Python 3.7 syntax.
"""

import json
import os
import re

import pytest

CAUSE = "niriss_pipe_cause"  # a user property on the report (and in the JUnit XML)
CRDS_FATAL = "CRDS server connection and cache load FAILED"
CRDS_ERRORS = ("CrdsNetworkError", "CrdsLookupError", "CrdsDownloadError", "ServiceError",
               "CrdsRemoteContextError")
MISSING_MODULE = re.compile(r"No module named '([^']+)'")
OUTCOMES = ("passed", "needs_crds", "failed", "errors", "skipped", "xfailed", "xpassed")
RANK = {"passed": 0, "xpassed": 1, "xfailed": 2, "skipped": 3, "needs_crds": 4, "errors": 5,
        "failed": 6}


def chain(exc):
    """``exc`` and every exception it was raised from or while handling, as its traceback
    shows them (``raise ... from None`` hides the one it was handling)."""
    seen = []
    while exc is not None and all(exc is not other for other in seen):
        seen.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return seen


def first_line(text, limit=300):
    text = str(text).strip()
    return (text.splitlines()[0] if text else "")[:limit]


def crds_cause(exc, text, crds_path):
    """Why a failure needs CRDS (one line), or None when it does not."""
    for item in chain(exc):
        for cls in type(item).__mro__:
            if cls.__name__ in CRDS_ERRORS and cls.__module__.startswith("crds"):
                return f"{type(item).__name__}: {first_line(item)}"
        if isinstance(item, SystemExit) and CRDS_FATAL in text:
            return CRDS_FATAL
        filename = getattr(item, "filename", None) if isinstance(item, OSError) else None
        if filename and crds_path and str(filename).startswith(crds_path.rstrip("/") + "/"):
            return f"missing reference file {os.path.basename(str(filename))}"
    if CRDS_FATAL in text:
        return CRDS_FATAL
    return None


def report_text(report):
    sections = "".join(content for _name, content in getattr(report, "sections", []))
    return (report.longreprtext or "") + "\n" + sections


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Where the exception still exists (each worker): name a CRDS cause on the report."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.excinfo is not None:
        cause = crds_cause(call.excinfo.value, report_text(report),
                           os.environ.get("CRDS_PATH", ""))
        if cause:
            report.user_properties.append((CAUSE, cause))
            item.user_properties.append((CAUSE, cause))  # the JUnit XML takes them from here


def pytest_addoption(parser):
    parser.addoption("--niriss-pipe-results", metavar="FILE",
                     help="write every test's outcome as JSON to FILE (verify --upstream)")


class Results:
    """Every test's outcome, gathered where reports arrive (pytest's own process)."""

    def __init__(self):
        self.tests = {}  # nodeid -> {"outcome", "detail"}

    def add(self, nodeid, outcome, detail=""):
        known = self.tests.get(nodeid)
        if known is None or RANK[outcome] > RANK[known["outcome"]]:
            self.tests[nodeid] = {"outcome": outcome, "detail": detail}

    def counts(self):
        found = dict.fromkeys(OUTCOMES, 0)
        for test in self.tests.values():
            found[test["outcome"]] += 1
        return found


def classify(report):
    """(outcome, detail) of one test report, or None for a phase that says nothing."""
    cause = dict(report.user_properties).get(CAUSE)
    crash = getattr(report.longrepr, "reprcrash", None)
    message = first_line(crash.message if crash else report.longreprtext)
    if hasattr(report, "wasxfail"):
        if report.skipped:
            return "xfailed", first_line(report.wasxfail)
        if report.passed:
            return "xpassed", first_line(report.wasxfail)
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else message
        return "skipped", first_line(reason)
    if report.failed:
        if cause:
            return "needs_crds", cause
        return ("failed" if report.when == "call" else "errors"), message
    if report.when == "call":
        return "passed", ""
    return None


def collect_failure(report):
    """A module that could not be collected: its missing module named when that is why."""
    text = report.longreprtext or ""
    missing = MISSING_MODULE.search(text)
    if missing:
        return "missing module {} (No module named '{}')".format(
            missing.group(1).split(".")[0], missing.group(1))
    lines = [line for line in text.splitlines() if line.startswith("E ")]
    return first_line(lines[-1][2:] if lines else text)


class Recorder:
    def __init__(self, path):
        self.path = path
        self.results = Results()

    def pytest_runtest_logreport(self, report):
        found = classify(report)
        if found:
            self.results.add(report.nodeid, *found)

    def pytest_collectreport(self, report):
        if report.failed:
            self.results.add(report.nodeid or "<collection>", "errors", collect_failure(report))

    def pytest_sessionfinish(self, session, exitstatus):
        data = {"exitstatus": int(exitstatus), "counts": self.results.counts(),
                "tests": self.results.tests}
        with open(self.path, "w") as stream:
            json.dump(data, stream, indent=1, sort_keys=True)


def pytest_configure(config):
    path = config.getoption("--niriss-pipe-results")
    if path and not hasattr(config, "workerinput"):  # xdist workers report to the controller
        config.pluginmanager.register(Recorder(path), "niriss-pipe-recorder")
