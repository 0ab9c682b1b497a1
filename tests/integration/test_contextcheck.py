"""build.py check and dataset-scoped syncs: what an image's own jwst needs from a context, asked
in the image, against contexts of the CRDS test server (tests/crds_server/checkstore.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.crds_server.fixtures import build_store
from tests.crds_server.server import CRDSServer
from tests.helpers import ROOT, cli

pytestmark = pytest.mark.engine

DATASET = "niriss_sub64_uncal.fits"


@pytest.fixture(scope="session")
def check_store(tmp_path_factory, default_image) -> Path:
    store = tmp_path_factory.mktemp("crds_check_store")
    store.chmod(0o755)
    return build_store(default_image, store, "/src/tests/crds_server/checkstore.py")


@pytest.fixture(scope="session")
def check_manifest(check_store) -> dict:
    return json.loads((check_store / "store.json").read_text())


@pytest.fixture(scope="session")
def check_server(check_store):
    with CRDSServer(check_store) as server:
        yield server


@pytest.fixture(scope="session")
def synced(check_server, tmp_path_factory) -> Path:
    """One host cache holding contexts 0012-0014 with all their NIRISS references."""
    cache = tmp_path_factory.mktemp("check_cache")
    for serial in ("0012", "0013", "0014"):
        cli("sync", "--context", f"jwst_{serial}.pmap", "--cache", str(cache), "--server",
            check_server.url)
    return cache


def check(image, context, cache, *extra):
    return cli("check", image, "--context", context, "--cache", str(cache), *extra, check=False)


def test_a_complete_context_passes(default_image_id, synced):
    proc = check(default_image_id, "jwst_0012.pmap", synced)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 missing" in proc.stdout
    assert "10 NIRISS references of jwst_0012.pmap in the cache: 10 open" in proc.stdout
    assert "jwst_0012.pmap with jwst 3.0.0: all well" in proc.stdout


def test_a_context_lacking_a_detector1_rmap_names_it_and_who_asks(default_image_id, synced):
    proc = check(default_image_id, "jwst_0013.pmap", synced, "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    data = json.loads(proc.stdout)
    assert data["missing"] == {"linearity": ["linearity (calwebb_detector1)"]}
    assert data["unreadable"] == {} and data["ok"] is False
    message = " ".join(proc.stderr.split())
    assert "its NIRISS imap lacks 1 reference type the steps ask for: linearity (needed by " \
           "linearity (calwebb_detector1))" in message


def test_a_reference_the_datamodel_rejects_is_named(default_image_id, synced):
    proc = check(default_image_id, "jwst_0014.pmap", synced)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "FAILS jwst_niriss_gain_0014.fits (gain): ValueError: Array has wrong number of " \
           "dimensions" in proc.stdout
    assert "9 open with" in proc.stdout and "0 missing" in proc.stdout
    assert "1 reference of it do not open" in " ".join(proc.stderr.split())


def test_bad_input_is_exit_2(default_image_id, synced, tmp_path):
    proc = check(default_image_id, "jwst_0011.pmap", synced)  # not synced into this cache
    assert proc.returncode == 2 and "does not hold jwst_0011.pmap" in proc.stderr
    assert "sync --context jwst_0011.pmap" in proc.stderr
    proc = check("niriss-pipe:no-such-tag", "jwst_0012.pmap", synced)
    assert proc.returncode == 2 and "no image 'niriss-pipe:no-such-tag'" in proc.stderr
    spec = tmp_path / "missing.yaml"
    spec.write_text((ROOT / "images/default.yaml").read_text().replace("niriss-pipe\n",
                                                                       "niriss-pipe-none\n"))
    proc = check(str(spec), "jwst_0012.pmap", synced)
    assert proc.returncode == 2, proc.stderr


def test_dataset_scope_fetches_what_this_jwsts_steps_select(check_server, check_store,
                                                            check_manifest, default_image_id,
                                                            tmp_path):
    """Two NIRISS modes in the context; the NIS_IMAGE exposure gets its detector1 and image2
    references only, and no trapdensity (no step of jwst 3.0.0 asks for one)."""
    assert importlib.util.find_spec("jwst") is None  # the host has no jwst to ask
    check_server.reset()
    proc = cli("sync", "--context", "jwst_0011.pmap", "--cache", str(tmp_path / "cache"),
               "--server", check_server.url, "--references", "datasets", "--datasets",
               str(check_store / "datasets"), "--image", default_image_id)
    want = check_manifest["contexts"]["jwst_0011.pmap"]["dataset_selects"][DATASET]
    fetched = sorted(check_server.fetched("reference"))
    assert fetched == want and len(fetched) == 10
    assert "jwst_niriss_flat_0011.fits" in fetched and "jwst_niriss_area_0011.fits" in fetched
    assert not {"jwst_niriss_flat_0012.fits", "jwst_niriss_wfssbkg_0011.fits",
                "jwst_niriss_trapdensity_0011.fits"} & set(fetched)
    assert len(check_manifest["contexts"]["jwst_0011.pmap"]["references"]) == 15
    assert f"{DATASET}: NIS_IMAGE through calwebb_detector1, calwebb_image2: 10 references" \
        in proc.stdout
    assert "No module named 'jwst'" not in proc.stdout + proc.stderr


def test_dataset_scope_follows_the_images_jwst_release(check_server, check_store, tmp_path,
                                                       era_image_id):
    """jwst 1.12.5's persistence step asks for a trapdensity: its image selects one more,
    and says which types this context lacks for it."""
    check_server.reset()
    proc = cli("sync", "--context", "jwst_0011.pmap", "--cache", str(tmp_path / "cache"),
               "--server", check_server.url, "--references", "datasets", "--datasets",
               str(check_store / "datasets" / DATASET), "--image", era_image_id)
    fetched = set(check_server.fetched("reference"))
    assert len(fetched) == 11 and "jwst_niriss_trapdensity_0011.fits" in fetched
    assert "has no drizpars, persat, trappars for niriss" in proc.stderr


def test_dataset_scope_needs_an_image(check_server, check_store, tmp_path):
    proc = cli("sync", "--context", "jwst_0011.pmap", "--cache", str(tmp_path / "cache"),
               "--server", check_server.url, "--references", "datasets", "--datasets",
               str(check_store / "datasets"), check=False)
    assert proc.returncode == 2 and "--image IMAGE" in proc.stderr
    assert not (tmp_path / "cache" / "references").exists()


def test_a_dataset_scoped_bake_is_chosen_by_the_images_own_jwst(check_server, check_store,
                                                                default_build, engine,
                                                                tmp_path):
    """Before the image exists its environment build stage chooses: the same 10 references."""
    import yaml

    from tests.helpers import remove_repository, write_spec

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / DATASET).write_bytes((check_store / "datasets" / DATASET).read_bytes())
    spec = yaml.safe_load((ROOT / "images" / "default.yaml").read_text())
    spec["name"] = "niriss-pipe-upstream-bake"
    spec["crds"] = {"context": "jwst_0011.pmap", "references": "bake", "scope": "datasets",
                    "datasets": ["data"]}
    path = write_spec(tmp_path, "bakeds", spec)
    check_server.reset()
    try:
        proc = cli("build", str(path), "--cache", str(tmp_path / "cache"), "--server",
                   check_server.url)
        assert f"{DATASET}: NIS_IMAGE through calwebb_detector1, calwebb_image2: 10 " \
               "references" in proc.stdout
        labels = engine.image_labels("niriss-pipe-upstream-bake:jwst_0011")
        assert labels["io.niriss-pipe.crds.baked.count"] == "10"
        assert len(check_server.fetched("reference")) == 10
        assert "which the jwst of" not in proc.stderr  # the context has every type it asks for
    finally:
        remove_repository("niriss-pipe-upstream-bake")
