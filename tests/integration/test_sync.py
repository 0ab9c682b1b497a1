"""build.py sync / verify-cache / cache and baked images, against the CRDS protocol test server.

The real ``crds`` client (in build.py sync) talks JSON-RPC and HTTP to the test server in
tests/crds_server, which serves a synthetic store of real FITS references.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from niriss_pipe.crds.download import Manifest
from niriss_pipe.crds.hostcache import has_context
from niriss_pipe.crds.sync import MANIFEST
from tests.helpers import ROOT, cli, docker, remove_repository, write_spec

pytestmark = pytest.mark.engine

pytest_plugins = ["tests.crds_server.fixtures"]
LARGE_REFERENCE = "jwst_niriss_dark_0003.fits"  # what the slow_crds_server fixture pads

P1, P2 = "jwst_0001.pmap", "jwst_0002.pmap"


def sync(server, cache, *args, check=True):
    return cli("sync", "--cache", str(cache), "--server", server.url, *args, check=check)


def niriss_refs(cache: Path) -> set[str]:
    """References under their real names (a sync's temporary files are hidden)."""
    folder = cache / "references" / "jwst" / "niriss"
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")} \
        if folder.is_dir() else set()


def hidden_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob(".*") if p.is_file() and p.parent.name != "jwst"]


@pytest.fixture
def server(crds_server):
    crds_server.reset()
    return crds_server


def test_mappings_only(server, crds_manifest, tmp_path):
    proc = sync(server, tmp_path, "--context", P1, "--scope", "none")
    assert sorted(server.fetched("mapping")) == sorted(crds_manifest["contexts"][P1]["mappings"])
    assert server.fetched("reference") == []
    assert has_context(tmp_path, P1)
    assert (tmp_path / "config/jwst/ref_cache_subdir_mode").read_text().strip() == "instrument"
    assert "ready offline" in proc.stdout


def test_niriss_references_of_the_context(server, crds_manifest, tmp_path):
    proc = sync(server, tmp_path, "--context", P1)
    expected = set(crds_manifest["contexts"][P1]["references"]["niriss"])
    assert niriss_refs(tmp_path) == expected
    assert sorted(server.fetched("reference")) == sorted(expected)  # FGS never fetched
    assert "references (instrument)" in proc.stdout
    assert "references: fetched" in proc.stdout and "/s)" in proc.stdout  # bytes and rate
    assert hidden_files(tmp_path) == []


def test_dataset_scoped_references(server, crds_store, crds_manifest, default_image_id,
                                   tmp_path):
    """--datasets implies --scope datasets, chosen by the image's jwst; the pmap may be named
    without .pmap; --json."""
    proc = sync(server, tmp_path, "--context", P1.removesuffix(".pmap"), "--datasets",
                str(crds_store / "datasets"), "--image", default_image_id, "--json")
    selected = set(crds_manifest["contexts"][P1]["dataset_selects"]["niriss_sub64_uncal.fits"])
    assert niriss_refs(tmp_path) == selected
    assert selected < set(crds_manifest["contexts"][P1]["references"]["niriss"])  # strict subset
    result = json.loads(proc.stdout)  # stdout is the document alone; progress went to stderr
    assert (result["context"], result["scope"], result["references"]) == (
        P1, "datasets", len(selected))
    assert result["fetched"]["files"] == len(selected) + len(
        crds_manifest["contexts"][P1]["mappings"])
    assert result["cache"] == str(tmp_path) and result["mount"] == f"-v {tmp_path}:/crds:ro"
    assert "references (datasets)" in proc.stderr


def test_interrupted_sync_resumes_and_corrupt_download_is_refused(server, crds_manifest,
                                                                  tmp_path):
    victim = sorted(crds_manifest["contexts"][P1]["references"]["niriss"])[0]
    server.faults.corrupt.add(victim)
    proc = sync(server, tmp_path, "--context", P1, check=False)
    assert proc.returncode == 2 and victim in proc.stderr and "sha1" in proc.stderr
    assert victim not in niriss_refs(tmp_path) and hidden_files(tmp_path) == []

    server.reset()
    sync(server, tmp_path, "--context", P1)
    assert server.fetched("reference") == [victim]  # everything else was already verified
    assert niriss_refs(tmp_path) == set(crds_manifest["contexts"][P1]["references"]["niriss"])


def test_killed_sync_leaves_only_verified_files_and_resumes(server, crds_store, crds_manifest,
                                                           tmp_path):
    refs = sorted(crds_manifest["contexts"][P1]["references"]["niriss"])
    slow = refs[-1]
    server.faults.delay[slow] = 60  # the transfer that is under way when the sync dies
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), "sync", "--cache",
                             str(tmp_path), "--server", server.url, "--context", P1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(niriss_refs(tmp_path)) < len(refs) - 1 and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.kill()  # as a power cut or an OOM kill would
    proc.wait()
    present = niriss_refs(tmp_path)
    assert slow not in present and len(present) == len(refs) - 1
    for name in present:  # everything under a real name is complete and verified
        assert (tmp_path / "references/jwst/niriss" / name).read_bytes() == \
            (crds_store / "references" / name).read_bytes()

    server.reset()
    sync(server, tmp_path, "--context", P1)
    assert server.fetched("reference") == [slow]
    assert niriss_refs(tmp_path) == set(refs)


def test_corrupted_cache_file_is_detected_and_refetched(server, tmp_path):
    sync(server, tmp_path, "--context", P1)
    victim = sorted((tmp_path / "references/jwst/niriss").iterdir())[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01
    victim.write_bytes(bytes(data))

    proc = cli("verify-cache", "--cache", str(tmp_path), check=False)
    assert proc.returncode == 1 and victim.name in proc.stdout
    server.reset()
    proc = sync(server, tmp_path, "--context", P1, "--verify")
    assert server.fetched("reference") == [victim.name]
    assert "did not match the server" in proc.stdout
    assert "all" in cli("verify-cache", "--cache", str(tmp_path)).stdout


def test_two_contexts_share_one_cache(server, crds_manifest, tmp_path):
    sync(server, tmp_path, "--context", P1)
    server.reset()
    sync(server, tmp_path, "--context", P2)
    new_maps = set(crds_manifest["contexts"][P2]["mappings"]) - set(
        crds_manifest["contexts"][P1]["mappings"])
    new_refs = set(crds_manifest["contexts"][P2]["references"]["niriss"]) - set(
        crds_manifest["contexts"][P1]["references"]["niriss"])
    assert set(server.fetched("mapping")) == new_maps and len(new_maps) == 3
    assert set(server.fetched("reference")) == new_refs and len(new_refs) == 1
    assert has_context(tmp_path, P1) and has_context(tmp_path, P2)

    listing = cli("cache", "--cache", str(tmp_path)).stdout
    assert P1 in listing and P2 in listing and "niriss" in listing and "dark" in listing
    pruned = cli("cache", "--cache", str(tmp_path), "--prune", "--keep", P2).stdout
    assert "removed" in pruned
    assert not (tmp_path / "mappings/jwst" / P1).exists()
    assert niriss_refs(tmp_path) == set(crds_manifest["contexts"][P2]["references"]["niriss"])
    assert has_context(tmp_path, P2)


def test_unknown_context_and_unreachable_server(server, tmp_path):
    proc = sync(server, tmp_path, "--context", "jwst_0999.pmap", check=False)
    assert proc.returncode == 2 and "does not know the context jwst_0999.pmap" in proc.stderr
    proc = cli("sync", "--cache", str(tmp_path), "--context", P1, "--server",
               "http://localhost:9", check=False, env={"CRDS_CLIENT_TIMEOUT_SECONDS": "3"})
    assert proc.returncode == 2 and "cannot reach the CRDS server" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mounted_synced_cache_runs_detector1_offline_many_readers(
        server, crds_store, default_image, tmp_path):
    cache = tmp_path / "cache"
    sync(server, cache, "--context", P1)
    for path in [cache, *cache.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    data = tmp_path / "data"
    data.mkdir(mode=0o777)
    data.chmod(0o777)
    runs = []
    for n in (1, 2):  # two containers read the one cache at the same time
        (data / f"run{n}").mkdir()
        (data / f"run{n}").chmod(0o777)
        (data / f"run{n}" / "x_uncal.fits").write_bytes(
            (crds_store / "datasets" / "niriss_sub64_uncal.fits").read_bytes())
        runs.append(subprocess.Popen(
            ["docker", "run", "--rm", "--network", "none", "-e", f"CRDS_CONTEXT={P1}",
             "-v", f"{cache}:/crds:ro", "-v", f"{data / f'run{n}'}:/data", default_image,
             "strun", "calwebb_detector1", "x_uncal.fits"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for n, run in enumerate(runs, 1):
        output = run.communicate()[0]
        assert run.returncode == 0, output[-3000:]
        assert (data / f"run{n}" / "x_rate.fits").is_file()


def test_baked_image_runs_without_mount_and_pmap_change_rebuilds_one_layer(
        server, crds_store, engine, default_build, tmp_path):
    spec = yaml.safe_load((ROOT / "images" / "default.yaml").read_text())
    spec["name"] = "niriss-pipe-baketest"
    spec["crds"] = {"context": P1, "references": "bake", "scope": "instrument"}
    path = write_spec(tmp_path, "bake", spec)
    cache = tmp_path / "host_cache"
    try:
        proc = cli("build", str(path), "--cache", str(cache), "--server", server.url)
        assert "selftest: PASS" in proc.stdout
        image = "niriss-pipe-baketest:jwst_0001"
        labels = engine.image_labels(image)
        assert labels["io.niriss-pipe.crds.references"] == "bake"
        assert int(labels["io.niriss-pipe.crds.baked.count"]) == len(niriss_refs(cache))
        assert labels["io.niriss-pipe.crds.baked.manifest"].startswith("sha256:")

        data = tmp_path / "data"
        data.mkdir()
        data.chmod(0o777)
        (data / "x_uncal.fits").write_bytes(
            (crds_store / "datasets" / "niriss_sub64_uncal.fits").read_bytes())
        docker("run", "--rm", "--network", "none", "-v", f"{data}:/data", image,
               "strun", "calwebb_detector1", "x_uncal.fits")
        assert (data / "x_rate.fits").is_file()
        writable = docker("run", "--rm", image, "sh", "-c",
                          "touch /crds/x 2>/dev/null && echo writable || echo read-only").stdout
        assert writable.strip() == "read-only"

        # Same spec, next context: the host cache already holds all but the new files,
        # and only the references layer (and the labels after it) is rebuilt.
        server.reset()
        spec["crds"]["context"] = P2
        path.write_text(yaml.safe_dump(spec))
        proc = cli("build", str(path), "--cache", str(cache), "--server", server.url)
        stages = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()
                  if line.startswith("  ") and len(line.split()) > 1}
        for stage in ("os-packages", "python-env", "jwst", "runtime"):
            assert stages[stage] == "cached", proc.stdout
        assert stages["references"] != "cached"
        assert len(server.fetched("reference")) == 1
        assert json.loads(json.dumps(engine.image_labels("niriss-pipe-baketest:jwst_0002")))[
            "io.niriss-pipe.crds.context"] == P2
    finally:
        remove_repository("niriss-pipe-baketest")


def test_manifest_records_verified_files(server, tmp_path):
    sync(server, tmp_path, "--context", P1, "--references", "none")
    entries = json.loads((tmp_path / MANIFEST).read_text())
    assert entries and all(len(e["sha1"]) == 40 for e in entries.values())
    assert os.path.isfile(tmp_path / next(iter(entries)))


# ------------------------------------------- the cache tells the truth (issue 9, item 4)

def readable(cache: Path) -> Path:
    """Let the image's user (not root) read a cache root made."""
    for path in [cache, *cache.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return cache


def check_in_image(image: str, cache: Path, context: str, *env: str):
    """`docker run --rm --network none -v CACHE:/crds:ro IMAGE check-cache`, as a user runs it."""
    extra = [arg for item in env for arg in ("-e", item)]
    return docker("run", "--rm", "--network", "none", "-e", f"CRDS_CONTEXT={context}", *extra,
                  "-v", f"{readable(cache)}:/crds:ro", image, "check-cache", check=False)


def part_files(cache: Path) -> list[Path]:
    return sorted(cache.rglob(".*.part-*"))


def start_sync(server, cache: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "build.py"), "sync", "--cache",
                             str(cache), "--server", server.url, "--context", P1, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_in_flight(cache: Path, at_least: int, proc: subprocess.Popen) -> int:
    """Wait until the large reference's temporary file holds ``at_least`` bytes; its size."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        parts = [p for p in part_files(cache) if p.name.startswith(f".{LARGE_REFERENCE}.")]
        if parts and parts[0].stat().st_size >= at_least:
            return parts[0].stat().st_size
        time.sleep(0.05)
    raise AssertionError(f"the large transfer never got under way:\n{proc.communicate()}")


def test_store_rmaps_select_what_the_client_selects(server, crds_manifest, tmp_path):
    """The stdlib reading of the rmaps (the image's check) equals the crds client's."""
    from niriss_pipe.runtime import cachecheck

    sync(server, tmp_path, "--context", P1, "--references", "none")
    assert cachecheck.rmap_references(str(tmp_path), P1) == sorted(
        crds_manifest["contexts"][P1]["references"]["niriss"])


def test_killed_mid_file_every_check_names_the_missing_file_and_a_resync_completes_it(
        slow_crds_server, default_image_id, crds_manifest, tmp_path):
    assert slow_crds_server.large == LARGE_REFERENCE
    cache = tmp_path / "cache"
    proc = start_sync(slow_crds_server, cache)
    wait_in_flight(cache, 2**20, proc)
    proc.kill()  # kill -9: as a power cut or an OOM kill would
    proc.communicate()
    refs = set(crds_manifest["contexts"][P1]["references"]["niriss"])
    assert niriss_refs(cache) == refs - {LARGE_REFERENCE}
    assert [p.name.split(".part-")[0] for p in part_files(cache)] == [f".{LARGE_REFERENCE}"]

    verify = cli("verify-cache", "--cache", str(cache), check=False)
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert f"1 reference missing: {LARGE_REFERENCE}" in verify.stderr
    assert f"python build.py sync --context {P1} --cache {cache}" in verify.stderr
    listing = cli("cache", "--cache", str(cache)).stdout
    assert f"context {P1}: incomplete: 1 reference missing: {LARGE_REFERENCE}" in listing
    in_image = check_in_image(default_image_id, cache, P1)
    assert in_image.returncode == 3, in_image.stdout + in_image.stderr
    assert f"1 reference missing: {LARGE_REFERENCE}" in in_image.stderr

    slow_crds_server.reset()
    slow_crds_server.link = None  # the re-run need not wait for the slow link
    sync(slow_crds_server, cache, "--context", P1)
    assert slow_crds_server.fetched("reference") == [LARGE_REFERENCE]
    assert niriss_refs(cache) == refs and part_files(cache) == []
    assert "all" in cli("verify-cache", "--cache", str(cache)).stdout
    assert f"context {P1}: complete" in cli("cache", "--cache", str(cache)).stdout
    in_image = check_in_image(default_image_id, cache, P1)
    assert in_image.returncode == 0, in_image.stderr
    assert f"serves {P1} offline" in in_image.stdout and "all 10 references" in in_image.stdout


def test_ctrl_c_mid_file_exits_at_once_and_records_what_completed(slow_crds_server,
                                                                   crds_manifest, tmp_path):
    assert slow_crds_server.large == LARGE_REFERENCE
    cache = tmp_path / "cache"
    proc = start_sync(slow_crds_server, cache)
    in_flight = wait_in_flight(cache, 4 * 2**20, proc)  # the small files are done by then
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    remaining = (slow_crds_server.large_size - in_flight) / slow_crds_server.rate
    print(f"\nSIGINT to exit during a {slow_crds_server.large_size >> 20} MiB download: "
          f"{took:.2f} s (the file had {remaining:.1f} s to go)")
    assert proc.returncode == 130, out + err
    assert err.strip().splitlines()[-1].startswith("interrupted: ") and "Traceback" not in err
    assert took < remaining  # measured above; only bound: before the file could have finished
    refs = set(crds_manifest["contexts"][P1]["references"]["niriss"])
    assert niriss_refs(cache) == refs - {LARGE_REFERENCE} and part_files(cache) == []
    recorded = {Path(k).name for k in Manifest(cache / MANIFEST, cache).entries}
    assert recorded >= refs - {LARGE_REFERENCE} and LARGE_REFERENCE not in recorded
    assert f"1 reference missing: {LARGE_REFERENCE}" in cli(
        "verify-cache", "--cache", str(cache), check=False).stderr


@pytest.fixture
def small_disk(tmp_path):
    """mount(8) a tmpfs of a given size (the tests run as root, as CI does); unmounted after."""
    mounted = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                       check=True)
        mounted.append(folder)
        return folder

    try:
        yield mount
    finally:
        for folder in mounted:
            subprocess.run(["umount", str(folder)], check=True)


def test_full_disk_is_refused_before_fetching(server, small_disk):
    disk = small_disk("8k")  # not even the mappings fit
    proc = sync(server, disk, "--context", P1, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"the CRDS cache {disk} has 8.0 KiB free" in proc.stderr
    assert "13 mappings to fetch need" in proc.stderr and "Fix: free space there" in proc.stderr
    assert list(disk.iterdir()) == [] and server.fetched() == []  # nothing written or fetched

    disk = small_disk("512k")  # the mappings fit, the references do not
    server.reset()
    proc = sync(server, disk / "cache", "--context", P1, check=False)
    assert proc.returncode == 2 and "10 references to fetch need" in proc.stderr
    assert "--scope datasets --datasets" in proc.stderr and server.fetched("reference") == []
    assert not (disk / "cache" / "references").exists() and part_files(disk) == []


def test_disk_filling_mid_transfer_fails_clearly_with_nothing_partial(server, small_disk,
                                                                       monkeypatch):
    """The free-space check bypassed (another writer fills the disk meanwhile)."""
    import io

    from niriss_pipe.core.errors import UserError
    from niriss_pipe.core.progress import Reporter
    from niriss_pipe.crds import sync as syncing

    disk = small_disk("512k")
    monkeypatch.setattr(syncing, "check_space", lambda *args: None)
    request = syncing.SyncRequest(context=P1, cache=disk, server=server.url)
    with pytest.raises(UserError) as caught:
        syncing.sync(request, Reporter(out=io.StringIO()))
    message = caught.value.paragraph()
    assert f"the file system of the CRDS cache {disk} is full" in message
    assert "was not retried" in message and "Nothing partial was kept" in message
    fetched = server.fetched("reference")
    assert len(fetched) == len(set(fetched))  # no retries
    assert part_files(disk) == []
    for name in niriss_refs(disk):  # whatever has a real name is whole
        assert (disk / "references/jwst/niriss" / name).stat().st_size == int(
            server.store.metadata[name]["size"])
