"""Locks for real: resolution dated by the release (PyPI), builds from locks, tampering caught."""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from niriss_pipe.spec import lock
from niriss_pipe.spec.load import load_spec
from tests.helpers import ROOT, cli, docker, remove_repository, write_spec

pytestmark = [pytest.mark.engine, pytest.mark.network]


def upload_dates(name: str, version: str) -> list[str]:
    request = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        files = json.load(response)["files"]
    def norm(text: str) -> str:  # wheel and sdist names spell '-', '_' and '.' differently
        return re.sub(r"[-_.]+", "_", text).lower()

    prefix = norm(f"{name}-{version}-")
    return [f["upload-time"][:10] for f in files if norm(f["filename"]).startswith(prefix)]


def test_1_12_era_lock_is_dated_and_reproducible(tmp_path):
    """Re-resolving the committed 1.12.5 lock gives the same pins; none is newer than the day."""
    shutil.copy(ROOT / "images/jwst_1166.yaml", tmp_path / "jwst_1166.yaml")
    proc = cli("lock", str(tmp_path / "jwst_1166.yaml"))
    assert "wrote" in proc.stdout
    fresh = lock.pinned(tmp_path / "locks/jwst_1166.txt")
    assert fresh == lock.pinned(ROOT / "images/locks/jwst_1166.txt")
    assert fresh["numpy"].startswith("1.") and fresh["crds"].startswith("11.")
    with ThreadPoolExecutor(8) as pool:
        dates = dict(zip(fresh, pool.map(lambda kv: upload_dates(*kv), fresh.items())))
    for name, days in dates.items():
        assert days, f"no upload date found for {name}=={fresh[name]}"
        # uv's --exclude-newer DAY keeps uploads up to the end of DAY (UTC), here the day
        # after jwst 1.12.5 was released (2023-10-19): crds 11.17.7 came out on 2023-10-20.
        assert min(days) <= "2023-10-20", (name, fresh[name], min(days))


def test_era_release_builds_from_its_lock(engine):
    """jwst 1.12.5 (an sdist) with the environment of October 2023, self-tested."""
    proc = cli("build", "images/jwst_1166.yaml")
    if "up to date" not in proc.stdout:
        assert "selftest: PASS" in proc.stdout
    installed = json.loads(docker("run", "--rm", "--network", "none", "niriss-pipe:jwst_1166",
                                  "python", "-m", "pip", "list", "--format=json").stdout)
    versions = {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in installed}
    for name, version in lock.pinned(ROOT / "images/locks/jwst_1166.txt").items():
        assert versions.get(name) == version, name
    labels = engine.image_labels("niriss-pipe:jwst_1166")
    assert labels["io.niriss-pipe.lock.digest"] == lock.digest(ROOT / "images/locks/jwst_1166.txt")
    verified = cli("verify", "niriss-pipe:jwst_1166").stdout
    assert "environment    ok" in verified and "selftest: PASS" in verified


def _tamper(locked, fix_digest: bool) -> None:
    """Every hash of one package changed (pip accepts a file matching any listed hash); with
    ``fix_digest`` the body digest is forged too, as a careful attacker would."""
    text = locked.read_text()
    block = re.search(r"^numpy==\S+ \\\n(?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", text,
                      re.MULTILINE).group(0)
    text = text.replace(block, re.sub(r"[0-9a-f]{64}", "0" * 64, block))
    if fix_digest:
        header, body, _ = lock.split_lock(text)
        text = re.sub(r"# body: sha256:[0-9a-f]{64}", f"# body: sha256:{lock.body_digest(body)}",
                      header) + body
    locked.write_text(text)


def test_lock_edited_by_hand_is_refused_before_any_build(tmp_path):
    spec = yaml.safe_load((ROOT / "images/default.yaml").read_text())
    spec["name"] = "niriss-pipe-tampered"
    path = write_spec(tmp_path, "edited", spec)
    _tamper(tmp_path / "locks/edited.txt", fix_digest=False)
    proc = cli("build", str(path), check=False)
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "no longer matches the digest" in message, message
    assert f"python build.py lock {path}" in message and "building" not in proc.stdout
    # The fix it names works: the lock is resolved again, the same as the shipped one.
    cli("lock", str(path))
    assert lock.pinned(tmp_path / "locks/edited.txt") == lock.pinned(
        ROOT / "images/locks/default.txt")
    lock.check(load_spec(path))


def test_tampered_lock_fails_the_build_with_no_tag(engine, tmp_path, default_build):
    spec = yaml.safe_load((ROOT / "images/default.yaml").read_text())
    spec["name"] = "niriss-pipe-tampered"
    path = write_spec(tmp_path, "tampered", spec)
    _tamper(tmp_path / "locks/tampered.txt", fix_digest=True)
    assert load_spec(path)  # still a valid spec: the lock's inputs are unchanged
    try:
        proc = cli("build", str(path), check=False)
        message = " ".join(proc.stderr.split())
        # The host checks every file against the lock before the build: the index (the real
        # PyPI) lists no numpy file with those hashes, so nothing is downloaded or built.
        assert proc.returncode == 2, message
        assert re.search(r"the index lists no file of numpy==\S+ for this image with a hash "
                         r"the lock names .*the lock was edited", message), message
        assert "building" not in proc.stdout
        assert [t for i in engine.client.images.list("niriss-pipe-tampered") for t in i.tags] == []
    finally:
        remove_repository("niriss-pipe-tampered")


def test_build_refuses_a_stale_lock_before_building(tmp_path):
    spec = yaml.safe_load((ROOT / "images/default.yaml").read_text())
    spec["packages"] = {"pip": ["astroquery==0.4.7"]}
    path = write_spec(tmp_path, "stale", spec)
    proc = cli("build", str(path), check=False)
    assert proc.returncode == 2 and "stale" in proc.stderr and "building" not in proc.stdout
