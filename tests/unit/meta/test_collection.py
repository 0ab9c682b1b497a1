"""Every test file is collected by the commands that run the tiers (``pytest tests/unit``,
``pytest tests/integration``): pytest's default ``norecursedirs`` skips any folder named
``build``, and for weeks tests/unit/build (109 tests of the build layer) ran only when named."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.parametrize("tier", ["tests/unit", "tests/integration"])
def test_every_test_file_of_a_tier_is_collected(tier, tmp_path):
    env = {**os.environ, "NIRISS_PIPE_RECORDS": str(tmp_path / "records"),
           "NIRISS_PIPE_LOGS": str(tmp_path / "logs")}  # no scratch folders of its own
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", tier],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    collected = {line.split("::", 1)[0] for line in proc.stdout.splitlines() if "::" in line}
    on_disk = {str(path.relative_to(ROOT)) for path in (ROOT / tier).rglob("test_*.py")}
    assert on_disk, tier
    assert on_disk - collected == set(), "test files no tier runs"
