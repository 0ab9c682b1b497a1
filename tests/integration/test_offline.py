"""Builds with no network: from a fetched wheelhouse, with every build step's network off; and
the base image carried as a file (base --save/--load)."""

from __future__ import annotations

import pytest
import yaml

from niriss_pipe.build.basefile import archive_image
from tests.helpers import ROOT, cli, docker, remove_repository, write_spec

pytestmark = pytest.mark.engine
REPOSITORY = "niriss-pipe-offline"
OTHER_EPOCH = "1750000001"  # the environment stage runs again
EXTRA_APT = "less"  # not in the default image: the os-packages stage runs too, offline


@pytest.fixture(scope="module")
def offline_spec(tmp_path_factory):
    folder = tmp_path_factory.mktemp("offline")
    data = yaml.safe_load((ROOT / "images" / "default.yaml").read_text())
    data["name"] = REPOSITORY
    data["packages"] = {"apt": [EXTRA_APT]}
    yield write_spec(folder, "offline", data)
    remove_repository(REPOSITORY)


def test_offline_without_the_wheels_fails_at_once_naming_fetch(offline_spec, tmp_path,
                                                                default_build):
    proc = cli("build", str(offline_spec), "--offline", "--wheels", str(tmp_path / "none"),
               check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Step 1/" not in proc.stdout + proc.stderr and "building" not in proc.stdout
    assert f"fetch {offline_spec} --to {tmp_path / 'none'}" in proc.stderr
    assert "62 wheel(s)" in proc.stderr and "uv==0.13.9, asdf==5.3.1" in proc.stderr


def test_fetch_then_offline_build_with_the_network_off(offline_spec, tmp_path, default_build,
                                                       engine):
    """Every stage runs with network_mode none, from the carried folder: os-packages (the
    spec adds a package no cached layer has) installs the fetched .deb files, and the
    environment stage (venv, uv, the 61 wheels, bytecode, pip check, import jwst) runs again
    under another SOURCE_DATE_EPOCH."""
    house = tmp_path / "wheelhouse"
    fetched = cli("fetch", str(offline_spec), "--to", str(house))
    assert "62 verified wheels" in fetched.stdout
    debs = sorted(path.name for path in (house / "os-packages").glob("*/*.deb"))
    assert f"{len(debs)} OS packages" in fetched.stdout and len(debs) > 20  # python3 and all
    assert any(name.startswith(f"{EXTRA_APT}_") for name in debs)
    proc = cli("build", str(offline_spec), "--offline", "--wheels", str(house), "-v",
               "--no-selftest", env={"SOURCE_DATE_EPOCH": OTHER_EPOCH})
    out = proc.stdout
    assert f"Unpacking {EXTRA_APT} " in out and "Unpacking python3.11-minimal " in out
    assert "uv-0.13.9.data/scripts/uv pip install" in out and "jwst 3.0.0 crds" in out
    inspected = docker("image", "inspect", f"{REPOSITORY}:jwst_1584", "--format",
                       "{{.Size}}").stdout
    assert int(inspected) > 0
    found = docker("run", "--rm", "--network", "none", "--entrypoint", "sh",
                   f"{REPOSITORY}:jwst_1584", "-c",
                   "ls /tmp /var/cache/apt/archives; dpkg-query -W -f '${Status}\\n' "
                   f"{EXTRA_APT}; cat /opt/env/lib/python3.11/site-packages/"
                   "jwst-3.0.0.dist-info/INSTALLER").stdout.split()
    # neither the wheels, uv nor the .deb files reached the image; less is installed, uv
    # installed jwst
    assert found == ["/tmp:", "/var/cache/apt/archives:", "lock", "partial", "install", "ok",
                     "installed", "uv"], found


def test_base_save_load_round_trip(tmp_path, default_build, engine):
    spec = default_build[1]
    base_id = engine.image_id(spec.base.reference)
    saved = tmp_path / "base.tar"
    cli("base", "images/default.yaml", "--save", str(saved))
    archived, config, tags = archive_image(saved)
    assert archived == base_id and tags == [spec.base.reference]
    assert config["config"]["Labels"]["io.niriss-pipe.base.suite"] == "bookworm"
    loaded = cli("base", "images/default.yaml", "--load", str(saved))
    assert base_id[7:19] in loaded.stdout and engine.image_id(spec.base.reference) == base_id
    other = write_spec(tmp_path, "other", {**yaml.safe_load((ROOT / "images" / "default.yaml")
                                                            .read_text()),
                                           "base": {"suite": "bookworm", "variant": "minbase",
                                                    "mirror": "http://ftp.debian.org/debian"}})
    refused = cli("base", str(other), "--load", str(saved), check=False)
    assert refused.returncode == 2 and "mirror 'http://deb.debian.org/debian'" in refused.stderr


def test_a_lock_with_source_releases_installs_from_the_index_and_cannot_go_offline(tmp_path):
    """jwst 1.12.5's lock: the index has jwst (and others) as sdists only. fetch refuses it,
    naming them, downloading nothing; render shows the pip-from-the-index install that build
    uses (the era image is built that way in test_upstream)."""
    house = tmp_path / "house"
    proc = cli("fetch", "images/jwst_1166.yaml", "--to", str(house), check=False)
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "source release(s) with no wheel for this image" in message
    assert "jwst==1.12.5" in message and "cannot be fetched for, or built, offline" in message
    assert not house.exists() or not any(house.iterdir())
    shown = cli("render", "--ca-bundle", "none", "images/jwst_1166.yaml").stdout
    assert "uv pip install" not in shown and "COPY wheels/" not in shown
    assert "pip install --no-cache-dir --disable-pip-version-check \\\n" \
           "      --require-hashes --no-deps -r /opt/niriss-pipe/requirements.lock" in shown
    default = cli("render", "--ca-bundle", "none", "images/default.yaml").stdout
    assert "uv-0.13.9.data/scripts/uv pip install" in default
