"""Session fixtures for tests that need a CRDS server: the store, built once, and a server on it.

Use them from a test module under tests/integration (whose conftest provides `default_image`):

    pytest_plugins = ["tests.crds_server.fixtures"]

Registered as a plugin, each fixture exists once per session whichever modules ask for it.
Tests that change faults or read the request log should call ``crds_server.reset()`` first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.crds_server.server import CRDSServer, Link
from tests.helpers import ROOT

STORE_SCRIPT = "/src/tests/crds_server/store.py"  # ROOT is mounted at /src


def build_store(image: str, store: Path, script: str = STORE_SCRIPT) -> Path:
    """Write the synthetic store (``script``: store.py, or checkstore.py) into `store` with
    the image's jwst datamodels, offline."""
    user = f"{os.getuid()}:{os.getgid()}"
    cmd = ["docker", "run", "--rm", "--network", "none", "--user", user, "-v", f"{ROOT}:/src:ro",
           "-v", f"{store}:/store", image, "python", script, "/store"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"building the CRDS store failed ({proc.returncode}):\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return store


@pytest.fixture(scope="session")
def crds_store(tmp_path_factory, default_image) -> Path:
    """A store directory: mappings/, references/, datasets/ and store.json (see store.py)."""
    store = tmp_path_factory.mktemp("crds_store")
    store.chmod(0o755)  # containers run as other uids read it
    return build_store(default_image, store)


@pytest.fixture(scope="session")
def crds_manifest(crds_store) -> dict:
    """store.json: per context its mappings, references and what the dataset selects."""
    return json.loads((crds_store / "store.json").read_text())


@pytest.fixture(scope="session")
def crds_server(crds_store):
    """A running CRDSServer on the store; `crds_server.url` is the CRDS_SERVER_URL."""
    with CRDSServer(crds_store) as server:
        yield server


# A store with one large NIRISS reference served over a slow link, so a transfer is in flight
# for seconds: what kill -9 and Ctrl-C tests need. The dark it pads is in jwst_0001.pmap's
# NIRISS references (scope instrument) but not what the dataset selects.
LARGE_REFERENCE = "jwst_niriss_dark_0003.fits"
LARGE_SIZE = 48 * 2**20
SLOW_RATE = 4 * 2**20  # bytes/s per transfer: the large file takes 12 s, the others < 0.2 s


@pytest.fixture(scope="session")
def large_crds_store(crds_store, tmp_path_factory) -> Path:
    """The synthetic store with LARGE_REFERENCE padded to LARGE_SIZE (trailing zeros: the
    sync checks size and sha1, never FITS structure; nothing runs the pipeline on it)."""
    store = tmp_path_factory.mktemp("crds_store_large")
    shutil.copytree(crds_store, store, dirs_exist_ok=True)
    with open(store / "references" / LARGE_REFERENCE, "r+b") as handle:
        handle.truncate(LARGE_SIZE)
    return store


@pytest.fixture
def slow_crds_server(large_crds_store):
    """A server on the large store whose file transfers run at SLOW_RATE each; it names its
    large file, size and rate (``large``, ``large_size``, ``rate``) for the tests."""
    with CRDSServer(large_crds_store, link=Link(per_connection=SLOW_RATE)) as server:
        server.large, server.large_size, server.rate = LARGE_REFERENCE, LARGE_SIZE, SLOW_RATE
        yield server
