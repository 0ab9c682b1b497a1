"""Running images as users do: docker CLI, mounted host cache, no network, any uid."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.helpers import cli, docker

pytestmark = pytest.mark.engine

SYNTHETIC = "jwst_9999.pmap"
READ_PRODUCT = """
import json, sys
try:
    from stdatamodels.jwst import datamodels
except ImportError:
    from jwst import datamodels
with datamodels.open(sys.argv[1]) as m:
    print(json.dumps({"steps": m.meta.cal_step.instance,
                      "refs": {k: v.get("name") for k, v in m.meta.ref_file.instance.items()
                               if isinstance(v, dict)},
                      "shape": list(m.data.shape), "finite": bool((m.data == m.data).all())}))
"""


def run_detector1(image, cache, data, *, user, extra=()):
    return docker("run", "--rm", "--network", "none", "--user", user,
                  "-v", f"{cache}:/crds:ro", "-v", f"{data}:/data", *extra,
                  image, "strun", "calwebb_detector1", "synthetic_uncal.fits", check=False)


def test_strun_detector1_with_mounted_read_only_cache_as_other_user(
        default_image, synthetic_cache, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 4321, 4321)
    docker("run", "--rm", "--network", "none", "--user", "4321:4321", "-v", f"{data}:/data",
           default_image, "python", "-m", "niriss_pipe.runtime.synth", "exposure",
           "/data/synthetic_uncal.fits")
    before = sorted(p.relative_to(synthetic_cache) for p in synthetic_cache.rglob("*"))

    proc = run_detector1(default_image, synthetic_cache, data, user="4321:4321",
                         extra=("-e", f"CRDS_CONTEXT={SYNTHETIC}"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rate = data / "synthetic_rate.fits"
    assert rate.is_file() and rate.stat().st_uid == 4321
    # The read-only cache is untouched: no lock, config or tmp files appeared.
    assert sorted(p.relative_to(synthetic_cache) for p in synthetic_cache.rglob("*")) == before

    product = json.loads(docker("run", "--rm", "--network", "none", "-v", f"{data}:/data",
                                default_image, "python", "-c", READ_PRODUCT,
                                "/data/synthetic_rate.fits").stdout)
    assert product["shape"] == [64, 64] and product["finite"]
    for step in ("dq_init", "saturation", "ipc", "superbias", "linearity", "dark_sub", "jump",
                 "ramp_fit", "gain_scale"):
        assert product["steps"][step] == "COMPLETE", (step, product["steps"])
    for reftype in ("mask", "saturation", "ipc", "superbias", "linearity", "dark", "gain",
                    "readnoise"):
        assert product["refs"][reftype].endswith(f"jwst_niriss_{reftype}_9999.fits"), product


def test_missing_context_stops_before_pipeline_with_sync_command(default_image, tmp_path):
    empty = tmp_path / "empty_cache"
    data = tmp_path / "data"
    empty.mkdir()
    data.mkdir()
    proc = run_detector1(default_image, empty, data, user=f"{os.getuid()}:{os.getgid()}")
    assert proc.returncode == 3
    message = " ".join((proc.stdout + proc.stderr).split())
    assert "jwst_1584.pmap" in message and "crds sync --contexts jwst_1584.pmap" in message
    assert "Traceback" not in message and "stpipe" not in message


def test_image_without_mount_names_the_fix(default_image):
    proc = docker("run", "--rm", "--network", "none", default_image, "strun",
                  "calwebb_detector1", "x_uncal.fits", check=False)
    assert proc.returncode == 3 and "/crds" in proc.stderr + proc.stdout


def test_clean_dry_run_lists_only_what_the_tool_made(tmp_path, default_build, synthetic_cache):
    proc = cli("clean", "--dry-run", "--cache", str(synthetic_cache), cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert any(line.startswith("would remove image") and "niriss-pipe:jwst_1584" in line
               for line in lines)
    assert any("niriss-pipe-base:bookworm-minbase-27f28161" in line for line in lines)
    assert any(line.endswith("jwst_9999.pmap") for line in lines)
    assert (synthetic_cache / "mappings/jwst/jwst_9999.pmap").is_file()  # dry run: kept
    packages = [line.split()[2].rstrip("/") for line in lines
                if line.endswith("(OS packages of a removed base)")]
    assert packages and all((Path(folder) / "manifest.json").is_file() for folder in packages)
