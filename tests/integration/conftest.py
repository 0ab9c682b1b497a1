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

# Build records and logs of test builds go to scratch folders, not the checkout's build/.
# (made only when unset: a collection by the unit tier's check sets them, and leaves nothing)
for _name, _prefix in (("NIRISS_PIPE_RECORDS", "niriss-pipe-records-"),
                       ("NIRISS_PIPE_LOGS", "niriss-pipe-logs-")):
    if not os.environ.get(_name):
        os.environ[_name] = tempfile.mkdtemp(prefix=_prefix)


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
    if "is up to date" in proc.stdout:
        # The image is from before the session, its layer cache maybe pruned since: tests
        # of cached rebuilds need this build's stages, so build it again (from what cache
        # there is), which must give the same image: its content tag says so.
        found = engine.image_id(built_image(proc.stdout))
        proc = cli("build", "--force", "images/default.yaml")
        assert found.startswith(f"sha256:{built_image(proc.stdout)}"), \
            f"the up-to-date image {found} is not what a build gives now:\n{proc.stdout}"
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


# -- test services in containers (pytest-docker) -------------------------------------------------
# tests/docker-compose.yml holds them; its images are made locally from the project's Debian
# base, so the default build (which makes that base) comes first. Debian's docker-compose 1.29
# is what drives them here (.ci/run installs it); its builds use the classic builder.
GIT_ROOT_ENV = "NIRISS_PIPE_TEST_GIT_ROOT"


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    import shutil
    import subprocess

    v2 = subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    return "docker compose" if v2 or not shutil.which("docker-compose") else "docker-compose"


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(ROOT / "tests" / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"niriss-pipe-test-{os.getpid()}"


@pytest.fixture(scope="session")
def git_root(tmp_path_factory) -> Path:
    """The folder the git server serves (bare repositories, dumb HTTP)."""
    root = tmp_path_factory.mktemp("git_root")
    root.chmod(0o755)
    os.environ[GIT_ROOT_ENV] = str(root)
    return root


@pytest.fixture(scope="session")
def docker_setup(git_root, default_build) -> list[str]:
    os.environ["NIRISS_PIPE_TEST_BASE"] = default_build[1].base.reference  # made by its build
    os.environ.setdefault("COMPOSE_DOCKER_CLI_BUILD", "0")  # the classic builder, as ours
    os.environ.setdefault("DOCKER_BUILDKIT", "0")
    return ["up --build -d"]  # compose 1.29 has no --wait: git_server waits for an answer


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down -v --rmi all"]  # the server image too: nothing of the tests stays


@pytest.fixture(scope="session")
def git_server(docker_services, docker_compose_project_name, git_root):
    """``http://IP:8080/git``: the git server's URL on the engine's default bridge, which the
    host and a build's RUN steps both reach. Repositories go into ``git_server.root``."""
    import types
    import urllib.request

    cid = docker("ps", "-q", "--filter",
                 f"label=com.docker.compose.project={docker_compose_project_name}",
                 "--filter", "label=com.docker.compose.service=gitserver").stdout.split()[0]
    ip = docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid).stdout.strip()
    url = f"http://{ip}:8080/git"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"http://{ip}:8080/", timeout=2):
                return True
        except OSError as exc:
            return getattr(exc, "code", None) is not None  # an HTTP status is an answer

    docker_services.wait_until_responsive(answers, timeout=30, pause=0.5)
    return types.SimpleNamespace(url=url, root=git_root, container=cid)
