"""The verify --upstream pytest plugin: failures sorted by cause, in a real pytest session.

The host has the real crds client, so the tests raise CRDS's own exceptions; the session is
a separate ``python -m pytest`` process with the plugin loaded as the runner loads it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from crds.core.exceptions import CrdsDownloadError, CrdsError, CrdsLookupError, CrdsNetworkError

from niriss_pipe.runtime import upstream
from niriss_pipe.runtime import upstream_plugin as plugin
from tests.helpers import ROOT


def test_crds_errors_anywhere_in_the_chain_need_crds():
    assert plugin.crds_cause(CrdsLookupError("Unknown reference type 'gain'"), "", "/crds") \
        == "CrdsLookupError: Unknown reference type 'gain'"
    try:
        try:
            raise CrdsNetworkError("connection refused")
        except CrdsNetworkError as exc:
            raise RuntimeError("the step failed") from exc
    except RuntimeError as outer:
        assert plugin.crds_cause(outer, "", "/crds").startswith("CrdsNetworkError:")
    try:
        try:
            raise CrdsDownloadError("Failed caching mapping files")
        except CrdsDownloadError:
            raise ValueError("while handling it") from None  # the cause hidden: no chain
    except ValueError as hidden:
        assert plugin.crds_cause(hidden, "", "/crds") is None


def test_crds_fatal_exit_and_missing_reference_files_need_crds():
    text = "CRDS - ERROR - (FATAL) CRDS server connection and cache load FAILED. Cannot continue"
    assert plugin.crds_cause(SystemExit(-1), text, "/crds") == plugin.CRDS_FATAL
    missing = FileNotFoundError(2, "No such file", "/crds/references/jwst/niriss/x_gain.fits")
    assert plugin.crds_cause(missing, "", "/crds") == "missing reference file x_gain.fits"


def test_other_failures_are_failures_of_the_image():
    assert plugin.crds_cause(AssertionError("35.0 != -35.0"), "", "/crds") is None
    assert plugin.crds_cause(SystemExit(1), "exit", "/crds") is None
    elsewhere = FileNotFoundError(2, "No such file", "/data/x.fits")
    assert plugin.crds_cause(elsewhere, "", "/crds") is None
    assert plugin.crds_cause(CrdsError("a bad rule"), "", "/crds") is None  # not a lookup

    class CrdsLookupError(Exception):  # the name alone is not CRDS's  # noqa: N818
        pass

    assert plugin.crds_cause(CrdsLookupError("x"), "", "/crds") is None


SESSION = '''
import pytest
from crds.core.exceptions import CrdsDownloadError, CrdsLookupError

def test_passes():
    assert 1 + 1 == 2

def test_computes_wrong():
    assert 2 * 2 == 5

def test_asks_crds():
    raise CrdsLookupError("Unknown reference type 'pastasoss'")

@pytest.fixture
def reference():
    raise CrdsDownloadError("Failed caching mapping files: server-less mode")

def test_fixture_asks_crds(reference):
    pass

@pytest.fixture
def broken():
    raise KeyError("setup of the image's own")

def test_setup_fails(broken):
    pass

def test_skipped():
    pytest.skip("needs --slow")

@pytest.mark.xfail(reason="known")
def test_xfails():
    assert False

@pytest.mark.xfail(reason="fixed since")
def test_xpasses():
    pass
'''


def run_session(tmp_path, files: dict[str, str]):
    tests = tmp_path / "pkg"
    tests.mkdir()
    for name, text in files.items():
        (tests / name).write_text(textwrap.dedent(text))
    results = tmp_path / "results.json"
    junit = tmp_path / "junit.xml"
    ini = tmp_path / "pytest.ini"
    ini.write_text(upstream.INI)  # the runner's own, not this checkout's
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CRDS_PATH": str(tmp_path / "crds")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tests), "-p", plugin.__name__, "-p",
         "no:cacheprovider", "-q", "--rootdir", str(tmp_path), "-c", str(ini),
         "--continue-on-collection-errors",
         "--niriss-pipe-results", str(results), "--junitxml", str(junit)],
        cwd=tmp_path, capture_output=True, text=True, env=env)
    assert results.is_file(), proc.stdout + proc.stderr
    return json.loads(results.read_text()), junit.read_text(), proc


def test_a_session_counts_each_outcome_by_its_cause(tmp_path):
    data, junit, proc = run_session(tmp_path, {"test_session.py": SESSION})
    assert proc.returncode == 1
    assert data["counts"] == {"passed": 1, "needs_crds": 2, "failed": 1, "errors": 1,
                              "skipped": 1, "xfailed": 1, "xpassed": 1}
    tests = {nodeid.split("::")[1]: test for nodeid, test in data["tests"].items()}
    assert tests["test_asks_crds"] == {
        "outcome": "needs_crds", "detail": "CrdsLookupError: Unknown reference type 'pastasoss'"}
    assert tests["test_fixture_asks_crds"]["outcome"] == "needs_crds"  # a setup error
    assert tests["test_computes_wrong"] == {"outcome": "failed",
                                            "detail": "assert (2 * 2) == 5"}
    assert tests["test_setup_fails"]["outcome"] == "errors"
    assert "KeyError" in tests["test_setup_fails"]["detail"]
    assert tests["test_skipped"] == {"outcome": "skipped", "detail": "Skipped: needs --slow"}
    # the cause also reaches the JUnit XML as a property of the test case
    assert f'name="{plugin.CAUSE}" value="CrdsLookupError: Unknown reference type' in junit


def test_a_module_that_cannot_be_imported_is_one_error_naming_the_module(tmp_path):
    data, _junit, _proc = run_session(tmp_path, {
        "test_needs_mock.py": "import requests_mock_not_installed\n\ndef test_x():\n    pass\n",
        "test_fine.py": "def test_y():\n    pass\n"})
    assert data["counts"]["errors"] == 1 and data["counts"]["passed"] == 1
    (nodeid, test), = [(n, t) for n, t in data["tests"].items() if t["outcome"] == "errors"]
    assert nodeid.endswith("test_needs_mock.py")
    assert test["detail"] == ("missing module requests_mock_not_installed "
                              "(No module named 'requests_mock_not_installed')")
