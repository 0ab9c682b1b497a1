"""build.py export, run by the real HPC runtimes: Podman (docker-archive, OCI archive) and
Charliecloud (dir, SquashFS), as root and as a normal user; Apptainer's script with a stand-in.

Never skipped: without podman, ch-run, mksquashfs or runuser these fail, because CI installs
them (.ci/install-runtimes). Each runtime must give what docker run gives: strun found,
CRDS_CONTEXT set, the image and the CRDS cache not writable, the self-test passing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from niriss_pipe.export.apptainer import sif_script
from niriss_pipe.export.facts import ImageFacts, image_facts
from tests.helpers import cli

pytestmark = [pytest.mark.engine, pytest.mark.cluster]

SYNTHETIC = "jwst_9999.pmap"
NOBODY = "nobody"
# What each runtime must show inside the container, one KEY=VALUE per line.
PROBE = """
echo "strun=$(command -v strun)"
echo "context=$CRDS_CONTEXT"
echo "readonly_cache=$CRDS_READONLY_CACHE"
echo "user=$(id -un)"
for dir in /opt /crds /usr/local/bin; do
    if touch "$dir/.probe" 2>/dev/null; then rm -f "$dir/.probe"; echo "writable=$dir"; fi
done
"""


def run(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n--- stdout\n"
                             f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    return proc


def sha256_of(stream):
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
    return digest


def probe_values(output: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key, []).append(value)
    return values


def assert_like_docker_run(output: str, facts: ImageFacts, user: str) -> None:
    """strun from the image's environment, its context, and nothing of the image writable."""
    found = probe_values(output)
    strun = facts.env_value("PATH").split(":")[0] + "/strun"
    assert found.get("strun") == [strun], output
    assert found.get("context") == [facts.env_value("CRDS_CONTEXT")] == ["jwst_1584.pmap"], output
    assert found.get("readonly_cache") == ["1"], output
    assert found.get("user") == [user], output
    assert "writable" not in found, output


def assert_selftest_passed(proc: subprocess.CompletedProcess) -> None:
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "selftest: PASS" in text, text[-3000:]


# -- exports, once per module ------------------------------------------------------------------
@pytest.fixture(scope="module")
def area():
    """A folder every uid can traverse (pytest's own tmp is private to root), removed after."""
    path = Path(tempfile.mkdtemp(prefix="niriss-export-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def facts(engine, default_image) -> ImageFacts:
    return image_facts(engine, default_image)


def export(image: str, fmt: str, out: Path) -> Path:
    """``export --json``: the document on stdout names what was written; progress on stderr."""
    proc = cli("export", image, "--to", fmt, "-o", str(out), "--json")
    assert f"as {fmt} in" in proc.stderr and str(out) in proc.stderr, proc.stderr
    document = json.loads(proc.stdout)
    assert (document["image"], document["format"]) == (image, fmt)
    assert [o["path"] for o in document["outputs"]] == [str(out.resolve())]
    assert document["outputs"][0]["bytes"] > 100 * 2**20  # the whole image
    return out


@pytest.fixture(scope="module")
def docker_archive(area, default_image) -> Path:
    return export(default_image, "docker-archive", area / "image.tar")


@pytest.fixture(scope="module")
def oci_archive(area, default_image) -> Path:
    return export(default_image, "oci", area / "image.oci.tar")


@pytest.fixture(scope="module")
def ch_dir(area, default_image) -> Path:
    return export(default_image, "dir", area / "image")


@pytest.fixture(scope="module")
def ch_squashfs(area, default_image) -> Path:
    return export(default_image, "squashfs", area / "image.sqfs")


@pytest.fixture(scope="module")
def shared_cache(area, synthetic_cache) -> Path:
    """The synthetic CRDS cache where a normal user can read it but not write it."""
    cache = area / "crds"
    shutil.copytree(synthetic_cache, cache)
    for folder, _dirs, files in os.walk(cache):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return cache


# -- Podman ------------------------------------------------------------------------------------
@pytest.fixture
def podman(area):
    """``podman`` with a private, empty image store (the user's own store is never touched)."""
    store = Path(tempfile.mkdtemp(prefix="podman-", dir=area))
    runroot = Path(tempfile.mkdtemp(prefix="podrun-"))  # podman wants it under 50 characters
    base = ["podman", "--root", str(store), "--runroot", str(runroot)]

    def podman_cmd(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(*base, *args, check=check)

    yield podman_cmd
    run(*base, "rmi", "--all", "--force", check=False)
    for path in (store, runroot):
        shutil.rmtree(path, ignore_errors=True)


def load_and_run(podman, archive: Path, facts: ImageFacts, cache: Path) -> None:
    loaded = podman("load", "-i", str(archive))
    assert f"localhost/{facts.name}" in loaded.stdout + loaded.stderr
    image_id = podman("image", "inspect", "--format", "{{.Id}}", f"localhost/{facts.name}")
    assert "sha256:" + image_id.stdout.strip() == facts.id  # the very same config
    assert_selftest_passed(podman("run", "--rm", "--network", "none", facts.id, "selftest",
                                  check=False))
    mount = ("-v", f"{cache}:/crds:ro")
    probe = podman("run", "--rm", "--network", "none", *mount, facts.id, "sh", "-c", PROBE)
    assert_like_docker_run(probe.stdout, facts, user="jwst")
    podman("run", "--rm", "--network", "none", *mount, "-e", f"CRDS_CONTEXT={SYNTHETIC}",
           facts.id, "check-cache")  # the mounted cache is complete for that context


def test_docker_archive_runs_in_podman(docker_archive, podman, facts, shared_cache):
    with tarfile.open(docker_archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] == [facts.name]
    load_and_run(podman, docker_archive, facts, shared_cache)


def test_oci_archive_is_a_valid_layout_and_runs_in_podman(oci_archive, podman, facts,
                                                          shared_cache):
    with tarfile.open(oci_archive) as tar:
        assert json.load(tar.extractfile("oci-layout")) == {"imageLayoutVersion": "1.0.0"}
        index = json.load(tar.extractfile("index.json"))
        (entry,) = index["manifests"]
        assert entry["annotations"]["org.opencontainers.image.ref.name"] == facts.name
        blobs = {}
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith("blobs/sha256/"):
                digest = sha256_of(tar.extractfile(member))
                assert digest.hexdigest() == member.name.rsplit("/", 1)[1], member.name
                blobs["sha256:" + digest.hexdigest()] = member.size
        manifest = json.load(tar.extractfile("blobs/sha256/" + entry["digest"].split(":")[1]))
    assert manifest["config"]["digest"] == facts.id
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
        assert blobs[layer["digest"]] == layer["size"]
    load_and_run(podman, oci_archive, facts, shared_cache)


# -- Charliecloud ------------------------------------------------------------------------------
def ch_run(image: Path, *command: str, user: str = "root", binds: dict | None = None,
           env: tuple[str, ...] = (), cwd: str | None = None, check: bool = True,
           ) -> subprocess.CompletedProcess:
    """``ch-run`` with the image's environment only (host variables cleared), a private /tmp,
    through the image's entrypoint; as ``user`` (ch-run needs $USER)."""
    args = ["ch-run", "--private-tmp", "--unset-env=*", "--set-env",
            *(f"--set-env={item}" for item in env),
            *(f"--bind={src}:{dst}" for src, dst in (binds or {}).items()),
            *(["--cd", cwd] if cwd else []), str(image), "--",
            "niriss-pipe-entrypoint", *command]
    if user != "root":
        args = ["runuser", "-u", user, "--", *args]
    return run(*args, check=check, env={**os.environ, "USER": user}, cwd="/")


def test_charliecloud_dir_selftest_as_root_plain_set_env(ch_dir, facts):
    """The shortest form, as the README gives it first: the image's ENV over the host's."""
    environment = (ch_dir / "ch" / "environment").read_text().splitlines()
    assert environment == list(facts.env)
    for mount_point in ("etc/hosts", "etc/resolv.conf", "mnt/0", "proc", "sys", "dev", "tmp"):
        assert (ch_dir / mount_point).exists(), mount_point
    assert not (ch_dir / ".dockerenv").exists() and not list((ch_dir / "dev").iterdir())
    home = ch_dir.parent / "root-home"  # the host's HOME passes through: keep it in the area
    home.mkdir()
    proc = run("ch-run", "--set-env", str(ch_dir), "--", "niriss-pipe-entrypoint", "selftest",
               check=False, env={**os.environ, "USER": "root", "HOME": str(home)}, cwd="/")
    assert_selftest_passed(proc)
    assert_like_docker_run(ch_run(ch_dir, "sh", "-c", PROBE).stdout, facts, user="root")


def test_charliecloud_dir_selftest_as_normal_user(ch_dir, facts):
    assert_selftest_passed(ch_run(ch_dir, "selftest", user=NOBODY, check=False))
    assert_like_docker_run(ch_run(ch_dir, "sh", "-c", PROBE, user=NOBODY).stdout, facts,
                           user=NOBODY)


def test_charliecloud_strun_with_bound_cache_as_normal_user(ch_dir, shared_cache, area):
    """detector1 on a synthetic exposure against the host cache at /crds, output in /data."""
    data = area / "ch-data"
    data.mkdir()
    shutil.chown(data, NOBODY)
    binds = {data: "/data", shared_cache: "/crds"}
    before = sorted(p.relative_to(shared_cache) for p in shared_cache.rglob("*"))
    ch_run(ch_dir, "python", "-m", "niriss_pipe.runtime.synth", "exposure",
           "/data/synthetic_uncal.fits", user=NOBODY, binds=binds)
    proc = ch_run(ch_dir, "strun", "calwebb_detector1", "synthetic_uncal.fits", user=NOBODY,
                  binds=binds, env=(f"CRDS_CONTEXT={SYNTHETIC}",), cwd="/data", check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    rate = data / "synthetic_rate.fits"
    assert rate.is_file() and rate.owner() == NOBODY
    # ch-run 0.31 binds read-write: the cache is safe because its user cannot write it and
    # CRDS_READONLY_CACHE=1; nothing appeared in it.
    probe = ch_run(ch_dir, "sh", "-c", PROBE, user=NOBODY, binds=binds)
    assert "writable=/crds" not in probe.stdout
    assert sorted(p.relative_to(shared_cache) for p in shared_cache.rglob("*")) == before


def test_squashfs_mounts_in_charliecloud_as_user_and_root(ch_squashfs, ch_dir, facts):
    """ch-run mounts the file itself (libsquashfuse; a normal user needs /dev/fuse)."""
    with open(ch_squashfs, "rb") as stream:
        assert stream.read(4) == b"hsqs"
    assert_selftest_passed(ch_run(ch_squashfs, "selftest", user=NOBODY, check=False))
    assert_like_docker_run(ch_run(ch_squashfs, "sh", "-c", PROBE).stdout, facts, user="root")
    # Same tree as the dir export.
    listed = run("unsquashfs", "-d", "", "-l", str(ch_squashfs)).stdout.splitlines()
    in_dir = [str(Path(folder, name).relative_to(ch_dir)) for folder, dirs, files
              in os.walk(ch_dir) for name in dirs + files]
    assert sorted(p.lstrip("/") for p in listed if p.strip("/")) == sorted(in_dir)


# -- Apptainer (not installable here: the script, run with a stand-in) -------------------------
FAKE_APPTAINER = """#!/bin/sh
# Stand-in for `apptainer build OUT docker-archive:TAR`: checks the arguments and the archive.
set -eu
[ "$1" = build ] && [ "$#" = 3 ]
archive=${3#docker-archive:}
[ "$3" != "$archive" ] && tar -tf "$archive" manifest.json >/dev/null
echo "SIF from $archive" >"$2"
"""


def test_sif_export_writes_archive_and_build_script(area, default_image, facts, tmp_path):
    out = area / "jwst.sif"
    proc = cli("export", default_image, "--to", "sif", "-o", str(out))
    archive, script = area / "jwst.docker.tar", area / "jwst.sif.sh"
    if shutil.which("apptainer") or shutil.which("singularity"):
        assert out.is_file() and not archive.exists(), proc.stdout
        return
    assert not out.exists() and "sh " in proc.stdout
    assert script.read_text() == sif_script(facts, "jwst.sif", "jwst.docker.tar")
    assert os.access(script, os.X_OK)
    with tarfile.open(archive) as tar:
        config = json.load(tar.extractfile("manifest.json"))[0]["Config"]
    assert facts.id.endswith(config.removesuffix(".json"))
    fake = tmp_path / "bin" / "apptainer"
    fake.parent.mkdir()
    fake.write_text(FAKE_APPTAINER)
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    built = run("sh", str(script), env=env, cwd="/")
    assert built.stdout.strip() == f"wrote {out}"
    assert out.read_text() == "SIF from jwst.docker.tar\n"
    assert not (area / "jwst.sif.partial").exists()


# -- errors: one paragraph with the fix, nothing written -----------------------------------------
def test_export_errors_name_the_fix_and_write_nothing(area, default_image, tmp_path):
    before = set(area.iterdir())
    proc = cli("export", "niriss-pipe:no_such_tag", "--to", "oci", check=False)
    assert proc.returncode == 2 and "no image 'niriss-pipe:no_such_tag'" in proc.stderr
    proc = cli("export", default_image, "--to", "squashfs-image", check=False)
    assert proc.returncode == 2 and "did you mean 'squashfs'" in proc.stderr
    existing = area / "taken.tar"
    existing.write_text("keep me")
    proc = cli("export", default_image, "--to", "docker-archive", "-o", str(existing),
               check=False)
    assert proc.returncode == 2 and "--force" in proc.stderr
    assert existing.read_text() == "keep me"
    bare = tmp_path / "bin"  # a PATH with tar but no mksquashfs
    bare.mkdir()
    (bare / "tar").symlink_to(shutil.which("tar"))
    proc = cli("export", default_image, "--to", "squashfs", "-o", str(area / "x.sqfs"),
               check=False, env={"PATH": str(bare)})
    assert proc.returncode == 2 and "squashfs-tools" in proc.stderr
    assert "Traceback" not in proc.stderr
    existing.unlink()
    assert set(area.iterdir()) == before
