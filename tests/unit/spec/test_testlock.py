"""Test locks: the shipped ones match their specs' locks; stale and edited ones are refused;
resolution is checked with uv's output stood in (no network here)."""

from __future__ import annotations

import shutil

import pytest

from niriss_pipe.core.errors import SpecError
from niriss_pipe.runtime.contract import lock_pins
from niriss_pipe.spec import lock as locking
from niriss_pipe.spec import testlock
from niriss_pipe.spec.load import load_spec
from tests.helpers import ROOT

SHIPPED = ("default", "jwst_1464", "jwst_1166")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_test_locks_are_current_and_hold_only_what_the_image_lacks(name):
    spec = load_spec(ROOT / "images" / f"{name}.yaml")
    path = testlock.check(spec)
    assert path == ROOT / "images" / "locks" / f"{name}.test.txt"
    runtime = locking.pinned(locking.lock_path(spec))
    tests = lock_pins(path.read_text())
    assert testlock.recorded(path)["runtime_lock"] == locking.digest(locking.lock_path(spec))
    assert not set(tests) & set(runtime)  # the image's own packages are never replaced
    assert not set(tests) & testlock.SEEDED
    assert {"pytest", "ci-watson", "requests-mock", "pytest-xdist"} <= set(tests)
    assert f"jwst[test]=={runtime['jwst']}" in testlock.recorded(path)["requirements"]
    text = path.read_text()
    assert text.count("--hash=sha256:") >= len(tests)  # every pin hashed


def copy_spec(tmp_path, name="default"):
    shutil.copy(ROOT / "images" / f"{name}.yaml", tmp_path / f"{name}.yaml")
    (tmp_path / "locks").mkdir()
    for suffix in (".txt", ".test.txt"):
        shutil.copy(ROOT / "images" / "locks" / f"{name}{suffix}",
                    tmp_path / "locks" / f"{name}{suffix}")
    return load_spec(tmp_path / f"{name}.yaml")


def test_a_missing_test_lock_names_the_command_that_writes_it(tmp_path):
    spec = copy_spec(tmp_path)
    (tmp_path / "locks" / "default.test.txt").unlink()
    with pytest.raises(SpecError, match="has no test lock") as caught:
        testlock.check(spec)
    assert f"lock {spec.path}" in caught.value.fix


def test_an_edited_test_lock_is_refused(tmp_path):
    spec = copy_spec(tmp_path)
    path = tmp_path / "locks" / "default.test.txt"
    path.write_text(path.read_text().replace("pytest==9.1.1", "pytest==9.1.0"))
    with pytest.raises(SpecError, match="changed after it was resolved"):
        testlock.check(spec)


def test_a_new_lock_makes_the_test_lock_stale(tmp_path):
    spec = copy_spec(tmp_path)
    lock = tmp_path / "locks" / "default.txt"
    header, body, _ = locking.split_lock(lock.read_text())
    body += "# a comment added\n"  # another lock file (same pins), its digest made right
    lock.write_text(locking.BODY_RE.sub(f"# body: sha256:{locking.body_digest(body)}\n",
                                        header) + body)
    locking.check(spec)  # the lock itself is valid
    with pytest.raises(SpecError, match="was made for other inputs"):
        testlock.check(spec)


UV_OUTPUT = """asdf==5.3.1 \\
    --hash=sha256:1111
ci-watson==0.11.0 \\
    --hash=sha256:2222 \\
    --hash=sha256:3333
pytest==9.1.1 \\
    --hash=sha256:4444
setuptools==80.0.0 \\
    --hash=sha256:5555
"""


def test_only_what_the_image_lacks_is_kept_from_the_resolution():
    kept = testlock.absent_from(UV_OUTPUT, {"asdf": "5.3.1"})
    assert kept == ("ci-watson==0.11.0 \\\n    --hash=sha256:2222 \\\n    --hash=sha256:3333\n"
                    "pytest==9.1.1 \\\n    --hash=sha256:4444\n")


def test_make_test_lock_writes_a_header_its_check_accepts(tmp_path, monkeypatch):
    spec = copy_spec(tmp_path)
    (tmp_path / "locks" / "default.test.txt").unlink()
    seen = {}

    def fake_compile(want, runtime):
        seen["want"], seen["runtime"] = want, runtime
        return UV_OUTPUT

    monkeypatch.setattr(testlock, "_compile", fake_compile)
    path, written = testlock.make_test_lock(spec)
    assert written and path == tmp_path / "locks" / "default.test.txt"
    assert testlock.check(spec) == path
    assert seen["want"].exclude_newer == "2026-07-15" and seen["want"].python == "3.11"
    assert seen["runtime"]["asdf"] == "5.3.1"  # the lock's pins are the constraints
    assert lock_pins(path.read_text()) == {"ci-watson": "0.11.0", "pytest": "9.1.1"}
    assert testlock.make_test_lock(spec) == (path, False)  # up to date: kept


def test_a_git_jwst_is_tested_at_its_locked_commit():
    spec = load_spec(ROOT / "images" / "jwst_0579.yaml")
    text = ('# inputs: {"git": {"commit": "' + "a" * 40 + '", "ref": "0.14.2", "url": '
            '"https://github.com/spacetelescope/jwst"}}\nstcal==1.0.0 \\\n')
    requirements = testlock.requirements_for(spec, text)
    assert requirements[0] == f"jwst[test] @ git+https://github.com/spacetelescope/jwst@{'a' * 40}"
    assert "stcal[test]==1.0.0" in requirements and requirements[-1] == "pytest-xdist"
