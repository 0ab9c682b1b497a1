"""Git sources: the commit's date and requirements read from a real repository (file://, made
here with git), the day they move the lock to, and a lock that installs the commit apart."""

from __future__ import annotations

import datetime as dt
import os
import subprocess

import pytest
import yaml

from niriss_pipe.render import dockerfile as rendering
from niriss_pipe.render import names
from niriss_pipe.spec import asof, lock
from niriss_pipe.spec.gitsource import (
    fetch_commit,
    pyproject_requirements,
    setup_cfg_requirements,
)
from niriss_pipe.spec.load import load_spec

PYPROJECT = """[project]
name = "jwst"
dependencies = ["numpy>=2.0", "stcal>=1.19.1,<2", "tomli; python_version < '3.11'",
                "pytest; extra == 'test'"]
"""


def git(cwd, *args, date="2026-06-23T12:00:00Z"):
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date,
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q")
    (work / "pyproject.toml").write_text(PYPROJECT)
    git(work, "add", "-A")
    git(work, "commit", "-qm", "release")
    git(work, "tag", "-a", "3.0.0", "-m", "3.0.0")
    bare = tmp_path / "jwst.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    return work, f"file://{bare}", git(work, "rev-parse", "HEAD")


def test_fetch_commit_reads_date_and_requirements(repo):
    _, url, commit = repo
    facts = fetch_commit(url, commit, "3.0.0")
    assert facts.date == dt.date(2026, 6, 23) and facts.source == "pyproject.toml"
    assert facts.requirements[:2] == ("numpy>=2.0", "stcal>=1.19.1,<2")
    assert fetch_commit(url, commit, commit).commit == commit  # by commit, no tag


def test_setup_cfg_and_dynamic_dependencies():
    assert setup_cfg_requirements("[options]\ninstall_requires =\n    numpy>=1.16 # x\n"
                                  "    astropy\n") == ["numpy>=1.16", "astropy"]
    assert setup_cfg_requirements("[metadata]\nname = x\n") is None
    assert pyproject_requirements('[project]\nname = "x"\ndynamic = ["dependencies"]\n') is None


def wheel(name, version, day, tag="py3-none-any", **extra):
    return {"filename": f"{name}-{version}-{tag}.whl", "upload-time": f"{day}T10:00:00Z",
            **extra}


FILES = {
    "numpy": [wheel("numpy", "1.26.0", "2023-09-16", "cp311-cp311-manylinux_2_17_x86_64"),
              wheel("numpy", "2.0.0", "2024-06-16", "cp311-cp311-manylinux_2_17_x86_64")],
    "stcal": [wheel("stcal", "1.19.0", "2026-05-01"),
              wheel("stcal", "1.19.1", "2026-07-01", "cp311-cp311-macosx_11_0_arm64"),
              {"filename": "stcal-1.19.1.tar.gz", "upload-time": "2026-07-02T00:00:00Z"},
              wheel("stcal", "1.19.2", "2026-07-05", "cp311-cp311-manylinux_2_17_x86_64"),
              wheel("stcal", "1.20.0rc1", "2026-06-01")],
    "tomli": [wheel("tomli", "2.9.0", "2026-12-01")],
}


def test_the_day_moves_only_as_far_as_the_requirements_need():
    day, moved, unknown = asof.resolve_day(dt.date(2026, 6, 23), (
        "numpy>=2.0", "stcal>=1.19.1,<2", "tomli; python_version < '3.11'",
        "pytest; extra == 'test'"), "3.11", FILES.get)
    # stcal 1.19.1's first file that installs on 3.11 Linux is its sdist (the macOS wheel
    # does not count); the prerelease does not satisfy; tomli and pytest do not apply.
    assert [(n.requirement, n.version, n.day) for n in moved] == [
        ("stcal<2,>=1.19.1", "1.19.1", dt.date(2026, 7, 2))]
    assert day == "2026-07-03" and unknown == []


def test_requires_python_and_yanked_files_do_not_count():
    files = [wheel("x", "1.0", "2026-01-01", **{"requires-python": ">=3.12"}),
             wheel("x", "1.1", "2026-02-01", yanked=True), wheel("x", "1.2", "2026-03-01")]
    day, moved, _ = asof.resolve_day(dt.date(2025, 1, 1), ("x>=1.0",), "3.11",
                                     {"x": files}.get)
    assert moved[0].version == "1.2" and day == "2026-03-02"
    _, moved, unknown = asof.resolve_day(dt.date(2025, 1, 1), ("y>=1",), "3.11", {}.get)
    assert moved == [] and unknown == ["y>=1"]


def git_spec(tmp_path, url):
    path = tmp_path / "gitref.yaml"
    path.write_text(yaml.safe_dump({
        "name": "niriss-pipe-gitref", "crds": {"context": "jwst_1584.pmap"},
        "jwst": {"git": url, "ref": "3.0.0"}, "python": {"version": "3.11", "manager": "venv"},
        "base": {"suite": "bookworm"}}))
    return load_spec(path)


def test_lock_of_a_git_source_pins_the_commit_and_keeps_it_when_the_tag_moves(
        repo, tmp_path, monkeypatch):
    work, url, commit = repo
    asked = []

    def compile_(want):
        asked.append(want)
        return (f"jwst @ {want.requirements[0].split(' @ ', 1)[1]}\n"
                "numpy==2.0.0 \\\n    --hash=sha256:" + "0" * 64 + "\n")

    monkeypatch.setattr(lock, "_compile", compile_)
    monkeypatch.setattr(asof, "project_files", FILES.get)
    spec = git_spec(tmp_path, url)
    path, written = lock.make_lock(spec)
    text = path.read_text()
    assert written and lock.locked_commit(spec) == commit
    assert asked[0].exclude_newer == "2026-07-03"  # moved by stcal, as above
    _, body, _ = lock.split_lock(text)
    assert "jwst @" not in body and "numpy==2.0.0" in body  # pip --require-hashes takes it
    assert lock.git_requirement(text) == f"jwst @ git+{url}@{commit}"
    lock.check(spec)

    (work / "CHANGES").write_text("moved")  # the tag moves to a new commit
    git(work, "add", "-A")
    git(work, "commit", "-qm", "after")
    git(work, "tag", "-f", "-a", "3.0.0", "-m", "moved")
    git(work, "push", "-q", "--force", url, "HEAD:refs/heads/main", "refs/tags/3.0.0")

    class Said:
        def __init__(self):
            self.lines = []

        def say(self, line):
            self.lines.append(line)

        warn = say

    said = Said()
    path, written = lock.make_lock(spec, reporter=said)
    assert not written and lock.locked_commit(spec) == commit and len(asked) == 1
    assert any("the tag moved" in line and commit[:12] in line for line in said.lines)
    dockerfile = rendering.render(spec, commit=lock.locked_commit(spec))
    assert f"--no-deps 'jwst @ git+{url}@{commit}'" in dockerfile
    assert ("io.niriss-pipe.jwst.commit", commit) in names.labels(spec, None, commit)
    lock.make_lock(spec, upgrade=True)
    assert lock.locked_commit(spec) != commit  # --upgrade takes the tag's new commit
