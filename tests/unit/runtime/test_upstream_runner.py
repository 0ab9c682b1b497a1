"""The verify --upstream runner's choices, on a stand-in site-packages (no jwst here)."""

from __future__ import annotations

import ast
import json

import pytest

from niriss_pipe.runtime import upstream


@pytest.fixture
def site(tmp_path):
    """jwst with detector1 step modules (linearity ships tests, ipc ships none), AMI and
    WFSS modules; stdatamodels with tests; stcal without."""
    files = ["jwst/linearity/tests/test_linearity.py", "jwst/ipc/ipc_step.py",
             "jwst/ami/tests/test_ami.py", "jwst/extract_2d/tests/test_grisms.py",
             "jwst/assign_wcs/tests/test_niriss.py", "jwst/assign_wcs/tests/test_nircam.py",
             "jwst/regtest/test_niriss_image.py", "stcal/linearity/linearity.py",
             "stdatamodels/jwst/datamodels/tests/test_models.py"]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    return tmp_path


def test_quick_is_the_detector1_modules_and_the_niriss_modes(site):
    chosen, absent = upstream.suite_paths("quick", site, detector1=["jwst/linearity",
                                                                    "jwst/ipc"])
    assert chosen == {"jwst": ["jwst/linearity", "jwst/ami", "jwst/extract_2d",
                               "jwst/assign_wcs/tests/test_niriss.py"]}
    assert "jwst/ipc" in absent and "jwst/wfss_contam" in absent  # named, not dropped silently
    assert "jwst/assign_wcs/tests/test_nircam.py" not in absent + chosen["jwst"]


def test_full_is_every_package_that_ships_tests(site):
    assert upstream.suite_paths("full", site) == ({"jwst": ["jwst"],
                                                   "stdatamodels": ["stdatamodels"]}, [])
    assert upstream.shipped(site) == ["jwst", "stdatamodels"]


def test_only_names_modules_and_refuses_one_without_tests(site):
    assert upstream.suite_paths("quick", site, only=("jwst.linearity", "stdatamodels")) == (
        {"jwst": ["jwst/linearity"], "stdatamodels": ["stdatamodels"]}, [])
    with pytest.raises(ValueError, match="jwst.ipc ships no tests in this image"):
        upstream.suite_paths("quick", site, only=("jwst.ipc",))
    with pytest.raises(ValueError, match="ships no tests"):
        upstream.suite_paths("quick", site, only=("jwst.no_such_module",))


LOCK = """# niriss-pipe test lock: do not edit
pytest==9.1.1 \\
    --hash=sha256:aaaa
requests-mock==1.12.1 \\
    --hash=sha256:bbbb
ci_watson==0.11.0 \\
    --hash=sha256:cccc
"""


def test_missing_test_dependencies_are_named_with_their_locked_versions():
    have = {"pytest": "9.1.1", "ci-watson": "0.10.0"}
    assert upstream.missing_dependencies(LOCK, have) == [
        ("ci-watson", "0.11.0", "0.10.0"), ("requests-mock", "1.12.1", None)]
    assert upstream.missing_dependencies(LOCK, {"pytest": "9.1.1", "requests-mock": "1.12.1",
                                                "ci-watson": "0.11.0"}) == []


def test_a_test_image_missing_a_dependency_runs_no_test(tmp_path):
    lock = tmp_path / "test.lock"
    lock.write_text(LOCK.replace("requests-mock", "no-such-distribution-anywhere"))
    out = tmp_path / "out"
    out.mkdir()
    assert upstream.run("quick", str(out), lock=str(lock)) == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["packages"] == {} and summary["exit"] == 3
    names = [m["name"] for m in summary["missing_dependencies"]]
    assert "no-such-distribution-anywhere" in names


def test_offline_crds_gives_an_empty_offline_cache_unless_the_image_holds_one(tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("CRDS_PATH", str(tmp_path / "empty"))
    monkeypatch.setenv("CRDS_CONTEXT", "jwst_1584.pmap")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    path = upstream.offline_crds(str(scratch))
    config = ast.literal_eval((tmp_path / "scratch/crds/config/jwst/server_config").read_text())
    assert path == str(scratch / "crds")
    assert config["operational_context"] == "jwst_1584.pmap" and config["mappings"] == []
    assert config["force_remote_mode"] is False
    baked = tmp_path / "baked"
    (baked / "config" / "jwst").mkdir(parents=True)
    (baked / "config" / "jwst" / "server_config").write_text("{}")
    monkeypatch.setenv("CRDS_PATH", str(baked))
    assert upstream.offline_crds(str(tmp_path / "unused")) == str(baked)


def test_the_pytest_command_uses_the_plugin_and_keeps_going(tmp_path):
    command = upstream.pytest_command(["jwst/linearity"], "/out", "jwst", "/tmp/p.ini",
                                      "/site", 2)
    assert command[1:4] == ["-m", "pytest", "jwst/linearity"]
    assert ["-p", upstream.PLUGIN] == command[4:6]
    assert "--continue-on-collection-errors" in command
    assert command[command.index("--junitxml") + 1] == "/out/jwst.xml"
    assert command[command.index("--niriss-pipe-results") + 1] == "/out/jwst.results.json"


def test_steps_a_default_run_skips_are_left_to_the_full_suite():
    class Step:
        spec = "\n    skip = boolean(default=False)\n    output_ext = string(default='.fits')\n"

    class Optional(Step):
        spec = "\n    skip = boolean(default=True) # off unless asked for\n"

    class Inherits(Optional):
        spec = "\n    rejection_threshold = float(default=4.0)\n"

    class Plain:
        spec = None

    assert [upstream.skipped_by_default(k) for k in (Step, Optional, Inherits, Plain)] == [
        False, True, True, False]


def test_tests_that_assert_wall_clock_time_are_listed_not_run(tmp_path):
    name = "jwst/jump/tests/test_detect_jumps.py"
    (tmp_path / name).parent.mkdir(parents=True)
    (tmp_path / name).write_text("")
    found = upstream.wall_clock_tests(["jwst/jump", "jwst/linearity"], str(tmp_path))
    assert found == [f"{name}::test_exec_time_0_crs", f"{name}::test_exec_time_many_crs"]
    assert upstream.wall_clock_tests(["jwst/linearity"], str(tmp_path)) == []
    command = upstream.pytest_command(["jwst/jump"], "/out", "jwst", "/ini", str(tmp_path), 1,
                                      found)
    assert command[command.index("--deselect") + 1] == found[0]
