"""A --cache a user got wrong (a file, read-only, unreadable, unwritable) is one paragraph with
exit 2 from sync, verify-cache and cache, never a traceback; a failed sync leaves no folder it
made. Permission cases run the real CLI as root without CAP_DAC_OVERRIDE, so permission bits
bind as for any user."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.crds_server.server import closed_port_url
from tests.helpers import ROOT

AS_USER = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
           "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRDS_CLIENT_TIMEOUT_SECONDS": "3"}
    return subprocess.run([*AS_USER, sys.executable, str(ROOT / "build.py"), *args],
                          capture_output=True, text=True, env=env)


def sync(cache: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli("sync", "--context", "jwst_0001.pmap", "--cache", str(cache), "--server",
               closed_port_url(), *extra)


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")
    assert len(proc.stderr.strip().splitlines()) == 1  # one paragraph
    for word in words:
        assert word in proc.stderr
    return proc.stderr


@pytest.fixture
def area():
    """A folder any uid can traverse (pytest's own is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="np-cachepath-"))
    folder.chmod(0o755)
    yield folder
    subprocess.run(["chmod", "-R", "u+rwX", str(folder)], check=True)
    subprocess.run(["rm", "-rf", str(folder)], check=True)


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("command", [["sync", "--context", "jwst_0001.pmap"], ["verify-cache"],
                                     ["cache"]])
def test_a_file_given_as_cache(area, command):
    afile = area / "notes.txt"
    afile.write_text("not a cache")
    refused(cli(*command, "--cache", str(afile)), str(afile), "is a file", "Fix:")
    assert tree(area) == ["notes.txt"] and afile.read_text() == "not a cache"


def test_a_cache_below_a_file(area):
    (area / "notes.txt").write_text("x")
    refused(sync(area / "notes.txt" / "cache"), "notes.txt is a file")


def test_a_failed_sync_removes_the_folders_it_made(area):
    refused(sync(area / "new" / "cache"), "cannot reach the CRDS server")
    assert tree(area) == []


def test_an_unwritable_cache(area):
    cache = area / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    refused(sync(cache), f"--cache {cache} is not writable")
    refused(sync(cache / "sub"), "is not writable", f"(in {cache})")
    assert tree(area) == ["cache"]


@pytest.mark.parametrize("command", [["verify-cache"], ["cache"], ["sync", "--context",
                                                                  "jwst_0001.pmap"]])
def test_an_unreadable_cache(area, command):
    cache = area / "cache"
    (cache / "mappings" / "jwst").mkdir(parents=True)
    cache.chmod(0o000)
    refused(cli(*command, "--cache", str(cache)), str(cache), "not readable" if command[0] !=
            "sync" else "not writable")


def test_an_unreadable_file_in_the_cache(area):
    cache = area / "cache"
    folder = cache / "mappings" / "jwst"
    folder.mkdir(parents=True)
    (cache / "config" / "jwst").mkdir(parents=True)
    (cache / "config" / "jwst" / "server_config").write_text("{}")
    (folder / "jwst_0001.pmap").write_text("header = {}\n\nselector = {}\n")
    ref = cache / "references" / "jwst" / "niriss" / "jwst_niriss_dark_0001.fits"
    ref.parent.mkdir(parents=True)
    ref.write_bytes(b"dark")
    (cache / "config" / "jwst" / "niriss-pipe-verified.json").write_text(
        '{"references/jwst/niriss/jwst_niriss_dark_0001.fits": {"sha1": "0", "size": 4, '
        '"mtime_ns": 0}}')
    (cache / "config" / "jwst" / "niriss-pipe-contexts.json").write_text(
        '{"jwst_0001.pmap": {"scope": "none", "references": [], "complete": true}}')
    ref.chmod(0o000)
    refused(cli("verify-cache", "--cache", str(cache)), "jwst_niriss_dark_0001.fits",
            "ermission denied")
    ref.chmod(0o644)
    (folder / "jwst_0001.pmap").chmod(0o000)  # a mapping there but unreadable: not 'missing'
    proc = cli("verify-cache", "--cache", str(cache))
    assert proc.returncode == 1 and "not readable by uid 0: jwst_0001.pmap" in proc.stderr
    assert "mapping missing" not in proc.stderr


@pytest.fixture
def read_only(area):
    if os.geteuid() != 0:
        pytest.fail("mounting a read-only tmpfs needs root: the suite runs as root (as CI does)")
    folder = area / "ro"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                   check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_file_system(read_only):
    refused(sync(read_only), "read-only file system")
    refused(sync(read_only / "cache"), "read-only file system")
    proc = cli("cache", "--cache", str(read_only))  # reading a read-only cache is fine
    assert proc.returncode == 0, proc.stderr
