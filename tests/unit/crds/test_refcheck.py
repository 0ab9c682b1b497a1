"""What an image's jwst needs from a context: the host side with a stand-in engine, and the
in-image side's CRDS and datamodels parts with the host's own crds and stdatamodels (the
host has no jwst, which the in-image module reports as such)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from niriss_pipe.core.errors import EngineError, UserError
from niriss_pipe.crds import refcheck as host
from niriss_pipe.runtime import refcheck, synth

ANSWER = {"jwst": "3.0.0", "crds": "13.2.7", "imap": "jwst_niriss_0013.imap",
          "pipelines": ["calwebb_detector1", "calwebb_image2"], "steps": 25,
          "datamodels": "stdatamodels.jwst.datamodels",
          "reftypes": {"linearity": {"users": ["linearity (calwebb_detector1)"], "imap": None},
                       "gain": {"users": ["jump (calwebb_detector1)"], "imap": "x.rmap"},
                       "msaoper": {"users": ["msa_flagging (calwebb_spec2)"], "imap": "N/A"}},
          "pars": {"pars-jumpstep": {"users": ["jump (calwebb_detector1)"], "imap": None},
                   "pars-detector1pipeline": {"users": ["calwebb_detector1 (itself)"],
                                              "imap": "y.rmap"}},
          "references": [{"name": "jwst_niriss_gain_0014.fits", "reftype": "gain",
                          "error": "ValueError: Array has wrong number of dimensions.",
                          "warnings": []},
                         {"name": "jwst_niriss_mask_0001.fits", "reftype": "mask",
                          "error": None, "warnings": []}]}


class Engine:
    """Stands in for engine.client.Engine: records the run, answers as refcheck would."""

    def __init__(self, answer, code=0):
        self.answer, self.code, self.runs = answer, code, []

    def run_split(self, image, command, *, volumes=None, environment=None, user=None):
        self.runs.append({"image": image, "command": command, "volumes": volumes,
                          "environment": environment})
        return self.code, "noise\n" + refcheck.MARK + json.dumps(self.answer) + "\n", ""


def cache_with(tmp_path, context="jwst_0013.pmap"):
    (tmp_path / "config" / "jwst").mkdir(parents=True)
    (tmp_path / "config" / "jwst" / "server_config").write_text("{}")
    (tmp_path / "mappings" / "jwst").mkdir(parents=True)
    (tmp_path / "mappings" / "jwst" / context).write_text("header = {}\nselector = {}\n")
    return tmp_path


def test_missing_types_are_named_with_their_users_and_pars_are_not_failures(tmp_path):
    engine = Engine(ANSWER)
    result = host.check_context(engine, "img", "jwst_0013.pmap", cache_with(tmp_path))
    assert result.missing == {"linearity": ["linearity (calwebb_detector1)"]}
    assert result.pars_missing == {"pars-jumpstep": ["jump (calwebb_detector1)"]}
    assert [r["name"] for r in result.unreadable] == ["jwst_niriss_gain_0014.fits"]
    assert not result.ok
    assert result.problems() == [
        "linearity (needed by linearity (calwebb_detector1))",
        "jwst_niriss_gain_0014.fits (gain): ValueError: Array has wrong number of dimensions."]
    text = "\n".join(result.lines())
    assert "3 declared by 25 steps of calwebb_detector1, calwebb_image2: 2 in " \
           "jwst_niriss_0013.imap, 1 missing" in text
    assert "MISSING linearity: asked for by linearity (calwebb_detector1)" in text
    assert "1 of 2 in the imap (the other steps run with their built-in parameters)" in text
    assert "FAILS jwst_niriss_gain_0014.fits (gain): ValueError" in text
    run = engine.runs[0]
    assert run["volumes"] == {str(tmp_path.resolve()): {"bind": "/crds", "mode": "ro"}}
    assert run["environment"]["CRDS_CONTEXT"] == "jwst_0013.pmap"
    assert "serverless" in run["environment"]["CRDS_SERVER_URL"]
    assert run["command"][:2] == ["/opt/env/bin/python", "-c"]


def test_a_cache_without_the_context_is_bad_input_with_the_sync_command(tmp_path):
    with pytest.raises(UserError, match="does not hold jwst_0012.pmap") as caught:
        host.check_context(Engine(ANSWER), "img", "jwst_0012.pmap", cache_with(tmp_path))
    assert "sync --context jwst_0012.pmap --cache" in caught.value.fix
    with pytest.raises(UserError, match="not a CRDS pipeline context name"):
        host.check_context(Engine(ANSWER), "img", "jwst_12.pmap\n", cache_with(tmp_path / "b"))


def test_an_image_without_jwst_is_an_engine_error():
    with pytest.raises(EngineError, match="no jwst in this image"):
        host.run_refcheck(Engine({"error": "no jwst in this image: No module named 'jwst'"},
                                 code=3), "img", {"what": "check", "context": "x"}, cache=None)


def test_selection_maps_the_images_answer_back_to_the_host_paths(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a_uncal.fits").write_text("")
    (tmp_path / "b_uncal.fits").write_text("")
    answer = {"datasets": {
        "/mnt/datasets/1/a_uncal.fits": {"exp_type": "NIS_IMAGE", "pipelines": [],
                                         "selected": {"dark": "d.fits", "gain": "g.fits"},
                                         "not_in_imap": []},
        "/mnt/datasets/0/b_uncal.fits": {"exp_type": "NIS_WFSS", "pipelines": [],
                                         "selected": {"dark": "d.fits", "flat": "f.fits"},
                                         "not_in_imap": []}}}
    engine = Engine(answer)
    selection = host.select_references(engine, "img", "jwst_0011.pmap", cache_with(tmp_path / "c"),
                                       [data / "a_uncal.fits", tmp_path / "b_uncal.fits"])
    assert selection.names == ["d.fits", "f.fits", "g.fits"]
    assert set(selection.per_dataset) == {str(data / "a_uncal.fits"),
                                          str(tmp_path / "b_uncal.fits")}
    opts = json.loads(engine.runs[0]["command"][3])
    assert opts["datasets"] == ["/mnt/datasets/0/b_uncal.fits", "/mnt/datasets/1/a_uncal.fits"]
    assert engine.runs[0]["volumes"][str(data)] == {"bind": "/mnt/datasets/1", "mode": "ro"}
    bad = Engine({"datasets": {"/mnt/datasets/0/b_uncal.fits": {"error": "OSError: not FITS"}}})
    with pytest.raises(UserError, match="cannot read the header of"):
        host.select_references(bad, "img", "jwst_0011.pmap", cache_with(tmp_path / "d"),
                               [tmp_path / "b_uncal.fits"])


def test_a_path_that_breaks_the_mount_syntax_is_refused(tmp_path):
    odd = tmp_path / "a:b"
    odd.mkdir()
    with pytest.raises(UserError, match="cannot be mounted into the image"):
        host.mount(odd, "/crds", "--cache")


# -- the in-image side, with the host's crds and stdatamodels -------------------------------

def write_context(root):
    """A NIRISS context of two types (gain: a file; ipc: N/A), as the crds client loads it."""
    mapdir, refdir = root / "mappings" / "jwst", root / "references" / "jwst" / "niriss"
    mapdir.mkdir(parents=True)
    refdir.mkdir(parents=True)
    (root / "config" / "jwst").mkdir(parents=True)
    (root / "config" / "jwst" / "server_config").write_text(synth._server_config(
        "jwst_0099.pmap"))
    (mapdir / "jwst_niriss_gain_0099.rmap").write_text(
        synth._rmap("gain", "jwst_niriss_gain_0099.rmap", "jwst_niriss_gain_0099.fits"))
    (mapdir / "jwst_niriss_0099.imap").write_text(synth._imap(
        "jwst_niriss_0099.imap", {"gain": "jwst_niriss_gain_0099.rmap", "ipc": "N/A"}))
    (mapdir / "jwst_0099.pmap").write_text(synth._pmap("jwst_0099.pmap",
                                                       "jwst_niriss_0099.imap"))
    return refdir / "jwst_niriss_gain_0099.fits"


def test_selections_and_held_references_through_the_crds_client(tmp_path):
    ref = write_context(tmp_path)
    code = """
import json, sys
from niriss_pipe.runtime import refcheck
imap = refcheck.imap_of("jwst_0099.pmap")
print(json.dumps([refcheck.selections(imap), refcheck.held_references(imap)]))
"""
    env = {**os.environ, "CRDS_PATH": str(tmp_path), "CRDS_MODE": "local",
           "CRDS_READONLY_CACHE": "1", "CRDS_SERVER_URL": "https://jwst-serverless.stsci.edu",
           "PYTHONPATH": str(host.Path(refcheck.__file__).parents[2])}
    run = lambda: json.loads(subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], env=env, capture_output=True, text=True,
        check=True).stdout.splitlines()[-1])
    selections, held = run()
    assert selections == {"gain": "jwst_niriss_gain_0099.rmap", "ipc": "N/A"}
    assert held == []  # named by the rmap, not in the cache
    ref.write_bytes(b"")
    assert run()[1] == [["gain", "jwst_niriss_gain_0099.fits", str(ref)]]


def test_a_reference_the_datamodel_rejects_is_named_with_its_error(tmp_path):
    from astropy.io import fits
    from stdatamodels.jwst import datamodels

    good = tmp_path / "good.fits"
    model = datamodels.GainModel(data=np.ones((8, 8), dtype=np.float32))
    model.save(str(good))
    assert refcheck.open_problem(datamodels, "gain", str(good))[0] is None
    bad = tmp_path / "bad.fits"
    with fits.open(good) as hdul:
        hdul["SCI"].data = np.ones((2, 8, 8), dtype=np.float32)
        hdul.writeto(bad)
    error, _notes = refcheck.open_problem(datamodels, "gain", str(bad))
    assert error.startswith("ValueError: Array has wrong number of dimensions")
    (tmp_path / "x.json").write_text("{not json")
    assert refcheck.open_problem(datamodels, "extract1d", str(tmp_path / "x.json"))[0] \
        .startswith("JSONDecodeError")


def test_without_jwst_the_in_image_side_says_so(capsys):
    assert refcheck.main({"what": "check", "context": "jwst_0001.pmap"}) == 3
    answer = json.loads(capsys.readouterr().out.split(refcheck.MARK, 1)[1])
    assert answer["error"].startswith("no jwst in this image")
