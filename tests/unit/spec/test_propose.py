"""build.py new: from a pmap or a jwst release to a valid spec, through the release catalog."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from niriss_pipe.core.errors import UserError
from niriss_pipe.spec.load import load_spec
from niriss_pipe.spec.propose import for_jwst, for_pmap, render_yaml
from tests.helpers import ROOT


@pytest.mark.parametrize("pmap, tag, python, manager, source, warns", [
    ("jwst_1166", "1.12.5", "3.11", "venv", "version", False),   # a release context
    ("jwst_1170", "1.12.5", "3.11", "venv", "version", True),    # between 1.12.5 and 1.13.0
    ("jwst_1584.pmap", "3.0.0", "3.11", "venv", "version", False),
    ("jwst_1600", "3.0.0", "3.11", "venv", "version", True),     # newer than the newest
    ("jwst_0579", "0.14.2", "3.7", "conda", "git", True),        # the original recipe: GitHub
    ("jwst_1408", "1.19.2", "3.11", "venv", "version", False),   # newest of three sharing 1408
])
def test_for_pmap(pmap, tag, python, manager, source, warns):
    proposal = for_pmap(pmap)
    spec = proposal.spec()
    assert proposal.release.tag == tag
    assert spec["python"] == {"version": python, "manager": manager}
    assert source in spec["jwst"]
    assert spec["crds"]["context"] == f"{pmap.removesuffix('.pmap')}.pmap"
    assert bool(proposal.warnings) is warns


def test_for_jwst_and_pair():
    assert for_jwst("1.12.5").context == "jwst_1166.pmap"
    pair = for_jwst("1.12.5", "jwst_1200")
    assert pair.context == "jwst_1200.pmap" and "tested with jwst_1166.pmap" in pair.warnings[0]


@pytest.mark.parametrize("call, words", [
    (lambda: for_pmap("jwst_0100"), "older than every catalogued release"),
    (lambda: for_pmap("1584"), "not a CRDS pipeline context"),
    (lambda: for_jwst("9.9.9"), "not in the release catalog"),
    (lambda: for_jwst("1.9.2"), "has no regression-test context"),
])
def test_errors(call, words):
    with pytest.raises(UserError, match=words):
        call()


def test_written_spec_is_valid(tmp_path):
    for pmap in ("jwst_1166", "jwst_0579", "jwst_1584"):
        path = tmp_path / f"{pmap}.yaml"
        path.write_text(render_yaml(for_pmap(pmap)))
        assert load_spec(path).context == f"{pmap}.pmap"
        assert yaml.safe_load(path.read_text())["jwst"]


def test_cli_refuses_to_overwrite(tmp_path):
    out = tmp_path / "x.yaml"
    run = [sys.executable, str(ROOT / "build.py"), "new", "--pmap", "jwst_1166", "-o", str(out)]
    assert subprocess.run(run, capture_output=True).returncode == 0
    again = subprocess.run(run, capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr
