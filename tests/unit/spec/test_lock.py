"""Locks: inputs recorded, stale and missing locks refused before any build."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from niriss_pipe.core.errors import SpecError, UserError
from niriss_pipe.spec import lock
from niriss_pipe.spec.load import load_spec
from tests.helpers import ROOT


@pytest.fixture
def spec_copy(tmp_path):
    shutil.copy(ROOT / "images/default.yaml", tmp_path / "default.yaml")
    (tmp_path / "locks").mkdir()
    shutil.copy(ROOT / "images/locks/default.txt", tmp_path / "locks/default.txt")
    return load_spec(tmp_path / "default.yaml")


def test_shipped_locks_are_fresh_and_pin_jwst_and_crds():
    for name in ("default", "jwst_1464", "jwst_1166"):
        spec = load_spec(ROOT / "images" / f"{name}.yaml")
        path = lock.check(spec)
        pins = lock.pinned(path)
        assert pins["jwst"] == spec.jwst.version and "crds" in pins and "numpy" in pins
        assert path.read_text().count("--hash=sha256:") >= len(pins)


def test_inputs_name_python_platform_and_day():
    spec = load_spec(ROOT / "images/jwst_1166.yaml")
    got = lock.inputs(spec, "2023-10-20")
    assert got.requirements == ("jwst==1.12.5",)
    assert (got.python, got.platform) == ("3.11", "x86_64-manylinux_2_36")


def test_missing_lock_is_refused_with_the_command(spec_copy):
    (spec_copy.path.parent / "locks/default.txt").unlink()
    with pytest.raises(SpecError) as info:
        lock.check(spec_copy)
    text = " ".join(info.value.paragraph().split())
    assert "has no lock file" in text and "python build.py lock" in text


@pytest.mark.parametrize("change", [
    {"pip_packages": ("astroquery==0.4.7",)},
    {"python_version": "3.13"},
])
def test_stale_lock_is_refused(spec_copy, change):
    if "python_version" in change:
        change = {**change, "base": dataclasses.replace(spec_copy.base, suite="trixie")}
    with pytest.raises(SpecError, match="stale"):
        lock.check(dataclasses.replace(spec_copy, **change))


def test_lock_without_recorded_inputs_is_stale(spec_copy):
    path = spec_copy.path.parent / "locks/default.txt"
    path.write_text("\n".join(line for line in path.read_text().splitlines()
                              if not line.startswith("# inputs:")))
    with pytest.raises(SpecError, match="recorded nothing"):
        lock.check(spec_copy)


def test_cutoff_needs_a_catalogued_release(spec_copy):
    unknown = dataclasses.replace(spec_copy, jwst=dataclasses.replace(spec_copy.jwst,
                                                                      version="3.1.0"))
    with pytest.raises(SpecError, match="--exclude-newer"):
        lock.cutoff(unknown)


def test_lock_edited_by_hand_is_refused(spec_copy):
    path = spec_copy.path.parent / "locks/default.txt"
    text = path.read_text()
    path.write_text(text.replace("numpy==2.4.6", "numpy==2.4.5"))
    with pytest.raises(SpecError, match="no longer matches the digest") as info:
        lock.check(spec_copy)
    assert f"python build.py lock {spec_copy.path}" in info.value.paragraph()


def test_a_removed_package_is_caught_by_the_body_digest(spec_copy):
    path = spec_copy.path.parent / "locks/default.txt"
    header, body, digest = lock.split_lock(path.read_text())
    assert digest == lock.body_digest(body)
    block = body.split("\n", 1)[1]  # drop the first package's pin line
    path.write_text(header + block)
    with pytest.raises(SpecError, match="edited by hand"):
        lock.check(spec_copy)


def test_lock_without_body_digest_is_refused(spec_copy):
    path = spec_copy.path.parent / "locks/default.txt"
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if not line.startswith("# body:")))
    with pytest.raises(SpecError, match="records no digest"):
        lock.check(spec_copy)


def _git(*args, cwd):
    import subprocess

    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
                        "HOME": str(cwd), "PATH": "/usr/bin:/bin"})


@pytest.fixture
def repository(tmp_path):
    """A local repository with a lightweight tag, an annotated tag and a branch."""
    work = tmp_path / "work"
    work.mkdir()
    _git("init", "-q", "-b", "trunk-x", cwd=work)
    (work / "README").write_text("one\n")
    _git("add", "README", cwd=work)
    _git("commit", "-q", "-m", "one", cwd=work)
    _git("tag", "1.0.0", cwd=work)
    (work / "README").write_text("two\n")
    _git("commit", "-q", "-am", "two", cwd=work)
    _git("tag", "-a", "-m", "release 1.1.0", "1.1.0", cwd=work)
    _git("branch", "release-branch", cwd=work)
    return work


def _rev(work, ref):
    import subprocess

    return subprocess.run(["git", "rev-parse", f"{ref}^{{commit}}"], cwd=work, check=True,
                          capture_output=True, text=True).stdout.strip()


def test_git_tags_resolve_to_their_commit(repository):
    url = f"file://{repository}"
    assert lock.resolve_git_ref(url, "1.0.0") == (_rev(repository, "1.0.0"), "tag 1.0.0")
    # An annotated tag names its tag object; the lock records the commit it points at.
    commit, how = lock.resolve_git_ref(url, "1.1.0")
    assert commit == _rev(repository, "1.1.0") and how == "tag 1.1.0"


def test_git_branch_or_unknown_ref_is_refused(repository):
    url = f"file://{repository}"
    with pytest.raises(UserError, match="is a branch"):
        lock.resolve_git_ref(url, "release-branch")
    with pytest.raises(UserError, match="has no tag 9.9.9"):
        lock.resolve_git_ref(url, "9.9.9")
    full = "0123456789abcdef0123456789abcdef01234567"
    assert lock.resolve_git_ref(url, full) == (full, "a commit")


def test_unreachable_git_repository_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot ask"):
        lock.resolve_git_ref(f"file://{tmp_path}/nothing-here", "1.0.0")


def test_git_source_lock_inputs_pin_the_commit():
    spec = load_spec(ROOT / "images/jwst_0579.yaml")
    commit = "f" * 40
    got = lock.inputs(spec, "2020-01-01", commit)
    assert got.requirements[0] == f"jwst @ git+https://github.com/spacetelescope/jwst@{commit}"
    assert got.git == {"url": "https://github.com/spacetelescope/jwst", "ref": "0.14.2",
                       "commit": commit}
    assert '"commit": "' + commit in got.as_json()
