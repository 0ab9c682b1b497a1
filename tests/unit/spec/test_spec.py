"""Spec validation: every bad input gets a message naming the file, the field and the fix."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from niriss_pipe.core.errors import SpecError
from niriss_pipe.spec.load import load_spec, validate
from tests.helpers import ROOT

GOOD = {
    "name": "niriss-pipe",
    "crds": {"context": "jwst_1584.pmap", "references": "mount"},
    "jwst": {"version": "3.0.0"},
    "python": {"version": "3.11", "manager": "venv"},
    "base": {"suite": "bookworm"},
}


def spec_with(**changes) -> dict:
    """GOOD with dotted-path changes; a value of None deletes the key."""
    data = copy.deepcopy(GOOD)
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = data
        for parent in parents:
            node = node.setdefault(parent, {})
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return data


def error_for(data) -> SpecError:
    with pytest.raises(SpecError) as info:
        validate(data, "images/x.yaml")
    return info.value


def test_shipped_specs_are_valid():
    for path in sorted((ROOT / "images").glob("*.yaml")):
        spec = load_spec(path)
        assert spec.context.startswith("jwst_") and spec.context.endswith(".pmap")


def test_good_spec_fields():
    spec = validate(GOOD, "x.yaml")
    assert spec.name == "niriss-pipe" and spec.pmap_stem == "jwst_1584"
    assert spec.jwst.requirement == "jwst==3.0.0"
    assert spec.base.debootstrap
    assert spec.base.reference == "niriss-pipe-base:bookworm-minbase-27f28161"  # with the mirror
    assert spec.warnings == ()


@pytest.mark.parametrize("data, field, words", [
    (spec_with(colour="blue"), "colour", "not a known key"),
    (spec_with(crds__contxt="jwst_1584.pmap"), "crds.contxt", "did you mean 'context'"),
    (spec_with(crds__context="jwst_1584.imap"), "crds.context", "jwst_1584.pmap"),
    (spec_with(crds__context="JWST_1584.PMAP"), "crds.context", "four digits, lower case"),
    (spec_with(crds__context="jwst_15840.pmap"), "crds.context", "not a CRDS pipeline context"),
    (spec_with(crds__context=None), "crds.context", "is missing"),
    (spec_with(crds__niriss_imap="jwst_nircam_0123.imap"), "crds.niriss_imap", "NIRISS"),
    (spec_with(crds__references="copy"), "crds.references", "mount, bake"),
    (spec_with(crds__scope="all"), "crds.scope", "none, instrument, datasets"),
    (spec_with(crds__scope="datasets"), "crds.datasets", "is empty"),
    (spec_with(crds__datasets=["a.fits"]), "crds.datasets", "only used with scope"),
    (spec_with(crds__scope="datasets", crds__datasets=["no/such_uncal.fits"]), "crds.datasets",
     "does not exist"),
    (spec_with(python__version="3.9", base__suite="bullseye"), "python.version",
     "jwst 3.0.0 does not support Python 3.9"),
    (spec_with(python__version="3.9", base__suite="bullseye", jwst__version="1.20.2"),
     "python.version", "requires Python >=3.11,<3.14"),
    (spec_with(python__version="3.13"), "python.version", "Debian bookworm"),
    (spec_with(python__version=3.11), "python.version", "quote it"),
    (spec_with(python__version="three"), "python.version", "not a Python version"),
    (spec_with(python__manager="pixi"), "python.manager", "venv, conda"),
    (spec_with(jwst__version="latest"), "jwst.version", "not a release number"),
    (spec_with(jwst__git="https://github.com/spacetelescope/jwst"), "jwst", "both"),
    (spec_with(jwst__version=None, jwst__git="https://github.com/spacetelescope/jwst"),
     "jwst.ref", "must be pinned"),
    (spec_with(jwst__version=None, jwst__git="not a url", jwst__ref="1.0"), "jwst.git",
     "not a git URL"),
    (spec_with(jwst__version=None), "jwst", "names no jwst"),
    (spec_with(base__suite="buster"), "base.suite", "bullseye, bookworm, trixie"),
    (spec_with(base__image="debian:bookworm-slim", base__mirror="http://x"), "base.mirror",
     "only to bases made with debootstrap"),
    (spec_with(base__mirror="deb.debian.org"), "base.mirror", "not a Debian mirror URL"),
    (spec_with(name="NIRISS Pipe"), "name", "not a valid image repository name"),
    (spec_with(packages={"apt": ["gcc; rm -rf /"]}), "packages.apt", "no spaces"),
    (spec_with(packages={"pip": "astroquery"}), "packages.pip", "must be a list"),
    (spec_with(packages={"pip": ["astroquery==0.4.7", "$(evil)"]}), "packages.pip",
     "not a requirement"),
    (spec_with(python=None), "python", "is missing"),
    ([1, 2], "(top level)", "must be a mapping"),
])
def test_bad_specs(data, field, words):
    err = error_for(data)
    assert err.field == field
    text = " ".join(err.paragraph().split())
    assert text.startswith(f"images/x.yaml: field '{field}'") or field == "(top level)"
    assert words in text
    assert "Fix:" in text


def test_bake_with_dataset_scope_resolves_paths(tmp_path):
    (tmp_path / "data").mkdir()
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec_with(crds__references="bake", crds__scope="datasets",
                                             crds__datasets=["data"])))
    spec = load_spec(path)
    assert spec.references == "bake" and spec.datasets == (tmp_path / "data",)


def test_a_context_without_its_suffix_is_that_pmap():
    assert validate(spec_with(crds__context="jwst_1584"), "x.yaml").context == "jwst_1584.pmap"


def test_unknown_jwst_version_warns_but_loads():
    spec = validate(spec_with(jwst__version="3.1.0"), "x.yaml")
    assert any("not in the release catalog" in w for w in spec.warnings)


def test_unpinned_registry_base_warns():
    spec = validate(spec_with(base__image="debian:bookworm-slim"), "x.yaml")
    assert not spec.base.debootstrap and spec.base.reference == "debian:bookworm-slim"
    assert any("not pinned by digest" in w for w in spec.warnings)


def test_git_source_checked_against_catalog():
    data = spec_with(jwst__version=None, jwst__git="https://github.com/spacetelescope/jwst",
                     jwst__ref="0.14.2", python__version="3.7", python__manager="conda")
    spec = validate(data, "x.yaml")
    assert spec.jwst.requirement == "jwst @ git+https://github.com/spacetelescope/jwst@0.14.2"
    data["python"]["version"] = "3.5"
    assert "jwst 0.14.2 does not support Python 3.5" in error_for(data).paragraph()


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("crds:\n  context: [jwst_1584.pmap\n")
    with pytest.raises(SpecError, match=r"not valid YAML at line \d+"):
        load_spec(path)


@pytest.mark.parametrize("content, words", [
    (yaml.safe_dump(spec_with(crds__context="jwst_15.pmap")), "field 'crds.context'"),
    (None, "does not exist"),
])
def test_cli_user_error_is_one_paragraph_exit_2(tmp_path, content, words):
    path = tmp_path / "spec.yaml"
    if content is not None:
        path.write_text(content)
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "validate", str(path)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and words in " ".join(proc.stderr.split())
    assert "\n\n" not in proc.stderr.strip()
