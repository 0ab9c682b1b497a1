"""Engine errors a user can cause are one paragraph and exit 2, never a traceback: a name the
engine rejects, an image that is not there, an engine that is not running."""

from __future__ import annotations

import pytest

from tests.helpers import cli

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("args", [
    ["inspect", "Niriss-Pipe:JWST"],            # upper case: the engine answers 400
    ["verify", "niriss pipe"],                  # a space
    ["selftest", "niriss-pipe:jwst_1584\nx"],   # a newline
    ["export", "a" * 300, "--to", "dir"],       # longer than a name may be
    ["batch", "submit", "UPPER", "calwebb_detector1", "build.py", "-o",
     "/tmp/niriss-pipe-dry-run-never-written",
     "--dry-run"],
])
def test_a_name_the_engine_rejects(args):
    proc = cli(*args, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and "Fix:" in proc.stderr


@pytest.mark.parametrize("args", [
    ["inspect", "niriss-pipe:no-such-tag"],
    ["verify", "sha256:" + "0" * 64],
    ["export", "niriss-pipe:no-such-tag", "--to", "docker-archive", "-o", "/tmp/x.tar"],
    ["selftest", "niriss-pipe:no-such-tag"],
])
def test_an_image_that_is_not_there(args):
    proc = cli(*args, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "build it first" in proc.stderr


@pytest.mark.parametrize("args", [["inspect", "niriss-pipe:jwst_1584"],
                                  ["build", "images/default.yaml"],
                                  ["selftest", "niriss-pipe:jwst_1584"]])
def test_an_engine_that_is_not_running(tmp_path, args):
    proc = cli(*args, check=False, env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "cannot reach a Docker Engine" in proc.stderr and "start the Docker Engine" in \
        proc.stderr


def test_this_engine_keeps_images_in_the_classic_store(engine):
    """The real ``docker info`` read the way build reads it: this engine (overlay2) is one
    that build accepts; containerd's store is refused before any work
    (tests/unit/build/test_builder_order.py)."""
    info = engine.client.info()
    assert engine.image_store() == "classic", info.get("DriverStatus")
    assert info["Driver"] in ("overlay2", "vfs", "btrfs", "zfs", "fuse-overlayfs"), info["Driver"]
