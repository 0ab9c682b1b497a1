"""The real `crds` client against the CRDS server test double (tests/crds_server).

Each test runs `python -m crds.sync` (crds 14.x, from this venv) as a user would, against a
server on a synthetic store built in the default image, then asserts on the cache it left
and on exactly which calls and downloads the server saw. What the client does on faults
(corrupted or truncated downloads, unknown contexts, no server) is pinned here, because
build.py sync has to handle it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.crds_server.server import closed_port_url
from tests.helpers import docker

pytestmark = pytest.mark.engine

pytest_plugins = ["tests.crds_server.fixtures"]

DATASET = "niriss_sub64_uncal.fits"
SYNC_RPCS = ["get_server_info", "get_mapping_names"]


@pytest.fixture(autouse=True)
def clean_server(crds_server):
    """Every test starts with no faults and an empty request log."""
    crds_server.reset()
    return crds_server


def crds_sync(url: str, cache: Path, *args: str, timeout_s: int = 5
              ) -> subprocess.CompletedProcess:
    """`crds sync ARGS` with only CRDS_PATH and CRDS_SERVER_URL set (no CRDS_CONTEXT)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRDS_")}
    env.update(CRDS_PATH=str(cache), CRDS_SERVER_URL=url,
               CRDS_CLIENT_TIMEOUT_SECONDS=str(timeout_s))
    return subprocess.run([sys.executable, "-m", "crds.sync", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"crds sync exited {proc.returncode}\n{proc.stderr}"
    return proc


def cached(cache: Path, kind: str) -> list:
    """File names under CRDS_PATH/<kind>/jwst, at any depth (references may be in subdirs)."""
    root = cache / kind / "jwst"
    return sorted(p.name for p in root.rglob("*") if p.is_file()) if root.exists() else []


def server_config(cache: Path) -> dict:
    return ast.literal_eval((cache / "config" / "jwst" / "server_config").read_text())


def sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def context(manifest: dict, pmap: str) -> dict:
    return manifest["contexts"][pmap]


# --------------------------------------------------------------------------- syncs

def test_pmap_sync_fetches_the_mapping_closure_and_no_reference(crds_server, crds_manifest,
                                                                 tmp_path):
    closure = context(crds_manifest, "jwst_0001.pmap")["mappings"]
    ok(crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_0001.pmap"))

    assert crds_server.rpc_methods() == SYNC_RPCS
    assert crds_server.log[1].params == ["jwst_0001.pmap"]
    assert sorted(crds_server.fetched("mapping")) == closure
    assert crds_server.fetched("reference") == []
    assert cached(tmp_path, "mappings") == closure
    assert cached(tmp_path, "references") == []
    config = server_config(tmp_path)
    assert config["operational_context"] == crds_server.operational_context == "jwst_0002.pmap"
    assert config["mappings"] == ["jwst_0001.pmap", "jwst_0002.pmap"]
    assert config["force_remote_mode"] is False
    assert config["download_metadata"] == crds_server.store.metadata


def test_imap_sync_fetches_that_instruments_references_into_an_instrument_folder(
        crds_server, crds_manifest, tmp_path):
    ctx = context(crds_manifest, "jwst_0001.pmap")
    ok(crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_0001.pmap"))
    crds_server.reset()

    ok(crds_sync(crds_server.url, tmp_path, "--contexts", ctx["imaps"]["niriss"],
                 "--fetch-references"))
    assert crds_server.rpc_methods() == ["get_server_info"]  # the imap is cached: no RPC
    assert crds_server.fetched("mapping") == []
    assert sorted(crds_server.fetched("reference")) == ctx["references"]["niriss"]
    niriss = tmp_path / "references" / "jwst" / "niriss"
    assert sorted(p.name for p in niriss.iterdir()) == ctx["references"]["niriss"]
    assert (tmp_path / "config" / "jwst" / "ref_cache_subdir_mode").read_text() == "instrument"
    # the client also makes an empty folder per instrument it knows
    assert {"fgs", "miri", "nircam", "nirspec", "system"} <= {
        p.name for p in niriss.parent.iterdir() if not any(p.iterdir())}


def test_dataset_sync_fetches_only_what_the_dataset_selects(crds_server, crds_store,
                                                            crds_manifest, tmp_path):
    ctx = context(crds_manifest, "jwst_0001.pmap")
    selected = ctx["dataset_selects"][DATASET]
    ok(crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_0001.pmap", "--dataset-files",
                 str(crds_store / "datasets" / DATASET), "--fetch-references"))

    assert crds_server.rpc_methods() == SYNC_RPCS  # best references are computed locally
    assert sorted(crds_server.fetched("reference")) == selected
    assert set(selected) < set(ctx["references"]["niriss"])
    assert cached(tmp_path, "references") == selected


def test_newer_context_fetches_only_the_changed_mappings(crds_server, crds_manifest, tmp_path):
    old, new = (context(crds_manifest, p)["mappings"] for p in ("jwst_0001.pmap", "jwst_0002.pmap"))
    ok(crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_0001.pmap"))
    crds_server.reset()

    ok(crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_0002.pmap"))
    assert crds_server.rpc_methods() == SYNC_RPCS
    assert sorted(crds_server.fetched()) == sorted(set(new) - set(old)) == [
        "jwst_0002.pmap", "jwst_niriss_0002.imap", "jwst_niriss_dark_0002.rmap"]


def test_repeated_sync_fetches_nothing(crds_server, crds_manifest, tmp_path):
    imap = context(crds_manifest, "jwst_0001.pmap")["imaps"]["niriss"]
    for args in (["jwst_0001.pmap"], [imap, "--fetch-references"]):
        ok(crds_sync(crds_server.url, tmp_path, "--contexts", *args))
    crds_server.reset()

    ok(crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_0001.pmap"))
    ok(crds_sync(crds_server.url, tmp_path, "--contexts", imap, "--fetch-references"))
    assert crds_server.fetched() == []
    assert crds_server.rpc_methods() == ["get_server_info", "get_server_info"]


# -------------------------------------------------------------------------- faults

@pytest.mark.parametrize("fault, message, check_message", [
    ("corrupt", "does not match server sha1sum", "checksum mismatch"),
    ("truncate", "does not match server size", "length mismatch"),  # a short read is no error
])
def test_bad_download_fails_the_sync_but_stays_in_the_cache(crds_server, tmp_path, fault,
                                                             message, check_message):
    """The client checks size and sha1 only after renaming the download to its real name.

    The bad file stays, and a plain re-run exits 0 without fetching it again: only
    --check-sha1sum (or --repair-files) finds it.
    """
    bad = "jwst_niriss_gain_0001.fits"
    ok(crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_0001.pmap"))
    getattr(crds_server.faults, fault).add(bad)

    proc = crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_niriss_0001.imap",
                     "--fetch-references")
    assert proc.returncode == 1
    assert f"Failure downloading file '{bad}'" in proc.stderr and message in proc.stderr
    assert "Errors occurred during sync,  skipping CRDS cache config" in proc.stderr
    left = tmp_path / "references" / "jwst" / "niriss" / bad
    assert left.exists() and sha1(left) != crds_server.store.metadata[bad]["sha1sum"]
    assert not list(tmp_path.rglob(".tmp_*"))

    crds_server.reset()  # the server is healthy again
    ok(crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_niriss_0001.imap",
                 "--fetch-references"))
    assert crds_server.fetched() == []
    check = crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_niriss_0001.imap",
                      "--fetch-references", "--check-sha1sum")
    assert check.returncode == 1 and f"File '{bad}' {check_message}" in check.stderr


def test_unknown_context_only_warns_and_exits_zero(crds_server, tmp_path):
    proc = crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_0999.pmap")
    assert proc.returncode == 0  # sic: a sync of nothing is not an error for the client
    assert ("WARNING -  Failed loading context 'jwst_0999.pmap' : CRDS jsonrpc failure "
            "'get_mapping_names' Unknown context 'jwst_0999.pmap'") in proc.stderr
    assert crds_server.rpc_methods() == SYNC_RPCS
    assert crds_server.fetched() == [] and cached(tmp_path, "mappings") == []
    assert server_config(tmp_path)["operational_context"] == "jwst_0002.pmap"


def test_unreachable_server_is_fatal(crds_server, tmp_path):
    url, started = closed_port_url(), time.monotonic()
    fresh = crds_sync(url, tmp_path, "--contexts", "jwst_0001.pmap")
    assert fresh.returncode == 255
    assert "(FATAL) CRDS server connection and cache load FAILED." in fresh.stderr
    assert not tmp_path.joinpath("config").exists()

    ok(crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_0001.pmap"))
    synced = crds_sync(url, tmp_path, "--contexts", "jwst_0001.pmap")
    assert synced.returncode == 255
    assert (f"(FATAL) Failed connecting to CRDS server at CRDS_SERVER_URL = '{url}' :: "
            "Required server connection unavailable.") in synced.stderr
    assert time.monotonic() - started < 30


def test_client_timeout_covers_rpc_calls_but_not_file_downloads(crds_server, tmp_path):
    # The answer comes after 30 s; a client that gave up on its 1 s timeout ends long before
    # (3.2 s seen on a loaded machine: the client's own start), one that waited cannot.
    crds_server.faults.delay["get_server_info"] = 30
    started = time.monotonic()
    proc = crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_0001.pmap", timeout_s=1)
    assert proc.returncode == 255 and time.monotonic() - started < 30, proc.stderr

    crds_server.reset()
    crds_server.faults.delay["jwst_0001.pmap"] = 2
    started = time.monotonic()
    ok(crds_sync(crds_server.url, tmp_path, "--contexts", "jwst_0001.pmap", timeout_s=1))
    assert time.monotonic() - started >= 2


# ------------------------------------------------------------------------ protocol

def test_server_answers_the_protocol_directly(crds_server):
    """Errors the client turns into ServiceError; HEAD and 404 on the file URLs."""
    from crds.client.proxy import CheckingProxy
    from crds.core.exceptions import ServiceError

    proxy = CheckingProxy(crds_server.url + "/json/")
    with pytest.raises(ServiceError, match="Unknown JSON-RPC method 'no_such_method'"):
        proxy.no_such_method()
    with pytest.raises(ServiceError, match="not supported"):
        proxy.get_best_references("jwst_0001.pmap", {}, None)
    crds_server.faults.fail["get_default_context"] = "server is down for maintenance"
    with pytest.raises(ServiceError, match="down for maintenance"):
        proxy.get_default_context("jwst", "operational")
    assert proxy.get_build_context("jwst", "3.0.0") == "jwst_0002.pmap"
    infos = proxy.get_file_info_map("jwst", ["jwst_0001.pmap", "nope.fits"], ["size"])
    assert infos == {"jwst_0001.pmap": {"size": crds_server.store.metadata["jwst_0001.pmap"]
                                        ["size"]}, "nope.fits": "NOT FOUND unknown to server"}

    base = crds_server.url + "/unchecked_get/mappings/jwst/"
    head = urllib.request.urlopen(urllib.request.Request(base + "jwst_0001.pmap", method="HEAD"))
    assert head.headers["Content-Length"] == crds_server.store.metadata["jwst_0001.pmap"]["size"]
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(base + "jwst_0999.pmap")
    assert crds_server.requests["/unchecked_get/mappings/jwst/jwst_0999.pmap"] == 1


# ------------------------------------------------------------------------- offline

OFFLINE_BESTREFS = """
import json, sys
import crds
from crds import data_file
header = data_file.get_header(sys.argv[1], observatory="jwst")
refs = crds.getreferences(header, reftypes=sys.argv[2:], context="jwst_0001.pmap")
print(json.dumps(refs))
"""


def test_synced_cache_gives_best_references_offline(crds_server, crds_store, crds_manifest,
                                                    default_image, tmp_path):
    """The image computes the dataset's references from the synced cache, with no network."""
    selected = context(crds_manifest, "jwst_0001.pmap")["dataset_selects"][DATASET]
    cache = tmp_path / "cache"
    ok(crds_sync(crds_server.url, cache, "--contexts", "jwst_0001.pmap", "--dataset-files",
                 str(crds_store / "datasets" / DATASET), "--fetch-references"))
    reftypes = [crds_manifest["references"][ref] for ref in selected]

    proc = docker("run", "--rm", "--network", "none", "--user", f"{os.getuid()}:{os.getgid()}",
                  "-v", f"{cache}:/crds:ro", "-v", f"{crds_store / 'datasets'}:/data:ro",
                  "-e", "CRDS_PATH=/crds", "-e", "CRDS_CONTEXT=jwst_0001.pmap",
                  "-e", "CRDS_MODE=local", "-e", "CRDS_READONLY_CACHE=1",
                  "-e", "CRDS_SERVER_URL=https://jwst-serverless.stsci.edu",
                  default_image, "python", "-c", OFFLINE_BESTREFS, f"/data/{DATASET}", *reftypes)
    refs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sorted(refs) == sorted(reftypes)
    assert sorted(Path(p).name for p in refs.values()) == selected
    assert all(p.startswith("/crds/references/jwst/niriss/") for p in refs.values())
