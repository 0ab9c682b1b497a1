"""Export without an engine: the Apptainer script (golden), the OCI layout written from a
docker-archive, Charliecloud's tree fix-ups, and the checks and staging that keep a failed
export from leaving anything half-written."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from niriss_pipe.cli.main import main
from niriss_pipe.core.errors import UserError
from niriss_pipe.export import apptainer, charliecloud, formats, oci
from niriss_pipe.export.facts import ImageFacts
from niriss_pipe.export.staging import Staging
from tests.helpers import GOLDEN

FACTS = ImageFacts(
    reference="niriss-pipe:jwst_1584",
    id="sha256:" + "5e1f" * 16,
    tags=("niriss-pipe:jwst_1584", "niriss-pipe:jwst_1584-jwst3.0.0-py3.11"),
    env=("PATH=/opt/env/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
         "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive", "CRDS_PATH=/crds",
         "CRDS_SERVER_URL=https://jwst-serverless-mode.stsci.edu", "CRDS_MODE=local",
         "CRDS_READONLY_CACHE=1", "MPLBACKEND=Agg", "CRDS_CONTEXT=jwst_1584.pmap"),
    entrypoint=("/usr/local/bin/niriss-pipe-entrypoint",),
    cmd=("info",),
)


# -- Apptainer script ----------------------------------------------------------------------------
def test_sif_script_golden():
    """The script is reviewed in tests/golden; UPDATE_GOLDEN=1 rewrites it."""
    text = apptainer.sif_script(FACTS, "niriss-pipe_jwst_1584.sif",
                             "niriss-pipe_jwst_1584.docker.tar")
    golden = GOLDEN / "default.sif.sh"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    assert max(len(line) for line in text.splitlines()) <= 100


def _script_in(folder: Path, sif: str = "my image.sif") -> Path:
    archive = sif.removesuffix(".sif") + ".docker.tar"
    (folder / archive).write_text("archive")
    script = folder / f"{sif}.sh"
    script.write_text(apptainer.sif_script(FACTS, sif, archive))
    return script


def _fake_builder(folder: Path, name: str, body: str) -> dict:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\n{body}\n")
    (folder / name).chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:/usr/bin:/bin"}


def test_sif_script_builds_with_apptainer_then_renames(tmp_path):
    script = _script_in(tmp_path)
    env = _fake_builder(tmp_path / "bin", "apptainer",
                        'echo "$@" >"$2"; test "$3" = "docker-archive:my image.docker.tar"')
    proc = subprocess.run(["sh", str(script)], env=env, cwd="/", capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "my image.sif").read_text() == (
        "build my image.sif.partial docker-archive:my image.docker.tar\n")
    assert proc.stdout == f"wrote {tmp_path}/my image.sif\n"


def test_sif_script_failed_build_leaves_no_sif(tmp_path):
    script = _script_in(tmp_path)
    env = _fake_builder(tmp_path / "bin", "singularity", 'echo half >"$2"; exit 3')
    proc = subprocess.run(["sh", str(script)], env=env, cwd="/", capture_output=True, text=True)
    assert proc.returncode == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bin", "my image.docker.tar", "my image.sif.sh"]


def test_sif_script_without_apptainer_says_so(tmp_path):
    script = _script_in(tmp_path)
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and "install Apptainer" in proc.stderr


# -- OCI layout ----------------------------------------------------------------------------------
def _layer(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _docker_archive(path: Path, layers: list[bytes], corrupt: bool = False) -> bytes:
    """A minimal ``docker save`` tar (Docker 20.10 layout); returns its config bytes."""
    diff_ids = ["sha256:" + hashlib.sha256(b"x" if corrupt else layer).hexdigest()
                for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["CRDS_CONTEXT=jwst_1584.pmap"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    members = {config_name: config}
    names = []
    for number, layer in enumerate(layers):
        names.append(f"{number:064x}/layer.tar")
        members[names[-1]] = layer
    members["manifest.json"] = json.dumps([{"Config": config_name, "Layers": names,
                                            "RepoTags": ["niriss-pipe:jwst_1584"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1700000000
            tar.addfile(info, io.BytesIO(data))
    return config


def test_oci_layout_from_docker_archive(tmp_path):
    base, top = _layer({"etc/os-release": b"debian"}), _layer({"opt/env/bin/strun": b"#!"})
    config = _docker_archive(tmp_path / "image.tar", [base, top, base])  # a repeated layer
    out = io.BytesIO()
    digest = oci.docker_archive_to_oci(tmp_path / "image.tar", out, "niriss-pipe:jwst_1584")
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        blobs = {m.name.rsplit("/", 1)[1]: tar.extractfile(m).read()
                 for m in tar.getmembers() if m.isfile() and m.name.startswith("blobs/")}
        index = json.load(tar.extractfile("index.json"))
        layout = json.load(tar.extractfile("oci-layout"))
        assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in tar.getmembers())
    assert layout == {"imageLayoutVersion": "1.0.0"}
    assert all(hashlib.sha256(data).hexdigest() == name for name, data in blobs.items())
    assert len(blobs) == 4  # two layers, config, manifest
    (entry,) = index["manifests"]
    assert entry["digest"] == digest and entry["size"] == len(blobs[digest[7:]])
    assert entry["annotations"] == {"org.opencontainers.image.ref.name": "niriss-pipe:jwst_1584"}
    manifest = json.loads(blobs[digest[7:]])
    assert manifest["mediaType"] == oci.OCI_MANIFEST
    assert manifest["config"]["digest"] == "sha256:" + hashlib.sha256(config).hexdigest()
    assert blobs[manifest["config"]["digest"][7:]] == config  # the Docker image id is kept
    assert [layer["digest"] for layer in manifest["layers"]] == [
        "sha256:" + hashlib.sha256(layer).hexdigest() for layer in (base, top, base)]
    assert [layer["size"] for layer in manifest["layers"]] == [len(base), len(top), len(base)]


def test_oci_layout_is_deterministic(tmp_path):
    _docker_archive(tmp_path / "image.tar", [_layer({"a": b"1"})])
    first, second = io.BytesIO(), io.BytesIO()
    oci.docker_archive_to_oci(tmp_path / "image.tar", first, "x:y")
    os.utime(tmp_path / "image.tar", (0, 0))
    oci.docker_archive_to_oci(tmp_path / "image.tar", second, "x:y")
    assert first.getvalue() == second.getvalue()


def test_oci_layout_refuses_a_layer_that_does_not_match_its_digest(tmp_path):
    _docker_archive(tmp_path / "image.tar", [_layer({"a": b"1"})], corrupt=True)
    with pytest.raises(UserError, match=r"does not match its\s+digest"):
        oci.docker_archive_to_oci(tmp_path / "image.tar", io.BytesIO())


# -- Charliecloud tree -------------------------------------------------------------------------
def test_charliecloud_fixups(tmp_path):
    root = tmp_path / "root"
    (root / "usr" / "locked").mkdir(parents=True)
    (root / "usr" / "locked").chmod(0o555)
    charliecloud.charliecloud_fixups(root, FACTS)
    assert (root / "ch" / "environment").read_text() == "\n".join(FACTS.env) + "\n"
    for name in (*charliecloud.MOUNT_DIRS, *charliecloud.MOUNT_FILES):
        assert (root / name).exists(), name
    assert (root / "usr" / "locked").stat().st_mode & 0o777 == 0o755  # removable by its owner


def test_environment_with_newline_is_refused():
    facts = ImageFacts("x", "sha256:0", (), ("A=1\n2",), (), ())
    with pytest.raises(UserError, match="newline"):
        charliecloud.environment_file(facts)


# -- checks, names and staging ----------------------------------------------------------------
def test_unknown_format_suggests_the_close_one():
    with pytest.raises(UserError, match="did you mean 'squashfs'"):
        formats.check_format("squash")


def test_cli_unknown_format_fails_before_the_engine(capsys):
    assert main(["export", "niriss-pipe:jwst_1584", "--to", "singularity-image"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert "--to: invalid choice: 'singularity-image'" in err and "Fix:" in err


def test_the_cli_knows_every_export_format():
    """cli/export names the formats for argparse without importing the export layer."""
    from niriss_pipe.cli.export import FORMAT_NAMES

    assert FORMAT_NAMES == tuple(formats.FORMATS)


def test_default_outputs():
    assert formats.default_output(FACTS, "squashfs") == Path("niriss-pipe_jwst_1584.sqfs")
    assert formats.default_output(FACTS, "dir") == Path("niriss-pipe_jwst_1584")
    untagged = ImageFacts("5e1f5e1f", FACTS.id, (), (), (), ())
    assert formats.default_output(untagged, "oci") == Path("image-5e1f5e1f5e1f.oci.tar")
    assert apptainer.sif_companions(Path("out/a.sif")) == (Path("out/a.docker.tar"),
                                                        Path("out/a.sif.sh"))


def test_existing_output_needs_force(tmp_path):
    (tmp_path / "a.tar").write_text("old")
    with pytest.raises(UserError, match="--force"):
        formats.check_outputs([tmp_path / "a.tar"], force=False)
    formats.check_outputs([tmp_path / "a.tar"], force=True)
    with pytest.raises(UserError, match="does not exist"):
        formats.check_outputs([tmp_path / "no" / "a.tar"], force=True)


def test_missing_mksquashfs_names_the_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UserError, match="squashfs-tools"):
        formats.check_tools("squashfs")


def test_staging_failure_leaves_nothing(tmp_path):
    target = tmp_path / "image"
    with pytest.raises(RuntimeError), Staging() as staging:
        partial = staging.temp_for(target)
        (partial / "usr").mkdir(parents=True)
        (partial / "usr").chmod(0o555)  # as a non-root export leaves folders
        staging.scratch(target, "docker.tar").write_text("scratch")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_staging_commit_replaces_old_outputs(tmp_path):
    (tmp_path / "image").mkdir()
    (tmp_path / "image" / "old").write_text("old")
    (tmp_path / "a.tar").write_text("old")
    with Staging() as staging:
        (staging.temp_for(tmp_path / "image") / "new").mkdir(parents=True)
        staging.temp_for(tmp_path / "a.tar").write_text("new")
        staging.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tar", "image"]
    assert [p.name for p in (tmp_path / "image").iterdir()] == ["new"]
    assert (tmp_path / "a.tar").read_text() == "new"
