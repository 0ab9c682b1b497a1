"""Provenance on the real engine: inspect, verify (passing and tampered), build records, repro.

Tampered images are tiny layers on top of the default image, built with the docker SDK and
removed afterwards; the repro check makes two real no-cache builds (a few minutes).
"""

from __future__ import annotations

import hashlib
import json
from contextlib import suppress
from pathlib import Path

import pytest
import yaml

from niriss_pipe.build import records as build_records
from niriss_pipe.provenance import compare
from niriss_pipe.render import names as render
from niriss_pipe.runtime import contract
from niriss_pipe.spec import lock as locking
from niriss_pipe.spec.load import load_spec
from tests.helpers import ROOT, cli, derived_image, remove_repository, write_spec

pytestmark = pytest.mark.engine

NS = "io.niriss-pipe"
SITE = "/opt/env/lib/python3.11/site-packages"


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_inspect_text(default_image, engine):
    out = cli("inspect", default_image).stdout
    labels = engine.image_labels(default_image)
    rows = {line[:14].strip(): line[15:] for line in out.splitlines() if not line.startswith(" ")}
    assert rows["image"].startswith(f"{default_image} (")
    assert rows["jwst"] == "3.0.0 (PyPI release 3.0.0)"
    assert rows["context"].startswith("jwst_1584.pmap")
    assert rows["lock"].startswith(f"locks/default.txt {labels[f'{NS}.lock.digest']}, ")
    assert "(the image's copy matches)" in rows["lock"]
    assert rows["base"].startswith(f"niriss-pipe-base:bookworm-minbase-27f28161 "
                                   f"{labels['org.opencontainers.image.base.digest']}")
    assert rows["references"].startswith("mount")
    assert rows["python"].startswith("3.11.")
    pins = locking.pinned(ROOT / "images" / "locks" / "default.txt")
    assert rows["crds"] == pins["crds"]
    assert "  jwst==3.0.0" in out.splitlines() and f"  numpy=={pins['numpy']}" in out


def test_inspect_json_fields_equal_labels_and_lock(default_image, engine):
    info = json.loads(cli("inspect", default_image, "--json").stdout)
    labels = engine.image_labels(default_image)
    lock = ROOT / "images" / "locks" / "default.txt"
    pins = locking.pinned(lock)
    assert info["id"] == engine.image_id(default_image)
    assert default_image in info["tags"] and info["labels"] == labels
    assert info["jwst"] == {"version": labels[f"{NS}.jwst.version"], "installed": "3.0.0",
                            "git": None, "ref": None, "commit": None}
    assert info["crds"] == {"version": pins["crds"], "context": labels[f"{NS}.crds.context"],
                            "niriss_imap": labels.get(f"{NS}.crds.niriss-imap")}
    assert info["python"]["version"].startswith(labels[f"{NS}.python.version"] + ".")
    assert info["python"]["manager"] == "venv" and info["python"]["prefix"] == "/opt/env"
    assert info["lock"]["digest"] == labels[f"{NS}.lock.digest"] == locking.digest(lock)
    assert info["lock"]["image_digest"] == info["lock"]["digest"]
    assert info["lock"]["in_image"] and info["lock"]["matches_label"]
    assert info["lock"]["file"] == labels[f"{NS}.lock.file"] == "locks/default.txt"
    assert info["lock"]["packages"] == len(pins)
    assert info["base"]["name"] == labels["org.opencontainers.image.base.name"]
    assert info["base"]["digest"] == labels["org.opencontainers.image.base.digest"]
    assert info["references"] == {"mode": "mount", "scope": "instrument", "baked": None}
    installed = dict(pin.split("==") for pin in info["packages"])
    assert {k: v for k, v in installed.items() if k not in compare.SEEDED} == pins
    assert info["created"] == labels["org.opencontainers.image.created"]


def test_verify_passes_on_the_default_image(default_image):
    proc = cli("verify", default_image)
    out = proc.stdout
    assert "  lock           ok: /opt/niriss-pipe/requirements.lock matches its label sha256:" \
        in out
    assert "  environment    ok: 61 packages installed exactly as locked" in out
    assert "selftest: PASS" in out
    assert f"{default_image}: verified (lock, environment, selftest)" in out


def test_verify_names_a_removed_package(engine, default_image):
    dockerfile = (f"FROM {default_image}\nUSER root\n"
                  f"RUN rm -rf {SITE}/six.py {SITE}/six-*.dist-info\nUSER jwst\n")
    with derived_image(engine, "niriss-pipe-tamper:x", dockerfile) as tag:
        proc = cli("verify", tag, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "  environment    FAIL: 1 difference from the lock: six missing (locked 1.17.0)" \
        in proc.stdout
    message = one_line(proc.stderr)
    assert message.startswith("error: niriss-pipe-tamper:x does not match what it was built "
                              "from: the installed environment differs from the image's lock: "
                              "six missing (locked 1.17.0)")
    assert "Traceback" not in proc.stderr and len(proc.stderr.split("\n\n")) == 1


def test_verify_names_a_changed_lock(engine, default_image):
    lock = "/opt/niriss-pipe/requirements.lock"
    dockerfile = (f"FROM {default_image}\nUSER root\n"
                  f"RUN sed -i 's/^six==1.17.0/six==1.16.0/' {lock}\nUSER jwst\n")
    with derived_image(engine, "niriss-pipe-tamper:lock", dockerfile) as tag:
        proc = cli("verify", tag, "--no-selftest", check=False)
    assert proc.returncode == 1
    message = one_line(proc.stderr)
    assert "the lock inside the image (sha256:" in message
    assert "is not the one its label records (sha256:" in message
    assert "six 1.17.0 installed, locked 1.16.0" in message


def test_verify_recomputes_baked_references(engine, default_image):
    """A baked image's /crds against its manifest label: equal, then one reference changed."""
    files = {"crds/mappings/jwst/jwst_0001.pmap": b"header = {}\n",
             "crds/references/jwst/niriss/jwst_niriss_gain_0001.fits": b"G" * 2880,
             "crds/references/jwst/niriss/jwst_niriss_dark_0001.fits": b"D" * 5760,
             "crds/config/jwst/server_config": b"{}\n"}
    sha1s = {name.removeprefix("crds/"): hashlib.sha1(data).hexdigest()
             for name, data in files.items()}
    manifest = contract.manifest_digest(sha1s)
    dockerfile = (f"FROM {default_image}\nCOPY crds/ /crds/\n"
                  f'LABEL {NS}.crds.references="bake" {NS}.crds.baked.count="2" '
                  f'{NS}.crds.baked.bytes="8640" {NS}.crds.baked.manifest="{manifest}"\n')
    with derived_image(engine, "niriss-pipe-tamper:baked", dockerfile, files) as tag:
        # its references match the label; its context check fails: this stand-in cache does
        # not hold the image's own context (jwst_1584.pmap), which a run would need
        good = cli("verify", tag, "--no-selftest", check=False)
        assert f"  references     ok: 2 files, 8.4 KiB, manifest {manifest} recomputed and " \
            "equal" in good.stdout
        assert good.returncode == 1 and "  context        FAIL" in good.stdout
        assert "matches what it was built from, but" in one_line(good.stderr)
        info = json.loads(cli("inspect", tag, "--json").stdout)
        assert info["references"]["baked"] == {"count": 2, "bytes": 8640, "manifest": manifest}
        changed = (f"FROM {tag}\nUSER root\nRUN printf X >> "
                   "/crds/references/jwst/niriss/jwst_niriss_gain_0001.fits\nUSER jwst\n")
        with derived_image(engine, "niriss-pipe-tamper:baked2", changed) as bad:
            proc = cli("verify", bad, "--no-selftest", check=False)
    assert proc.returncode == 1
    message = one_line(proc.stderr)
    assert "the baked references differ: the manifest of /crds is sha256:" in message
    assert f"the label says {manifest}" in message
    assert "holds 8641 reference bytes, the label says 8640" in message


def test_inspect_and_verify_refuse_what_is_not_a_niriss_pipe_image(default_build):
    proc = cli("verify", "niriss-pipe-base:bookworm-minbase-27f28161", check=False)
    assert proc.returncode == 2 and "not built by niriss-pipe build" in one_line(proc.stderr)
    proc = cli("inspect", "niriss-pipe:no-such-tag", check=False)
    assert proc.returncode == 2 and "no image 'niriss-pipe:no-such-tag'" in proc.stderr


def check_record(path, *, spec_file, lock, image_id, repository, spec, engine):
    assert path.parent == ROOT / build_records.records_dir() / repository
    assert build_records.DATED_RE.search(path.stem)
    record = json.loads(path.read_text())
    assert record["spec"]["content"] == spec_file.read_text()
    assert record["spec"]["absolute"] == str(spec_file)
    assert record["lock"]["digest"] == locking.digest(lock)
    assert record["lock"]["packages"] == len(locking.pinned(lock))
    assert record["image"]["id"] == image_id
    assert record["image"]["tags"] == [f"{repository}:{t}" for t in
                                       (spec.pmap_stem, render.full_tag(spec))]
    assert record["image"]["content_tag"].startswith(f"{repository}:content-")
    assert record["image"]["labels"] == engine.image_labels(image_id)
    assert record["base"]["id"] == engine.image_id(spec.base.reference)
    assert record["build"]["seconds"] > 0
    assert record["build"]["ended"] >= record["build"]["started"]
    assert record["build"]["selftest"].startswith("selftest: PASS")
    assert record["tool"]["version"] and record["host"]["docker_engine"]
    latest = path.parent / f"{render.full_tag(spec)}.json"
    assert latest.is_file()  # the latest record beside the dated one that is never overwritten
    rows = [line for line in cli("inspect", image_id).stdout.splitlines()
            if line.startswith("build record   ")]
    assert rows and rows[0].endswith(f"/{path.parent.name}/{path.name}")


def _built(proc) -> tuple[str, Path]:
    """(short image id, record path) from a build's output."""
    short = next(line.split()[1] for line in proc.stdout.splitlines()
                 if line.startswith("built "))
    record = next(line.split(": ", 1)[1] for line in proc.stdout.splitlines()
                  if line.startswith("build record: "))
    return short, ROOT / record


def test_build_record_of_the_session_build(engine, default_build, default_image, tmp_path):
    proc, spec = default_build
    spec_file = ROOT / "images" / "default.yaml"
    lock = ROOT / "images" / "locks" / "default.txt"
    records = ROOT / build_records.records_dir()
    if "up to date" not in proc.stdout:  # the session built it: its record
        short, path = _built(proc)
        image_id = json.loads(path.read_text())["image"]["id"]
        assert image_id[7:19] == short
        check_record(path, spec_file=spec_file, lock=lock, image_id=image_id,
                     repository="niriss-pipe", spec=spec, engine=engine)
        return
    image_id = engine.image_id(default_image)
    path = build_records.find_record(image_id, records)
    if path is not None:  # up to date: the record of the build that made it
        check_record(path, spec_file=spec_file, lock=lock, image_id=image_id,
                     repository="niriss-pipe", spec=spec, engine=engine)
        return
    # Up to date, and that build's record is gone (build/ removed): write one with a real
    # build of a renamed copy (its layers come from the cache), leaving user tags alone.
    data = yaml.safe_load(spec_file.read_text())
    data["name"] = "niriss-pipe-test"
    copy = write_spec(tmp_path, "default", data)
    built = cli("build", str(copy))
    short, path = _built(built)
    image_id = json.loads(path.read_text())["image"]["id"]
    try:
        assert image_id[7:19] == short
        check_record(path, spec_file=copy, lock=copy.parent / "locks" / "default.txt",
                     image_id=image_id, repository="niriss-pipe-test",
                     spec=load_spec(copy), engine=engine)
    finally:
        for record in build_records.find_records(image_id, records / "niriss-pipe-test"):
            record.unlink()
        with suppress(OSError):  # other tests' records of niriss-pipe-test may remain
            (records / "niriss-pipe-test").rmdir()
        remove_repository("niriss-pipe-test")  # and its build stage


@pytest.mark.no_layer_cache
def test_repro_of_the_default_spec(engine, default_build, default_image):
    before = engine.image_id(default_image)
    # what the engine held before: a check interrupted in an earlier session may have left
    # images of its own; this one must leave none of its own and no other image
    held = {image.id for image in engine.client.images.list(all=True)}
    repro_tags = {tag for image in engine.client.images.list("niriss-pipe-repro")
                  for tag in image.tags}
    proc = cli("repro", "images/default.yaml", check=False)
    out = proc.stdout
    # Two no-cache builds are the same image, bit for bit: the session's own (same inputs).
    assert f"  image          identical ({before})" in out, out + proc.stderr
    for name in ("SCI", "ERR", "DQ"):
        assert f"selftest_rate.fits[{name}] identical" in out
    assert proc.returncode == 0, proc.stderr
    assert f"reproducible: images/default.yaml built twice with no layer cache gives the " \
           f"same image {before}" in out
    # Nothing user-facing moved and nothing of the check is left behind.
    assert engine.image_id(default_image) == before
    assert {tag for image in engine.client.images.list("niriss-pipe-repro")
            for tag in image.tags} == repro_tags
    assert {image.id for image in engine.client.images.list(all=True)} - held == set()
    assert not (ROOT / build_records.records_dir() / "niriss-pipe-repro").exists()
