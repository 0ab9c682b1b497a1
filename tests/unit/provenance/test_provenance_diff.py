"""Provenance comparisons (pure): lock vs installed environment, manifests, build records."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np

from niriss_pipe.build import bake, records
from niriss_pipe.build.options import BuildOptions
from niriss_pipe.provenance import compare
from niriss_pipe.provenance.imagediff import ImageDiff, LayerDiff
from niriss_pipe.provenance.probe import probe_source, read_answer
from niriss_pipe.provenance.repro import ReproReport, compare_products
from niriss_pipe.render.context import DiskFile
from niriss_pipe.runtime import contract

LOCK = """\
# niriss-pipe lock for x.yaml: do not edit
# inputs: {"python": "3.11"}
asdf==5.3.1 \\
    --hash=sha256:c96c936cb65e75d8778d889f274f79ac90464a9ef2e7b794227dc204235fdcdf
Asdf_Astropy==0.11.0 \\
    --hash=sha256:10ff554382bb10b1bc931159d2c91e4399487c27afc0051c90a062112e9f0b7f
jwst[contrib]==3.0.0 \\
    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000
six==1.17.0 \\
    --hash=sha256:1111111111111111111111111111111111111111111111111111111111111111
"""


def test_lock_pins_normalises_names_and_skips_hashes():
    assert contract.lock_pins(LOCK) == {"asdf": "5.3.1", "asdf-astropy": "0.11.0",
                                          "jwst": "3.0.0", "six": "1.17.0"}


def test_identical_environment_ignores_venv_seeds():
    installed = {"asdf": "5.3.1", "asdf_astropy": "0.11.0", "JWST": "3.0.0", "six": "1.17.0",
                 "pip": "23.0.1", "setuptools": "66.1.1", "wheel": "0.40"}
    diff = compare.compare_environment(contract.lock_pins(LOCK), installed)
    assert diff.ok and diff.problems() == []


def test_missing_extra_and_changed_packages_are_named():
    installed = {"asdf": "5.4.0", "asdf-astropy": "0.11.0", "jwst": "3.0.0", "numpy": "2.4.6",
                 "pip": "23.0.1"}
    diff = compare.compare_environment(contract.lock_pins(LOCK), installed)
    assert not diff.ok
    assert diff.missing == {"six": "1.17.0"}
    assert diff.extra == {"numpy": "2.4.6"}
    assert diff.changed == {"asdf": ("5.3.1", "5.4.0")}
    assert diff.problems() == ["six missing (locked 1.17.0)",
                               "asdf 5.4.0 installed, locked 5.3.1",
                               "numpy 2.4.6 installed but not in the lock"]


def test_a_locked_seed_is_still_compared():
    diff = compare.compare_environment({"pip": "24.0"}, {"pip": "23.0.1"})
    assert diff.changed == {"pip": ("24.0", "23.0.1")}


def test_versions_compare_as_versions():
    diff = compare.compare_environment({"a": "1.0"}, {"a": "1.0.0"})
    assert diff.ok
    assert not compare.compare_environment({"a": "1.0"}, {"a": "1.0.post1"}).ok


def test_bake_labels_the_manifest_of_exactly_the_files_it_copies(tmp_path, monkeypatch):
    """The manifest label covers the copied mappings and references, not the config."""
    cache = tmp_path / "cache"
    files = {"mappings/jwst/jwst_0001.pmap": b"pmap", "mappings/jwst/jwst_niriss_0001.imap":
             b"imap", "references/jwst/niriss/jwst_niriss_dark_0001.fits": b"dark" * 100,
             "references/jwst/niriss/jwst_niriss_gain_0001.fits": b"gain"}
    written = []
    for rel, data in files.items():
        path = cache / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(type("W", (), {"dest": path.resolve(), "sha1": hashlib.sha1(data)
                                      .hexdigest(), "size": len(data)})())
    (cache / "config" / "jwst").mkdir(parents=True)
    (cache / "config" / "jwst" / "server_config").write_text("{}")

    class Result:
        mapping_files = [w for w in written if "mappings" in str(w.dest)]
        reference_files = [w for w in written if "references" in str(w.dest)]

    monkeypatch.setattr(bake, "sync", lambda request, reporter: Result)
    spec = type("S", (), {"context": "jwst_0001.pmap", "scope": "instrument", "datasets": ()})
    baked = bake.bake_cache(spec, BuildOptions(cache=cache), None)
    sha1s = {rel: hashlib.sha1(data).hexdigest() for rel, data in files.items()}
    sha1s["config/jwst/server_config"] = "ignored: config is not part of the manifest"
    assert contract.manifest_digest(sha1s) == baked.buildargs["NIRISS_PIPE_REFERENCES_MANIFEST"]
    assert all(isinstance(v, DiskFile) for v in baked.disk.values())
    # the context's record rides along, so the image's check-cache knows the references (the
    # only source for scope datasets): this context only, no host path, no time
    record = json.loads(baked.files["crds/config/jwst/niriss-pipe-contexts.json"])
    assert record == {"jwst_0001.pmap": {
        "scope": "instrument", "instrument": "niriss", "complete": True,
        "references": ["jwst_niriss_dark_0001.fits", "jwst_niriss_gain_0001.fits"]}}


def test_probe_manifests_match_the_host_functions(tmp_path):
    """The in-image probe (run here with this Python) computes the same manifest digest, the
    same counts, and an /opt/env style manifest with symlinks and without bytecode."""
    crds = tmp_path / "crds"
    for rel, data in {"mappings/jwst/a.pmap": b"a", "references/jwst/niriss/r.fits": b"rrr",
                      "config/jwst/server_config": b"{}"}.items():
        (crds / rel).parent.mkdir(parents=True, exist_ok=True)
        (crds / rel).write_bytes(data)
    env = tmp_path / "env"
    (env / "lib" / "pkg" / "__pycache__").mkdir(parents=True)
    (env / "lib" / "pkg" / "__init__.py").write_text("x = 1\n")
    (env / "lib" / "pkg" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"pyc")
    (env / "lib" / "pkg" / "stray.pyc").write_bytes(b"pyc")
    (env / "lib64").symlink_to("lib")
    (env / "bin").mkdir()
    (env / "bin" / "python").symlink_to("/usr/bin/python3.11")
    opts = json.dumps({"lock": str(tmp_path / "none"), "crds": str(crds), "env": str(env)})
    out = subprocess.run([sys.executable, "-c", probe_source(), opts], capture_output=True,
                         text=True, check=True).stdout
    probe = read_answer(out)
    assert probe["lock"] is None
    assert probe["crds_manifest"] == {
        "files": 2, "count": 1, "bytes": 3,
        "manifest": contract.manifest_digest({"mappings/jwst/a.pmap": hashlib.sha1(b"a")
                                                .hexdigest(),
                                                "references/jwst/niriss/r.fits":
                                                hashlib.sha1(b"rrr").hexdigest()})}
    assert probe["env_manifest"] == {
        "lib/pkg/__init__.py": "sha256:" + hashlib.sha256(b"x = 1\n").hexdigest(),
        "lib64": "link:lib", "bin/python": "link:/usr/bin/python3.11"}
    assert "pytest" in probe["packages"]


def test_manifest_diff_names_paths():
    first = {"a": "sha256:1", "b": "sha256:2", "c": "link:x", "d": "sha256:4"}
    second = {"a": "sha256:1", "b": "sha256:9", "c": "link:y", "e": "sha256:5"}
    diff = compare.compare_manifests(first, second)
    assert not diff.ok and diff.count == 4 and diff.total == 5
    assert diff.differing == ["b", "c"]
    assert diff.only_first == ["d"] and diff.only_second == ["e"]
    assert diff.paths(3) == ["b (differs)", "c (differs)", "d (only in build 1)"]
    assert compare.compare_manifests(first, dict(first)).ok


def _fits(path, sci, err, dq):
    from astropy.io import fits

    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(sci, name="SCI"),
                  fits.ImageHDU(err, name="ERR"), fits.ImageHDU(dq, name="DQ")]).writeto(path)
    return path


def test_products_compare_bit_for_bit(tmp_path):
    sci = np.arange(12, dtype=np.float32).reshape(3, 4)
    err = np.full((3, 4), np.nan, dtype=np.float32)
    dq = np.zeros((3, 4), dtype=np.uint32)
    a = _fits(tmp_path / "a.fits", sci, err, dq)
    b = _fits(tmp_path / "b.fits", sci.copy(), err.copy(), dq.copy())
    assert compare_products(a, b) == {"SCI": "identical", "ERR": "identical", "DQ": "identical"}
    sci2 = sci.copy()
    sci2[0, 0] = -0.0  # equal as numbers to 0.0, not as bits
    dq2 = dq.copy()
    dq2[1, :2] = 4
    c = _fits(tmp_path / "c.fits", sci2, err, dq2)
    verdicts = compare_products(a, c)
    assert verdicts == {"SCI": "1 of 12 pixels differ", "ERR": "identical",
                        "DQ": "2 of 12 pixels differ"}


def test_repro_report_lists_differences():
    first, second = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    layer = LayerDiff(4, "sha256:" + "a" * 64, "sha256:" + "b" * 64, "COPY dir:x in /opt/env",
                      ["opt/env/y: content aaaaaaaaaaaa vs bbbbbbbbbbbb"], 1)
    report = ReproReport(image_ids=[first, second],
                         image=ImageDiff(first, second, ["config.Labels.x"], [layer]),
                         arrays={"SCI": "identical", "ERR": "identical", "DQ": "1 of 4 pixels "
                                 "differ"})
    assert not report.ok
    problems = report.problems()
    assert problems[0] == ("the images differ (111111111111 and 222222222222): config fields "
                           "config.Labels.x; layer 5 (1 files)")
    assert "DQ (1 of 4 pixels differ)" in problems[1]
    lines = "\n".join(report.lines())
    assert "layer 5" in lines and "opt/env/y: content" in lines


def test_repro_report_of_the_same_image_is_ok():
    same = "sha256:" + "3" * 64
    report = ReproReport(image_ids=[same, same], image=ImageDiff(same, same),
                         arrays={"SCI": "identical", "ERR": "identical", "DQ": "identical"})
    assert report.ok and report.lines()[0] == f"  image          identical ({same})"


def test_build_records_keep_older_ones(tmp_path):
    import datetime as dt

    when = dt.datetime(2026, 11, 25, 14, 5, 12, tzinfo=dt.timezone.utc)
    latest, dated = records.record_paths("niriss-pipe", "jwst_1584-jwst3.0.0-py3.11", when,
                                            tmp_path)
    assert latest == tmp_path / "niriss-pipe" / "jwst_1584-jwst3.0.0-py3.11.json"
    assert dated.name == "jwst_1584-jwst3.0.0-py3.11.20261125T140512Z.json"
    for path, image in ((dated, "sha256:a"), (latest, "sha256:a")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"image": {"id": image}}))
    (tmp_path / "niriss-pipe" / "broken.json").write_text("{")
    assert set(records.find_records("sha256:a", tmp_path)) == {latest, dated}
    assert records.find_record("sha256:a", tmp_path) == dated  # the one never overwritten
    assert records.find_record("sha256:b", tmp_path) is None
