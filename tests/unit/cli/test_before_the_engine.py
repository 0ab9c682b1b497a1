"""What a user typed wrong is refused before any engine is asked (the socket here does not
exist, so reaching for it would say 'cannot reach a Docker Engine'), and a command refused
before any work leaves no log: repro's spec and lock, verify's --only and --junit,
reproduce's product, input and cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits

from tests.helpers import ROOT, write_spec


def typed(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NIRISS_PIPE_LOGS"}
    env["DOCKER_HOST"] = f"unix://{cwd}/no-engine.sock"
    return subprocess.run([sys.executable, str(ROOT / "build.py"), *args], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=120)


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Docker Engine" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, proc.stderr
    return proc.stderr


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_repro_checks_the_spec_and_its_lock_before_the_engine_and_writes_no_log(tmp_path):
    refused(typed("repro", "nonexist.yaml", cwd=tmp_path), "nonexist.yaml",
            "does not exist")
    (tmp_path / "list.yaml").write_text("- name: niriss-pipe\n")
    refused(typed("repro", "list.yaml", cwd=tmp_path), "list.yaml", "must be a mapping")
    data = yaml.safe_load((ROOT / "images" / "default.yaml").read_text())
    (tmp_path / "nolock.yaml").write_text(yaml.safe_dump(data))
    refused(typed("repro", "nolock.yaml", cwd=tmp_path), "has no lock file",
            "python build.py lock nolock.yaml")
    assert listing(tmp_path) == ["list.yaml", "nolock.yaml"]  # no build/logs/


def test_repro_of_a_good_spec_with_no_engine_leaves_no_log(tmp_path):
    spec = write_spec(tmp_path, "good", yaml.safe_load(
        (ROOT / "images" / "default.yaml").read_text()))
    proc = typed("repro", str(spec), cwd=tmp_path)
    assert proc.returncode == 2 and "cannot reach a Docker Engine" in proc.stderr, proc.stderr
    assert "The whole log" not in proc.stderr and not (tmp_path / "build").exists()


@pytest.mark.parametrize("extra, words", [
    (["--only", "x;y"], ["--only 'x;y': not a dotted module name"]),
    (["--upstream", "--only", "jwst.linearity", "a\nb"], ["--only 'a\\nb'"]),
    (["--upstream", "--junit", "results"], ["--junit 'results' is a folder",
                                            "--junit results/upstream.xml"]),
    (["--upstream", "--junit", "nowhere/x.xml"], ["does not exist or is not writable"]),
    (["--junit", "x.xml"], ["none run without --upstream", "add --upstream"]),
])
def test_verify_refuses_its_upstream_options_before_the_engine(tmp_path, extra, words):
    (tmp_path / "results").mkdir()
    refused(typed("verify", "niriss-pipe:x", *extra, cwd=tmp_path), *words)
    assert listing(tmp_path) == ["results"]


def test_reproduce_checks_the_product_and_the_cache_before_the_engine(tmp_path):
    header = fits.Header()
    for key, value in {"CAL_VER": "1.12.5", "CRDS_CTX": "jwst_1166.pmap",
                       "R_DARK": "crds://jwst_niriss_dark_0171.fits"}.items():
        header[key] = value
    fits.HDUList([fits.PrimaryHDU(header=header),
                  fits.ImageHDU(np.zeros((4, 4), np.float32), name="SCI")]).writeto(
        tmp_path / "x_rate.fits")
    (tmp_path / "x_uncal.fits").write_bytes(b"")
    base = ["reproduce", "x_rate.fits", "--input", "x_uncal.fits"]
    refused(typed(*base[:3], "absent_uncal.fits", cwd=tmp_path), "absent_uncal.fits")
    refused(typed(*base, "--cache", "nocache", cwd=tmp_path), "there is no CRDS cache at nocache",
            "sync --for x_rate.fits --cache nocache")
    (tmp_path / "cache").mkdir()
    refused(typed(*base, "--cache", "cache", cwd=tmp_path), "does not hold jwst_1166.pmap")
    assert listing(tmp_path) == ["cache", "x_rate.fits", "x_uncal.fits"]  # no report folder
