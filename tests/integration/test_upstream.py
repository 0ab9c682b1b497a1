"""verify --upstream: the packages' own unit tests in each image, offline, in a derived test
image built from the committed test lock; the failures the image causes told apart from
the tests that need a CRDS server.

The quick suite runs once per image (the default and the 1.12.5 image, whose compiled
extensions were built from source here); its counts must equal the ones recorded in
upstream_counts.json for the image's lock, so a count that moves from run to run fails.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import xml.etree.ElementTree as ElementTree
from contextlib import contextmanager
from pathlib import Path

import pytest

from niriss_pipe.runtime import contract
from niriss_pipe.spec import lock as locking
from tests.helpers import ROOT, cli, docker, remove_repository

pytestmark = pytest.mark.engine

COUNTS = Path(__file__).with_name("upstream_counts.json")
SITE = "/opt/env/lib/python3.11/site-packages"
KEYS = ("passed", "needs_crds", "failed", "errors", "skipped", "xfailed", "xpassed")


def verify_json(image: str, *args: str):
    proc = cli("verify", image, "--no-selftest", "--json", *args, check=False)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return proc, json.loads(proc.stdout)


@contextmanager
def derived(engine, repository: str, dockerfile: str):
    """An image built from ``dockerfile``; every tag of its repository (its test images
    too) removed after."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile.encode())
        tar.addfile(info, io.BytesIO(dockerfile.encode()))
    buffer.seek(0)
    tag = f"{repository}:derived"
    try:
        engine.client.images.build(fileobj=buffer, custom_context=True, tag=tag, rm=True,
                                   forcerm=True, pull=False)
        yield tag
    finally:
        remove_repository(repository)


def quick_suite_passes(image_id: str, spec: str, tmp_path: Path, engine) -> dict:
    junit = tmp_path / "junit.xml"
    proc, data = verify_json(image_id, "--upstream", "--suite", "quick", "--junit", str(junit))
    upstream = data["upstream"]
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert data["verified"] and upstream["ok"] and upstream["missing_dependencies"] == []
    jwst = upstream["packages"]["jwst"]
    assert jwst["failed"] == jwst["errors"] == 0
    assert jwst["passed"] > 150 and jwst["needs_crds"] > 0
    # every test counted apart needs CRDS by CRDS's own error
    assert all(re.match(r"(CrdsDownloadError|CrdsLookupError|CrdsNetworkError|CRDS server "
                        r"connection|missing reference)", detail)
               for detail in jwst["needs_crds_tests"].values())
    # stable: the counts recorded for this lock (a test that flips fails here)
    lock = locking.digest(ROOT / "images" / "locks" / spec.replace(".yaml", ".txt"))
    recorded = json.loads(COUNTS.read_text())[spec]
    assert recorded["lock"] == lock, f"{COUNTS} was recorded for another lock of {spec}"
    assert {k: jwst[k] for k in KEYS} == recorded["jwst"], (
        f"counts moved from those recorded in {COUNTS}: {({k: jwst[k] for k in KEYS})}")
    # the JUnit XML holds every test the summary counts, kept beside the build record too
    cases = ElementTree.parse(junit).getroot().iter("testcase")
    assert len(list(cases)) == sum(jwst[k] for k in KEYS)
    assert Path(upstream["summary"]).is_file() and Path(upstream["summary"]).name.endswith(
        ".upstream-quick.json")
    kept = json.loads(Path(upstream["summary"]).read_text())
    assert kept["network_interfaces"] == ["lo"]  # the tests ran with --network none
    # the image itself is unchanged: same id, no test files; the test image is another one
    assert engine.image_id(image_id) is not None
    listed = docker("run", "--rm", "--network", "none", image_id, "sh", "-c",
                    f"ls {contract.TEST_SITE} 2>&1 || true").stdout
    assert "No such file" in listed
    tests = engine.images_with_label(f"{contract.LABEL_NS}.{contract.TEST_OF}="
                                     f"{engine.image_id(image_id)}")
    assert tests and all(t.id != engine.image_id(image_id) for t in tests)
    return jwst


def test_default_image_passes_the_quick_suite_offline(default_image_id, engine, tmp_path):
    jwst = quick_suite_passes(default_image_id, "default.yaml", tmp_path, engine)
    assert jwst["version"] == "3.0.0"


def test_era_image_built_from_sdists_passes_the_quick_suite_offline(era_image_id, engine,
                                                                    tmp_path):
    jwst = quick_suite_passes(era_image_id, "jwst_1166.yaml", tmp_path, engine)
    assert jwst["version"] == "1.12.5"


# stcal's linearity polynomial (Horner's method): each coefficient subtracted, not added.
ALTERED = ("RUN sed -i 's/        result += coeffs\\[j\\]/        result -= coeffs[j]/' "
           f"{SITE}/stcal/linearity/linearity.py && grep -q 'result -= coeffs\\[j\\]' "
           f"{SITE}/stcal/linearity/linearity.py && rm -rf {SITE}/stcal/linearity/__pycache__")


def test_an_altered_numerical_routine_fails_naming_the_tests(default_image_id, engine):
    dockerfile = f"FROM {engine.image_id(default_image_id)}\nUSER root\n{ALTERED}\nUSER jwst\n"
    with derived(engine, "niriss-pipe-upstream-altered", dockerfile) as tag:
        proc, data = verify_json(tag, "--upstream", "--only", "jwst.linearity")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    jwst = data["upstream"]["packages"]["jwst"]
    assert set(jwst["failed_tests"]) == {
        "jwst/linearity/tests/test_linearity.py::test_coeff_dq",
        "jwst/linearity/tests/test_linearity.py::test_invlin_corr",
        "jwst/linearity/tests/test_linearity.py::test_nolincorr"}
    assert jwst["failed_tests"]["jwst/linearity/tests/test_linearity.py::test_nolincorr"] == \
        "assert np.float32(-35.0) == 35"
    assert jwst["errors"] == 0 and jwst["passed"] > 0  # the other linearity tests still pass
    checks = {c["name"]: c["ok"] for c in data["checks"]}
    assert checks["environment"] is True  # same versions: only the tests see the change
    message = " ".join(proc.stderr.split())
    assert "matches what it was built from, but: its packages' own tests fail" in message
    assert "FAILED jwst/linearity/tests/test_linearity.py::test_nolincorr" in proc.stderr


def test_a_missing_test_dependency_is_named_not_hundreds_of_failures(default_image_id, engine):
    image_id = engine.image_id(default_image_id)
    label = f"{contract.LABEL_NS}.{contract.TEST_OF}={image_id}"
    if not engine.images_with_label(label):  # this module's quick run makes it; alone, make it
        verify_json(default_image_id, "--upstream", "--only", "jwst.dq_init")
    test_image = engine.images_with_label(label)[0].id
    dockerfile = (f"FROM {test_image}\nUSER root\nRUN rm -rf {contract.TEST_SITE}/requests_mock "
                  f"{contract.TEST_SITE}/requests_mock-*.dist-info\nUSER jwst\n")
    with derived(engine, "niriss-pipe-upstream-nomock", dockerfile) as tag:
        proc, data = verify_json(tag, "--upstream", "--suite", "quick")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    upstream = data["upstream"]
    assert upstream["missing_dependencies"] == [
        {"name": "requests-mock", "locked": "1.12.1", "installed": None}]
    assert upstream["packages"] == {} and upstream["failed"] == upstream["errors"] == 0
    assert "FAILED" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert "test dependencies missing from the test image: requests-mock; no test ran" in message
    # the environment check of a test image counts its test lock: it names the package too
    assert "requests-mock missing (locked 1.12.1)" in message
