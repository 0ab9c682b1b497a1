"""A git source built for real: a repository made from a jwst release's sdist from PyPI,
committed and tagged, served by a git server in a container (pytest-docker, the compose file
in tests/), locked to the commit its tag names, the tag moved, and built from the locked
commit over the engine's network; the self-test passes and ``inspect`` shows the commit."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import urllib.request

import pytest
import yaml

from niriss_pipe.spec import catalog
from niriss_pipe.spec.pypi import release_files
from tests.helpers import cli, remove_repository

pytestmark = [pytest.mark.engine, pytest.mark.network]

RELEASE = "3.0.0"
REPOSITORY = "niriss-pipe-gitref-test"


def git(cwd, *args, date=None):
    stamp = date or "2026-12-01T00:00:00Z"
    env = {**os.environ, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp,
           "GIT_AUTHOR_NAME": "niriss-pipe tests", "GIT_AUTHOR_EMAIL": "tests@niriss-pipe",
           "GIT_COMMITTER_NAME": "niriss-pipe tests", "GIT_COMMITTER_EMAIL": "tests@niriss-pipe"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="module")
def jwst_repo(git_server, tmp_path_factory):
    """(work tree, bare repository, commit): the release's sdist committed on its release day
    and tagged, as jwst's own repository has it; served as ``jwst.git``."""
    sdist = next(f for f in release_files("jwst", RELEASE) or []
                 if f["filename"] == f"jwst-{RELEASE}.tar.gz")
    scratch = tmp_path_factory.mktemp("jwst_sdist")
    archive = scratch / sdist["filename"]
    with urllib.request.urlopen(sdist["url"], timeout=120) as response:
        archive.write_bytes(response.read())
    with tarfile.open(archive) as tar:
        tar.extractall(scratch, filter="data")
    work = scratch / f"jwst-{RELEASE}"
    day = f"{catalog.release(RELEASE).released}T12:00:00Z"
    git(work, "init", "-q")
    git(work, "add", "-A")
    git(work, "commit", "-qm", f"jwst {RELEASE} from its PyPI sdist", date=day)
    git(work, "tag", "-a", RELEASE, "-m", RELEASE, date=day)
    bare = git_server.root / "jwst.git"
    git(scratch, "clone", "-q", "--bare", str(work), str(bare))
    git(bare, "update-server-info")
    return work, bare, git(work, "rev-parse", "HEAD")


def test_git_source_lock_moved_tag_build_selftest_inspect(git_server, jwst_repo, tmp_path):
    work, bare, commit = jwst_repo
    url = f"{git_server.url}/jwst.git"
    spec = tmp_path / "gitref.yaml"
    spec.write_text(yaml.safe_dump({
        "name": REPOSITORY, "crds": {"context": "jwst_1584.pmap"},
        "jwst": {"git": url, "ref": RELEASE},
        "python": {"version": "3.11", "manager": "venv"}, "base": {"suite": "bookworm"},
        "packages": {"apt": ["gcc", "python3-dev"]}}))  # jwst's C extensions build here

    proc = cli("lock", str(spec))
    assert f"tag {RELEASE} of {url}, commit {commit}" in proc.stdout
    lock = tmp_path / "locks" / "gitref.txt"
    text = lock.read_text()
    assert f'"commit": "{commit}"' in text and f"# jwst @ git+{url}@{commit}" in text
    # As of the commit's day, moved later only because its own requirements came later.
    assert f"commit {commit[:12]} is of {catalog.release(RELEASE).released}" in proc.stdout
    assert "first installable" in proc.stdout

    (work / "MOVED").write_text("the tag now names another commit\n")  # the tag moves
    git(work, "add", "-A")
    git(work, "commit", "-qm", "after the release")
    git(work, "tag", "-f", "-a", RELEASE, "-m", "moved")
    git(work, "push", "-q", "--force", str(bare), "HEAD:refs/heads/master",
        f"refs/tags/{RELEASE}")
    git(bare, "update-server-info")
    moved = git(work, "rev-parse", "HEAD")
    proc = cli("lock", str(spec))
    assert f"now names {moved[:12]}, but the lock pins {commit[:12]} (the tag moved)" in \
        proc.stderr and lock.read_text() == text

    try:
        proc = cli("build", str(spec))  # the tag names `moved` now; the lock says `commit`
        assert "selftest: PASS" in proc.stdout, proc.stdout
        image = f"{REPOSITORY}:jwst_1584"
        shown = cli("inspect", image).stdout
        assert f"from {url} @ {RELEASE} (commit {commit})" in shown, shown
        info = json.loads(cli("inspect", image, "--json").stdout)
        assert info["labels"]["io.niriss-pipe.jwst.commit"] == commit == info["jwst"]["commit"]
        verified = cli("verify", image, "--no-selftest").stdout
        assert f"jwst installed from the locked commit {commit}" in verified
    finally:
        remove_repository(REPOSITORY)
