"""``cache --prune`` with a damaged mapping of a kept context, and ``sync --for`` a product
that names no CRDS reference, with the real crds client against the CRDS test double on
the tiny store (no engine, loopback only).

A damaged mapping is one paragraph naming the file, nothing is removed, and the fix it gives
(sync the context again with --verify) is run and works.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from tests.crds_server.server import CRDSServer
from tests.crds_server.tiny import write_store
from tests.helpers import ROOT

KEPT, OTHER = "jwst_0043.pmap", "jwst_0042.pmap"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with CRDSServer(write_store(tmp_path_factory.mktemp("store"))) as server:
        yield server


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRDS_CLIENT_TIMEOUT_SECONDS": "5",
           "DOCKER_HOST": "unix:///nonexistent/no-engine.sock"}
    return subprocess.run([sys.executable, str(ROOT / "build.py"), *args], capture_output=True,
                          text=True, env=env, cwd=cwd or ROOT, timeout=120)


def paragraph(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and " Fix: " in proc.stderr
    return proc.stderr


def files(cache: Path) -> list[str]:
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def synced(server, tmp_path_factory) -> Path:
    """Both contexts synced into one cache, once."""
    cache = tmp_path_factory.mktemp("synced") / "cache"
    for context in (OTHER, KEPT):
        proc = run("sync", "--context", context, "--cache", str(cache), "--server", server.url)
        assert proc.returncode == 0, proc.stderr
    return cache


@pytest.fixture
def cache(synced, tmp_path) -> Path:
    """A copy of ``synced`` for one test to damage (times kept: the manifest's mtimes)."""
    shutil.copytree(synced, tmp_path / "cache")
    return tmp_path / "cache"


def test_the_tiny_store_prunes_as_a_real_one(cache):
    proc = run("cache", "--cache", str(cache), "--prune", "--keep", KEPT)
    assert proc.returncode == 0, proc.stderr
    left = files(cache / "mappings") + files(cache / "references")
    assert left == ["jwst/jwst_0043.pmap", "jwst/jwst_niriss_0043.imap",
                    "jwst/jwst_niriss_dark_0043.rmap", "jwst/niriss/jwst_niriss_dark_0002.fits"]


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _not_utf8(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\xff\xfe\n")


def _edited(path: Path) -> None:  # parses, but its sha1sum no longer matches
    path.write_text(path.read_text().replace("'NIS'", "'NRS'").replace("'dark'", "'flat'"))


def _garbage(path: Path) -> None:
    path.write_text("header = {\nselector = (((\n")


@pytest.mark.parametrize("name, damage, why, fixed", [
    ("jwst_0043.pmap", _empty, "the file is empty", True),
    ("jwst_0043.pmap", _not_utf8, "it is not UTF-8 text", False),
    ("jwst_niriss_0043.imap", _empty, "the file is empty", False),
    ("jwst_niriss_0043.imap", _edited, "its sha1sum does not match its text", False),
    ("jwst_niriss_dark_0043.rmap", _not_utf8, "it is not UTF-8 text", False),
    ("jwst_niriss_dark_0043.rmap", _edited, "its sha1sum does not match its text", True),
    ("jwst_niriss_dark_0043.rmap", _garbage, "crds says", False),
])
def test_a_damaged_mapping_of_a_kept_context_is_named_and_the_fix_works(
        server, cache, name, damage, why, fixed):
    before = files(cache)
    path = cache / "mappings" / "jwst" / name
    damage(path)
    message = paragraph(run("cache", "--cache", str(cache), "--prune", "--keep", KEPT,
                            "--dry-run"))
    assert f"error: {path}: the crds client cannot load this mapping of {KEPT} ({why}" \
        in message, message
    assert "nothing was pruned" in message
    fix = f"python build.py sync --context {KEPT} --cache {cache} --verify"
    assert fix in message
    assert files(cache) == before
    if not fixed:  # the fix is run for a file of another size and one of the same size
        return
    proc = run(*fix.split()[2:], "--server", server.url)
    assert proc.returncode == 0 and name in proc.stdout, proc.stdout + proc.stderr
    proc = run("cache", "--cache", str(cache), "--prune", "--keep", KEPT)
    assert proc.returncode == 0 and "removed 4 files" in proc.stdout, proc.stderr


def test_nothing_is_pruned_and_json_has_the_paragraph(cache):
    _empty(cache / "mappings" / "jwst" / "jwst_niriss_0043.imap")
    before = files(cache)
    proc = run("cache", "--cache", str(cache), "--prune", "--keep", KEPT, "--json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    document = json.loads(proc.stdout)
    assert document["exit"] == 2 and "jwst_niriss_0043.imap: the crds client" in document["error"]
    assert files(cache) == before


def test_a_mapping_that_is_missing_or_a_folder(server, cache):
    imap = cache / "mappings" / "jwst" / "jwst_niriss_0043.imap"
    imap.unlink()
    message = paragraph(run("cache", "--cache", str(cache), "--prune", "--keep", KEPT))
    assert f"holds {KEPT} but not all the mappings it names (it lacks {imap.name})" in message
    assert f"Fix: fetch them: python build.py sync --context {KEPT} --cache {cache}" in message
    rmap = cache / "mappings" / "jwst" / "jwst_niriss_dark_0043.rmap"
    proc = run("sync", "--context", KEPT, "--cache", str(cache), "--server", server.url)
    assert proc.returncode == 0, proc.stderr
    rmap.unlink()
    rmap.mkdir()
    message = paragraph(run("cache", "--cache", str(cache), "--prune", "--keep", KEPT))
    assert f"{rmap}: the crds client cannot load this mapping of {KEPT} (it is a folder)" \
        in message


@pytest.mark.parametrize("data", [b"", b"\xff\xfe header"])
def test_a_cache_holding_only_a_damaged_pmap(tmp_path, data):
    """The audit's case: no config, no record, one pmap that is empty or not UTF-8."""
    pmap = tmp_path / "C" / "mappings" / "jwst" / "jwst_9999.pmap"
    pmap.parent.mkdir(parents=True)
    pmap.write_bytes(data)
    message = paragraph(run("cache", "--cache", str(tmp_path / "C"), "--prune", "--keep",
                            "jwst_9999", "--dry-run"))
    assert f"error: {pmap}: the crds client cannot load this mapping of jwst_9999.pmap" in message
    assert "remove jwst_9999.pmap" in message and pmap.read_bytes() == data


def product(path: Path, context: str, **keys: str) -> Path:
    header = fits.Header()
    for key, value in {"CAL_VER": "1.12.5", "CRDS_CTX": context, **keys}.items():
        header[key] = value
    fits.HDUList([fits.PrimaryHDU(header=header),
                  fits.ImageHDU(np.zeros((4, 4), np.float32), name="SCI")]).writeto(path)
    return path


def test_sync_for_a_product_that_names_no_crds_reference_fetches_the_mappings(server,
                                                                              tmp_path):
    """All R_* N/A (or the user's own files): the context's mappings are all it needs."""
    made = product(tmp_path / "na_rate.fits", OTHER, R_DARK="N/A", R_FLAT="/home/me/flat.fits",
                   S_DARK="COMPLETE")
    cache = tmp_path / "cache"
    server.reset()
    proc = run("sync", "--for", str(made), "--cache", str(cache), "--server", server.url)
    assert proc.returncode == 0, proc.stderr
    assert sorted(server.fetched()) == ["jwst_0042.pmap", "jwst_niriss_0042.imap",
                                        "jwst_niriss_dark_0042.rmap"]
    assert "R_FLAT=/home/me/flat.fits" in proc.stderr  # named in a warning, as before
    assert f"{OTHER} ready offline for na_rate.fits (its mappings only" in proc.stdout
    record = json.loads((cache / "config/jwst/niriss-pipe-contexts.json").read_text())
    assert record[OTHER] == {"scope": "datasets", "instrument": "niriss", "references": [],
                             "complete": True, "datasets": ["na_rate.fits"]}
    proc = run("verify-cache", "--cache", str(cache))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A wider sync of the context later, then the product again: the record stays the wider.
    assert run("sync", "--context", OTHER, "--cache", str(cache),
               "--server", server.url).returncode == 0
    assert run("sync", "--for", str(made), "--cache", str(cache),
               "--server", server.url).returncode == 0
    record = json.loads((cache / "config/jwst/niriss-pipe-contexts.json").read_text())
    assert record[OTHER]["scope"] == "instrument"


@pytest.mark.parametrize("extra, named", [
    (["--image", "niriss-pipe:x"], "--image"), (["--scope", "none"], "--scope"),
    (["--context", "jwst_0042"], "--context"), (["--datasets", "x.fits"], "--datasets")])
def test_sync_for_refuses_what_it_would_ignore_before_any_download(server, tmp_path, extra,
                                                                  named):
    made = product(tmp_path / "na_rate.fits", OTHER, R_DARK="N/A")
    server.reset()
    message = paragraph(run("sync", "--for", str(made), "--cache", str(tmp_path / "cache"),
                            "--server", server.url, *extra))
    assert "takes the context and the references from the product" in message
    assert f"so it takes no {named}" in message
    assert server.fetched() == [] and not (tmp_path / "cache").exists()
