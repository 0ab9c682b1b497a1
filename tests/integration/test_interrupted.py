"""A build stopped for real, as ``kill``, ``scancel`` or a CI job's timeout stops it (SIGTERM),
in the middle of its longest step: it exits 130 saying so, with no traceback, and leaves the
engine as it found it, no image and no container more. An interrupted ``--no-cache`` build
used to leave its partial layer chain, which the classic builder then chose as the cache of
the next cached build (the newest image made by the same instruction on the same parent),
so that build rebuilt everything after where the chain stopped (engine/build.py
``discard_partial``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.helpers import ROOT, SOURCE_DATE_EPOCH, docker, remove_repository, write_spec

pytestmark = pytest.mark.engine

REPOSITORY = "niriss-pipe-test-stopped"
JWST_STEP = re.compile(r"^Step \d+/\d+ : RUN .*--require-hashes")


def engine_state() -> tuple[set[str], set[str]]:
    """Every image (intermediate ones included) and every container the engine holds."""
    images = set(docker("images", "--all", "--quiet", "--no-trunc").stdout.split())
    containers = set(docker("ps", "--all", "--quiet", "--no-trunc").stdout.split())
    return images, containers


@pytest.mark.no_layer_cache  # last: were the chain left, it would be the others' cache
def test_a_build_stopped_in_its_jwst_step_leaves_the_engine_as_it_was(default_build,
                                                                       tmp_path):
    spec = yaml.safe_load((ROOT / "images" / "default.yaml").read_text())
    spec["name"] = REPOSITORY
    path = write_spec(tmp_path, "stopped", spec)
    before = engine_state()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "build.py"), "build", "--no-cache", "-v", str(path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})
    shown, in_step = [], False
    try:
        for line in proc.stdout:
            shown.append(line)
            in_step = in_step or bool(JWST_STEP.match(line))
            if in_step and line.startswith(" ---> Running in "):
                proc.send_signal(signal.SIGTERM)  # its container runs uv: mid-step
                break
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert in_step, "".join(shown[-40:])
    assert proc.returncode == 130, "".join(shown[-20:]) + out + err
    assert "interrupted" in err and "Traceback" not in err + out, err
    # The engine cancels the step when the connection closes; the tool removes the step's
    # container and every image this build made. Waited for, not timed: what counts is the
    # state the engine settles in.
    deadline = time.monotonic() + 60
    while engine_state() != before and time.monotonic() < deadline:
        time.sleep(1)
    images, containers = engine_state()
    assert containers == before[1], f"containers left: {containers - before[1]}"
    assert images == before[0], f"images left: {images - before[0]}"
    assert not docker("images", "--quiet", REPOSITORY).stdout.strip()
    remove_repository(REPOSITORY)
