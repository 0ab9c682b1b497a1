"""Integration fixtures: a real Docker Engine, real images built once per session.

These tests are never skipped: without an engine they fail, because CI has one
(.ci/run starts it). Images are built through the real CLI, as a user would.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.helpers import ROOT, cli, docker

# Build records of test builds go to a scratch folder, not the checkout's build/records.
os.environ.setdefault("NIRISS_PIPE_RECORDS", tempfile.mkdtemp(prefix="niriss-pipe-records-"))


@pytest.fixture(scope="session")
def engine():
    from niriss_pipe.core.progress import Reporter
    from niriss_pipe.engine.client import Engine

    return Engine(Reporter())


@pytest.fixture(scope="session")
def default_build(engine):
    """The default spec, built (or found up to date) through the CLI: (process, spec)."""
    from niriss_pipe.spec.load import load_spec

    proc = cli("build", "images/default.yaml")
    return proc, load_spec(ROOT / "images" / "default.yaml")


@pytest.fixture(scope="session")
def default_image(default_build) -> str:
    return f"niriss-pipe:{default_build[1].pmap_stem}"


def built_image(out: str) -> str:
    """The image a ``build`` made or found, by id (or content tag) from its output."""
    import re

    found = re.search(r"^built ([0-9a-f]{12}) in ", out, re.MULTILINE) or re.search(
        r"is up to date \((content-[0-9a-f]+)\)", out)
    assert found, f"no image id or content tag in the build output:\n{out}"
    name = found.group(1)
    return name if not name.startswith("content-") else f"niriss-pipe:{name}"


@pytest.fixture(scope="session")
def default_image_id(default_build) -> str:
    """The image this session's build made or found, by id: the default tag may move to
    another engineer's build of the same spec on a shared engine while the session runs."""
    return built_image(default_build[0].stdout)


@pytest.fixture(scope="session")
def era_image_id(engine) -> str:
    """The jwst 1.12.5 image (its sdists built with gcc), built or found up to date, by id."""
    return built_image(cli("build", "images/jwst_1166.yaml").stdout)


@pytest.fixture(scope="session")
def synthetic_cache(tmp_path_factory, default_image) -> Path:
    """A host CRDS cache holding the synthetic context, written by the image's own synth."""
    cache = tmp_path_factory.mktemp("crds_cache")
    cache.chmod(0o755)  # readable by the other uids the tests run containers as
    docker("run", "--rm", "--network", "none", "--user", f"{os.getuid()}:{os.getgid()}",
           "-v", f"{cache}:/crds", default_image,
           "python", "-m", "niriss_pipe.runtime.synth", "context", "/crds")
    return cache


def pytest_collection_modifyitems(items):
    """Tests that build with --no-cache run last. A no-cache build adds a second chain of
    identical instructions on the base; the classic builder then takes its cache from either
    chain, and a cached build that picks the other one misses at its first differing layer."""
    no_cache = [item for item in items if item.get_closest_marker("no_layer_cache")]
    items[:] = [item for item in items if item not in no_cache] + no_cache
