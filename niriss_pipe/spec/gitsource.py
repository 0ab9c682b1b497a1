"""What a git source's commit says of itself: its date and its own requirements.

A lock of a git source resolves as of the commit's date, moved later only as far as the
commit's own requirements need (``spec/asof.py``); both come from the commit itself, fetched
into a scratch repository (shallow where the server allows it; dumb HTTP servers do not).
"""

from __future__ import annotations

import configparser
import datetime as dt
import os
import subprocess
import tempfile
from dataclasses import dataclass

from niriss_pipe.core.errors import UserError
from niriss_pipe.spec.gitref import GIT_TIMEOUT


@dataclass(frozen=True)
class CommitFacts:
    commit: str
    date: dt.date  # the committer date, UTC
    requirements: tuple[str, ...]  # PEP 508 strings, as the commit declares them
    source: str  # where they were read: "pyproject.toml", "setup.cfg" or "" (none found)


def _git(args: list[str], cwd: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, env=env)
    except FileNotFoundError:
        raise UserError("locking a git source needs git, which is not installed.",
                        "install git (Debian: apt-get install git).") from None
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"no answer within {GIT_TIMEOUT} s")


def _has(commit: str, cwd: str) -> bool:
    return _git(["cat-file", "-e", f"{commit}^{{commit}}"], cwd).returncode == 0


def fetch_commit(url: str, commit: str, ref: str | None) -> CommitFacts:
    """Fetch ``commit`` of ``url`` (through ``ref`` when it is a tag) and read its facts."""
    with tempfile.TemporaryDirectory(prefix="niriss-pipe-git-") as scratch:
        _git(["init", "-q", "--bare"], scratch)
        wanted = f"refs/tags/{ref}" if ref and ref != commit else commit
        last = None
        for args in (["fetch", "-q", "--depth=1", url, wanted],  # smart servers
                     ["fetch", "-q", url, wanted],  # dumb HTTP: no shallow fetches
                     ["fetch", "-q", url, "+refs/*:refs/remote/*"]):  # a commit no ref names
            last = _git(args, scratch)
            if _has(commit, scratch):
                break
        else:
            reason = (last.stderr.strip().splitlines() or ["no answer"])[-1] if last else ""
            raise UserError(f"cannot fetch commit {commit} of {url} ({reason}).",
                            "check the URL, the network and that the commit exists; locking "
                            "a git source reads the commit's date and requirements.")
        stamp = _git(["show", "-s", "--format=%cI", commit], scratch).stdout.strip()
        date = dt.datetime.fromisoformat(stamp).astimezone(dt.timezone.utc).date()
        for name, parse in (("pyproject.toml", pyproject_requirements),
                            ("setup.cfg", setup_cfg_requirements)):
            shown = _git(["show", f"{commit}:{name}"], scratch)
            found = parse(shown.stdout) if shown.returncode == 0 else None
            if found is not None:
                return CommitFacts(commit, date, tuple(found), name)
        return CommitFacts(commit, date, (), "")


def _toml():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            from pip._vendor import tomli as tomllib
    return tomllib


def pyproject_requirements(text: str) -> list[str] | None:
    """``[project].dependencies``; None when the file declares none statically."""
    try:
        data = _toml().loads(text)
    except ValueError:
        return None
    project = data.get("project") or {}
    if "dependencies" not in project:
        return None
    return [str(item) for item in project["dependencies"]]


def setup_cfg_requirements(text: str) -> list[str] | None:
    """``[options] install_requires`` of a setup.cfg; None when absent."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error:
        return None
    if not parser.has_option("options", "install_requires"):
        return None
    lines = parser.get("options", "install_requires").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]
