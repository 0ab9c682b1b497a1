"""``new --from``, ``sync --for`` and ``reproduce`` on products the images make themselves.

The synthetic exposure goes through calwebb_detector1 in the default image (the synthetic
context, and the CRDS test server's context); the product is then reproduced bit for bit,
copies with one SCI pixel changed and one DQ bit flipped are reported exactly, and what is
missing (the context in the cache, an image with the product's jwst) stops it before any run.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from astropy.io import fits

from niriss_pipe.crds.product import read_product
from niriss_pipe.provenance.reproduce import matches, pick_image
from niriss_pipe.spec import catalog
from tests.helpers import cli, docker

pytestmark = pytest.mark.engine
pytest_plugins = ["tests.crds_server.fixtures"]

SYNTHETIC = "jwst_9999.pmap"
UNCAL = "jw_repro_nis_uncal.fits"
RATE = "jw_repro_nis_rate.fits"


def user() -> str:
    return f"{os.getuid()}:{os.getgid()}"


def detector1(image: str, cache: Path, data: Path, context: str) -> None:
    docker("run", "--rm", "--network", "none", "--user", user(), "-e", f"CRDS_CONTEXT={context}",
           "-v", f"{cache}:/crds:ro", "-v", f"{data}:/data", image,
           "strun", "calwebb_detector1", UNCAL)


@pytest.fixture(scope="module")
def made(tmp_path_factory, default_image_id, synthetic_cache) -> Path:
    """A folder with the synthetic exposure and the rate product the default image made."""
    data = tmp_path_factory.mktemp("made")
    docker("run", "--rm", "--network", "none", "--user", user(), "-v", f"{data}:/data",
           default_image_id, "python", "-m", "niriss_pipe.runtime.synth", "exposure",
           f"/data/{UNCAL}")
    detector1(default_image_id, synthetic_cache, data, SYNTHETIC)
    assert (data / RATE).is_file()
    return data


def reproduce(product: Path, data: Path, cache: Path, out: Path, *extra: str, check=False):
    return cli("reproduce", str(product), "--input", str(data / UNCAL), "--cache", str(cache),
               "-o", str(out), *extra, check=check)


def test_new_from_gives_the_jwst_and_context_of_the_product(made, engine, default_image_id,
                                                            tmp_path):
    labels = engine.image_labels(default_image_id)
    proc = cli("new", "--from", str(made / RATE), "-o", str(tmp_path / "again.yaml"))
    spec = (tmp_path / "again.yaml").read_text()
    assert f"version: {labels['io.niriss-pipe.jwst.version']}" in spec
    assert f"context: {SYNTHETIC}" in spec
    assert "synthetic context" in proc.stderr  # jwst_9999 is not an STScI context
    assert f"sync --for {made / RATE}" in proc.stdout


def test_reproduce_matches_bit_for_bit(made, default_image_id, synthetic_cache, tmp_path):
    out = tmp_path / "report"
    proc = reproduce(made / RATE, made, synthetic_cache, out, "--image", default_image_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "identical: 5 extensions compared" in proc.stdout
    answer = json.loads((out / "comparison.json").read_text())
    assert answer["comparison"]["verdict"] == "identical"
    assert {r["extension"] for r in answer["comparison"]["extensions"]} == {
        "SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE", "ASDF"}
    # Run as the product says: its skipped steps skipped, the others run.
    command = " ".join(answer["commands"][0])
    assert "--steps.group_scale.skip=true" in command and "--steps.jump.skip=false" in command
    assert (out / "sci_1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "**identical**" in report and "![sci_1.png](sci_1.png)" in report
    assert (out / RATE).is_file() and (out / "strun.log").is_file()


def test_the_image_is_picked_by_the_products_jwst(made, engine):
    product = read_product(made / RATE)
    images = engine.images_with_label("io.niriss-pipe.tool.version")
    picked = pick_image(images, product)
    assert picked is not None and matches(picked.labels, product.cal_ver)
    assert picked.labels["io.niriss-pipe.jwst.version"] == product.cal_ver


def copy_with(made: Path, folder: Path, name: str, change) -> Path:
    path = folder / name
    shutil.copy(made / RATE, path)
    with fits.open(path, mode="update") as hdus:
        change(hdus)
    return path


def test_one_changed_sci_pixel_and_one_flipped_dq_bit_are_reported_exactly(
        made, default_image_id, synthetic_cache, tmp_path):
    def sci(hdus):
        hdus["SCI"].data[10, 20] += 0.25

    def dq(hdus):
        hdus["DQ"].data[5, 6] ^= 4  # bit 2, JUMP_DET

    changed = copy_with(made, tmp_path, "sci_nis_rate.fits", sci)
    proc = reproduce(changed, made, synthetic_cache, tmp_path / "sci", "--image",
                     default_image_id)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = {r["extension"]: r for r in json.loads(
        (tmp_path / "sci" / "comparison.json").read_text())["comparison"]["extensions"]}
    assert (rows["SCI"]["differing"], rows["SCI"]["max_abs"]) == (1, 0.25)
    assert all(rows[e]["identical"] for e in ("ERR", "DQ", "VAR_POISSON", "VAR_RNOISE"))
    assert "SCI          1 of 4096 pixels differ; largest 0.25" in proc.stdout

    flipped = copy_with(made, tmp_path, "dq_nis_rate.fits", dq)
    proc = reproduce(flipped, made, synthetic_cache, tmp_path / "dq", "--image",
                     default_image_id, "--atol", "1e9", "--json")  # no tolerance hides a bit
    assert proc.returncode == 1, proc.stdout + proc.stderr
    document = json.loads(proc.stdout)  # --json: the verdict on stdout, the summary on stderr
    assert (document["verdict"], document["image"]) == ("different", default_image_id)
    assert document["report"] == str(tmp_path / "dq" / "report.md")
    rows = {r["extension"]: r for r in json.loads(
        (tmp_path / "dq" / "comparison.json").read_text())["comparison"]["extensions"]}
    assert document["comparison"]["extensions"] == list(rows.values())
    assert rows["DQ"]["differing"] == 1 and rows["SCI"]["identical"]
    assert [(b["bit"], b["name"], b["count"], b["only_given"]) for b in rows["DQ"]["bits"]] == [
        (2, "JUMP_DET", 1, 1)]
    assert "DQ bit 2 (JUMP_DET, 4): 1 pixel (1 set in given only)" in proc.stderr
    assert (tmp_path / "dq" / "dq_1.png").is_file()


def test_a_context_not_in_the_cache_fails_before_running(made, synthetic_cache, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    proc = reproduce(made / RATE, made, empty, out)
    assert proc.returncode == 2 and "does not hold jwst_9999.pmap" in proc.stderr
    assert f"sync --for {made / RATE} --cache {empty}" in proc.stderr
    assert not out.exists()  # nothing ran, nothing was written
    partial = tmp_path / "partial"
    shutil.copytree(synthetic_cache, partial)
    (partial / "references/jwst/niriss/jwst_niriss_dark_9999.fits").unlink()
    proc = reproduce(made / RATE, made, partial, out)
    assert proc.returncode == 2 and "lacks 1 of the 8 references" in proc.stderr
    assert "jwst_niriss_dark_9999.fits" in proc.stderr and not out.exists()
    odd = tmp_path / "a:b"
    odd.mkdir()
    shutil.copy(made / RATE, odd / RATE)
    proc = reproduce(odd / RATE, made, synthetic_cache, out)
    assert proc.returncode == 2 and "cannot be mounted into a container" in proc.stderr


def test_a_product_of_a_jwst_with_no_image_names_the_commands_to_build_one(
        made, engine, synthetic_cache, tmp_path):
    labels = [i.labels for i in engine.images_with_label("io.niriss-pipe.tool.version")]
    release = next(r.tag for r in catalog.releases().values()
                   if not any(matches(lab, r.tag) for lab in labels))

    def older(hdus):
        hdus[0].header["CAL_VER"] = release

    product = copy_with(made, tmp_path, "old_nis_rate.fits", older)
    proc = reproduce(product, made, synthetic_cache, tmp_path / "out")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    assert f"no local image has jwst {release}" in message
    for command in (f"new --from {product}", "lock images/jwst_9999.yaml",
                    "build images/jwst_9999.yaml"):
        assert f"python build.py {command}" in message, message


def test_sync_for_a_product_fetches_exactly_its_references_and_reproduces(
        crds_server, crds_store, default_image_id, tmp_path):
    """A product of the CRDS test server's context: ``sync --for`` fetches what its R_*
    keywords name (the real client places them) and the context's mappings; reproduce runs
    from that cache alone."""
    crds_server.reset()
    full = tmp_path / "full"
    cli("sync", "--cache", str(full), "--server", crds_server.url, "--context", "jwst_0001.pmap")
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(crds_store / "datasets" / "niriss_sub64_uncal.fits", data / UNCAL)
    detector1(default_image_id, full, data, "jwst_0001.pmap")
    product = read_product(data / RATE)
    assert product.crds_ctx == "jwst_0001.pmap" and len(product.reference_names) == 8

    crds_server.reset()
    cache = tmp_path / "for_product"
    proc = cli("sync", "--for", str(data / RATE), "--cache", str(cache), "--server",
               crds_server.url)
    assert sorted(crds_server.fetched("reference")) == product.reference_names
    manifest = json.loads((crds_store / "store.json").read_text())
    assert sorted(crds_server.fetched("mapping")) == sorted(
        manifest["contexts"]["jwst_0001.pmap"]["mappings"])
    assert "ready offline" in proc.stdout
    record = json.loads((cache / "config/jwst/niriss-pipe-contexts.json").read_text())
    assert record["jwst_0001.pmap"]["references"] == product.reference_names
    assert record["jwst_0001.pmap"]["datasets"] == [RATE]

    out = tmp_path / "report"
    proc = reproduce(data / RATE, data, cache, out, "--image", default_image_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((out / "comparison.json").read_text())["comparison"]["verdict"] == \
        "identical"
