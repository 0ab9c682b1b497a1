"""verify --upstream on the host: the runner's summary read, judged, reported and kept; the
test lock matched to the image (no engine: values stand in for it)."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ElementTree

import pytest

from niriss_pipe.core.errors import UserError, VerificationError
from niriss_pipe.engine.values import ImageInfo
from niriss_pipe.provenance import upstream
from niriss_pipe.provenance.verify import Check, VerifyReport, raise_for, verified_line
from niriss_pipe.spec import lock as locking
from tests.helpers import ROOT


def summary(failed=0, missing=()):
    tests = {"jwst/linearity/tests/test_linearity.py::test_nolincorr":
             {"outcome": "failed", "detail": "assert np.float32(-35.0) == 35"}} if failed else {}
    tests.update({f"jwst/dq_init/tests/test_dq_init.py::test_{n}": {
        "outcome": "needs_crds", "detail": "CrdsDownloadError: Failed caching mapping files"}
        for n in range(3)})
    tests["jwst/ami/tests/test_ami.py::test_fit"] = {"outcome": "passed", "detail": ""}
    return {"suite": "quick", "versions": {"jwst": "3.0.0"}, "absent": ["jwst/pastasoss"],
            "missing_dependencies": list(missing),
            "packages": {"jwst": {"passed": 640, "needs_crds": 3, "failed": failed, "errors": 0,
                                  "skipped": 1, "xfailed": 2, "xpassed": 0, "seconds": 412.3,
                                  "tests": tests}} if not missing else {}}


def test_a_clean_run_is_ok_and_its_json_has_the_counts_per_package():
    result = upstream.UpstreamResult(summary(), None, None)
    assert result.ok and result.failures() == []
    data = result.as_json()
    jwst = data["packages"]["jwst"]
    assert {k: jwst[k] for k in ("passed", "needs_crds", "failed", "errors")} == {
        "passed": 640, "needs_crds": 3, "failed": 0, "errors": 0}
    assert jwst["version"] == "3.0.0" and jwst["seconds"] == 412.3
    assert len(jwst["needs_crds_tests"]) == 3
    assert data["passed"] == 640 and data["ok"] is True


def test_a_failure_fails_and_is_named():
    result = upstream.UpstreamResult(summary(failed=1), None, None)
    assert not result.ok
    assert result.failures() == ["jwst/linearity/tests/test_linearity.py::test_nolincorr: "
                                 "assert np.float32(-35.0) == 35"]
    lines = upstream.report_lines(result)
    assert lines[1].split() == ["jwst", "3.0.0", "640", "3", "1", "0", "1", "2", "412", "s"]
    assert any(line.strip().startswith("FAILED jwst/linearity/tests/test_linearity.py::"
                                       "test_nolincorr") for line in lines)
    assert any("3 tests need CRDS" in line for line in lines)
    assert any("no tests shipped in this release for: jwst/pastasoss" in line for line in lines)


def test_missing_test_dependencies_are_one_line_not_failures():
    missing = [{"name": "requests-mock", "locked": "1.12.1", "installed": None}]
    result = upstream.UpstreamResult(summary(missing=missing), None, None)
    assert not result.ok and result.failures() == []
    assert upstream.report_lines(result) == [
        "    the test image lacks test dependencies of its test lock: requests-mock (locked "
        "1.12.1, missing); no test was run"]


def test_no_package_with_tests_is_not_a_pass():
    empty = {**summary(), "packages": {}}
    assert not upstream.UpstreamResult(empty, None, None).ok


def test_junit_files_merge_into_one_testsuites(tmp_path):
    (tmp_path / "jwst.xml").write_text('<testsuites><testsuite name="jwst" tests="2">'
                                       '<testcase name="a"/><testcase name="b"/></testsuite>'
                                       '</testsuites>')
    (tmp_path / "stdatamodels.xml").write_text('<testsuite name="stdatamodels" tests="1">'
                                               '<testcase name="c"/></testsuite>')
    merged = ElementTree.fromstring(upstream.merge_junit(sorted(tmp_path.glob("*.xml"))))
    assert merged.tag == "testsuites"
    assert [s.get("name") for s in merged] == ["jwst", "stdatamodels"]
    assert upstream.merge_junit([]) is None


def image(labels: dict) -> ImageInfo:
    return ImageInfo(id="sha256:" + "a" * 64, tags=("niriss-pipe:jwst_1584",), labels=labels,
                     env=(), entrypoint=(), cmd=())


def test_the_test_lock_must_be_made_for_the_lock_the_image_carries(tmp_path):
    shutil.copy(ROOT / "images/default.yaml", tmp_path / "default.yaml")
    (tmp_path / "locks").mkdir()
    for name in ("default.txt", "default.test.txt"):
        shutil.copy(ROOT / "images/locks" / name, tmp_path / "locks" / name)
    digest = locking.digest(tmp_path / "locks/default.txt")
    good = image({"io.niriss-pipe.spec": "default.yaml", "io.niriss-pipe.lock.digest": digest})
    found = upstream.find_test_lock(good, "niriss-pipe:jwst_1584", tmp_path / "default.yaml")
    assert found == tmp_path / "locks/default.test.txt"
    other = image({"io.niriss-pipe.spec": "default.yaml",
                   "io.niriss-pipe.lock.digest": "sha256:" + "0" * 64})
    with pytest.raises(UserError, match="was made for the lock sha256:") as caught:
        upstream.find_test_lock(other, "niriss-pipe:jwst_1584", tmp_path / "default.yaml")
    assert "built from the lock sha256:000" in caught.value.what
    with pytest.raises(UserError, match="its test lock cannot be found"):
        upstream.find_test_lock(good, "niriss-pipe:jwst_1584", tmp_path / "nope.yaml")


def test_verify_raises_one_paragraph_naming_every_failed_check():
    report = VerifyReport("niriss-pipe:x", "sha256:" + "a" * 64, "default.yaml", [
        Check("lock", True, "ok"), Check("environment", True, "ok"),
        Check("context", True, "not run", ran=False),
        Check("upstream", False, "1 failed", "its packages' own tests fail (1 failed): t")])
    with pytest.raises(VerificationError) as caught:
        raise_for(report)
    assert caught.value.what.startswith("niriss-pipe:x matches what it was built from, but: "
                                        "its packages' own tests fail")
    report.checks[-1] = Check("upstream", True, "ok")
    raise_for(report)
    assert verified_line(report) == "niriss-pipe:x: verified (lock, environment, upstream)"
    report.checks.append(Check("environment", False, "six missing", "six missing"))
    with pytest.raises(VerificationError, match="does not match what it was built from"):
        raise_for(report)
