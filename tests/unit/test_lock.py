"""Locks: inputs recorded, stale and missing locks refused before any build."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from niriss_pipe import lock
from niriss_pipe.errors import SpecError
from niriss_pipe.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spec_copy(tmp_path):
    shutil.copy(ROOT / "images/default.yaml", tmp_path / "default.yaml")
    (tmp_path / "locks").mkdir()
    shutil.copy(ROOT / "images/locks/default.txt", tmp_path / "locks/default.txt")
    return load_spec(tmp_path / "default.yaml")


def test_shipped_locks_are_fresh_and_pin_jwst_and_crds():
    for name in ("default", "jwst_1464", "jwst_1166"):
        spec = load_spec(ROOT / "images" / f"{name}.yaml")
        path = lock.check(spec)
        pins = lock.pinned(path)
        assert pins["jwst"] == spec.jwst.version and "crds" in pins and "numpy" in pins
        assert path.read_text().count("--hash=sha256:") >= len(pins)


def test_inputs_name_python_platform_and_day():
    spec = load_spec(ROOT / "images/jwst_1166.yaml")
    got = lock.inputs(spec, "2023-10-20")
    assert got.requirements == ("jwst==1.12.5",)
    assert (got.python, got.platform) == ("3.11", "x86_64-manylinux_2_36")


def test_missing_lock_is_refused_with_the_command(spec_copy):
    (spec_copy.path.parent / "locks/default.txt").unlink()
    with pytest.raises(SpecError) as info:
        lock.check(spec_copy)
    text = " ".join(info.value.paragraph().split())
    assert "has no lock file" in text and "python build.py lock" in text


@pytest.mark.parametrize("change", [
    {"pip_packages": ("astroquery==0.4.7",)},
    {"python_version": "3.13"},
])
def test_stale_lock_is_refused(spec_copy, change):
    if "python_version" in change:
        change = {**change, "base": dataclasses.replace(spec_copy.base, suite="trixie")}
    with pytest.raises(SpecError, match="stale"):
        lock.check(dataclasses.replace(spec_copy, **change))


def test_lock_without_recorded_inputs_is_stale(spec_copy):
    path = spec_copy.path.parent / "locks/default.txt"
    path.write_text("\n".join(line for line in path.read_text().splitlines()
                              if not line.startswith("# inputs:")))
    with pytest.raises(SpecError, match="recorded nothing"):
        lock.check(spec_copy)


def test_cutoff_needs_a_catalogued_release(spec_copy):
    unknown = dataclasses.replace(spec_copy, jwst=dataclasses.replace(spec_copy.jwst,
                                                                      version="3.1.0"))
    with pytest.raises(SpecError, match="--exclude-newer"):
        lock.cutoff(unknown)
