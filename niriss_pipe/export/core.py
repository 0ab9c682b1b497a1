"""build.py export: an image as files that HPC container runtimes use without a Docker Engine.

- ``docker-archive``: ``docker save`` (``docker load`` / ``podman load``);
- ``oci``: an OCI image layout archive, converted here from the docker-archive (no extra tool;
  same layers and config bytes, so the config digest is the Docker image id);
- ``dir``: the flattened root file system plus ``/ch/environment``, the image's ENV for
  Charliecloud's ``ch-run --set-env`` (what ``ch-convert`` writes);
- ``squashfs``: that tree as one SquashFS file, which ``ch-run`` mounts itself (squashfuse);
- ``sif``: Apptainer builds it from the docker-archive; where Apptainer is missing, the archive
  and a script with the exact build command and how to run the result.

Every output is written under a hidden temporary name beside it and renamed only when complete,
so an interrupted or failed export leaves nothing half-written under a real name.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import os
import shlex
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from niriss_pipe import __version__
from niriss_pipe.core.errors import UserError
from niriss_pipe.core.progress import Reporter, human_bytes

FORMATS = {  # name -> default suffix of the output
    "docker-archive": ".tar",
    "oci": ".oci.tar",
    "dir": "",
    "squashfs": ".sqfs",
    "sif": ".sif",
}
CHUNK = 1 << 20
# Charliecloud's mount points (ch-convert's list): ch-run binds onto them, so they must exist.
MOUNT_DIRS = ("bin", "dev", "etc", "mnt", "proc", "sys", "usr", "tmp",
              *(f"mnt/{i}" for i in range(10)))
MOUNT_FILES = ("etc/hosts", "etc/resolv.conf")
# zstd level 3: 8 s instead of 90 s (gzip) for a 1 GiB tree, 4 % larger; squashfuse >= 0.1.103
# and Linux >= 4.14 read it. -mkfs-time 0 and -all-root make the file depend on the tree only.
MKSQUASHFS_ARGS = ("-noappend", "-all-root", "-b", "65536", "-comp", "zstd",
                   "-Xcompression-level", "3", "-mkfs-time", "0")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class ImageFacts:
    """What an export needs to know about the image: its name, id and run configuration."""

    reference: str
    id: str
    tags: tuple[str, ...]
    env: tuple[str, ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]

    @property
    def name(self) -> str:
        """The tag the user asked for, else the image's first tag ('' for an untagged id)."""
        if self.reference in self.tags:
            return self.reference
        return self.tags[0] if self.tags else ""

    def env_value(self, key: str, default: str = "") -> str:
        return env_value(self.env, key, default)


def env_value(items, key: str, default: str = "") -> str:
    """The value of ``key`` among ``KEY=VALUE`` items (an image's ENV, /ch/environment lines)."""
    values = dict(item.split("=", 1) for item in items if "=" in item)
    return values.get(key, default)


# -- options -----------------------------------------------------------------------------------
def check_format(fmt: str) -> str:
    if fmt in FORMATS:
        return fmt
    close = difflib.get_close_matches(fmt, FORMATS, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UserError(f"unknown export format '{fmt}'.",
                    f"{hint}give --to one of {', '.join(FORMATS)}.")


def default_output(facts: ImageFacts, fmt: str) -> Path:
    """``niriss-pipe:jwst_1584`` -> ``niriss-pipe_jwst_1584.sqfs`` in the current directory."""
    stem = facts.name or f"image-{facts.id.split(':')[-1][:12]}"
    for char in "/:@":
        stem = stem.replace(char, "_")
    return Path(stem + FORMATS[fmt])


def sif_builder() -> str | None:
    """``apptainer`` (or the older ``singularity``) on PATH, else None."""
    return shutil.which("apptainer") or shutil.which("singularity")


def sif_companions(out: Path) -> tuple[Path, Path]:
    """Without Apptainer, ``X.sif`` becomes ``X.docker.tar`` plus the script ``X.sif.sh``."""
    stem = out.name[:-len(".sif")] if out.name.endswith(".sif") else out.name
    return out.with_name(stem + ".docker.tar"), out.with_name(out.name + ".sh")


def planned_outputs(fmt: str, out: Path) -> list[Path]:
    if fmt == "sif" and not sif_builder():
        return list(sif_companions(out))
    return [out]


def check_outputs(paths: list[Path], force: bool) -> None:
    for path in paths:
        if not path.parent.is_dir():
            raise UserError(f"the output folder {path.parent} does not exist.",
                            "create it, or give -o a path in an existing folder.")
        if (path.exists() or path.is_symlink()) and not force:
            raise UserError(f"{path} exists.",
                            "give -o another path, or --force to replace it once the new "
                            "export is complete.")


def check_tools(fmt: str) -> None:
    if fmt == "squashfs" and not shutil.which("mksquashfs"):
        raise UserError("export --to squashfs needs mksquashfs, which is not on PATH.",
                        "install squashfs-tools (Debian/Ubuntu: apt-get install squashfs-tools; "
                        "RHEL: dnf install squashfs-tools), or export --to dir and pack it on "
                        "the cluster (ch-convert DIR IMAGE.sqfs, or run ch-run on the dir).")
    if shutil.which("tar") is None and fmt in ("dir", "squashfs"):
        raise UserError(f"export --to {fmt} needs GNU tar on PATH.", "install tar.")


# -- staging: temporary names, renamed when complete -------------------------------------------
class Staging:
    """Hidden temporary paths beside the outputs. ``commit`` renames them onto the real names
    (replacing old outputs only then); leaving the block without commit removes them all."""

    def __init__(self):
        self.temps: dict[Path, Path] = {}
        self.scratch_paths: list[Path] = []

    def temp_for(self, target: Path) -> Path:
        path = target.with_name(f".{target.name}.partial-{os.getpid()}")
        self.temps[target] = path
        return path

    def scratch(self, near: Path, suffix: str) -> Path:
        """A temporary path that is always removed (intermediate files)."""
        path = near.with_name(f".{near.name}.{suffix}-{os.getpid()}")
        self.scratch_paths.append(path)
        return path

    def commit(self) -> None:
        for target, temp in self.temps.items():
            old = None
            if target.exists() and (target.is_dir() or temp.is_dir()):  # no atomic replace
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                target.rename(old)
            os.replace(temp, target)
            if old is not None:
                _remove(old)
        self.temps.clear()

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc_info) -> None:
        for path in [*self.temps.values(), *self.scratch_paths]:
            _remove(path)


def _remove(path: Path) -> None:
    """Remove a file or tree, also one with read-only folders (a non-root export)."""
    if path.is_dir() and not path.is_symlink():
        if os.geteuid() != 0:
            owner_writable(path)
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def owner_writable(root: Path) -> None:
    """Give every folder u+rwx, parents before children, so its owner can fill or delete it."""
    os.chmod(root, stat.S_IMODE(os.lstat(root).st_mode) | 0o700)
    for folder, dirs, _ in os.walk(root):
        for name in dirs:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISDIR(mode) and mode & 0o700 != 0o700:
                os.chmod(path, stat.S_IMODE(mode) | 0o700)


# -- engine side ---------------------------------------------------------------------------------
def image_facts(engine, reference: str) -> ImageFacts:
    """The image's name, id and run configuration, or a UserError when it is not there."""
    info = engine.image_info(reference)
    if info is None:
        raise UserError(f"no image '{reference}' in the local engine.",
                        "build it first (python build.py build SPEC), or give a name or id from "
                        "'docker images'.")
    return ImageFacts(reference=reference, id=info.id, tags=info.tags, env=info.env,
                      entrypoint=info.entrypoint, cmd=info.cmd)


def save_archive(engine, facts: ImageFacts, dest: Path) -> None:
    """``docker save`` the image into ``dest``, named with its tag so ``load`` restores it."""
    with open(dest, "wb") as out:
        for chunk in engine.save_image(facts.id, facts.name, CHUNK):
            out.write(chunk)


def export_rootfs(engine, facts: ImageFacts, dest: Path) -> None:
    """Unpack the flattened file system of a created (never started) container into ``dest``:
    what ``docker export`` gives, without /dev's device nodes and Docker's /.dockerenv."""
    dest.mkdir()
    with engine.filesystem(facts.id, CHUNK) as chunks:
        _untar_stream(chunks, dest)


def _untar_stream(chunks, dest: Path) -> None:
    """GNU tar keeps modes, links and (as root) numeric owners; it restores folder modes last,
    so read-only folders still get their contents as a normal user."""
    args = ["tar", "-x", "-p", "--numeric-owner", "-C", str(dest), "-f", "-",
            "--anchored", "--exclude=dev/*", "--exclude=.dockerenv"]
    with tempfile.TemporaryFile() as errors, \
            subprocess.Popen(args, stdin=subprocess.PIPE, stderr=errors) as tar:
        try:
            for chunk in chunks:
                tar.stdin.write(chunk)
        except BrokenPipeError:
            pass
        finally:
            tar.stdin.close()
        if tar.wait() != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()[-800:]
            raise UserError(f"unpacking the image's file system into {dest} failed: {message}",
                            "check free space and permissions in the output folder.")


# -- Charliecloud ------------------------------------------------------------------------------
def environment_file(facts: ImageFacts) -> str:
    """``/ch/environment``: one ``KEY=VALUE`` per line, the image's ENV in order."""
    for item in facts.env:
        if "\n" in item:
            raise UserError(f"the image's environment variable {item.split('=')[0]} holds a "
                            "newline, which /ch/environment cannot carry.",
                            "remove the newline from the image's ENV.")
    return "".join(f"{item}\n" for item in facts.env)


def charliecloud_fixups(root: Path, facts: ImageFacts) -> None:
    """Make an unpacked tree a Charliecloud image: /ch/environment, mount points, and folders
    that their owner may write (so a normal user can delete the tree later)."""
    (root / "ch").mkdir(mode=0o755, exist_ok=True)
    (root / "ch" / "environment").write_text(environment_file(facts))
    (root / "ch" / "environment").chmod(0o644)
    for name in MOUNT_DIRS:
        (root / name).mkdir(mode=0o755, exist_ok=True)
    for name in MOUNT_FILES:
        if not (root / name).exists() and not (root / name).is_symlink():
            (root / name).touch(mode=0o644)
    owner_writable(root)


def make_squashfs(tree: Path, dest: Path) -> None:
    """mksquashfs without SOURCE_DATE_EPOCH: it would clamp file times to it, and Python then
    finds every .pyc older than its source and recompiles on each import (read-only image)."""
    env = {key: value for key, value in os.environ.items() if key != "SOURCE_DATE_EPOCH"}
    proc = subprocess.run(["mksquashfs", str(tree), str(dest), *MKSQUASHFS_ARGS],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise UserError(f"mksquashfs failed (exit {proc.returncode}): {tail}",
                        "mksquashfs 4.4 or newer with zstd support is needed (squashfs-tools "
                        "from Debian 11+, Ubuntu 22.04+, RHEL 9); or export --to dir.")


# -- OCI image layout, from a docker-archive ---------------------------------------------------
class _HashingReader(io.RawIOBase):
    """Reads through a stream and hashes what passes, to check a layer against its digest."""

    def __init__(self, stream: BinaryIO):
        self.stream, self.sha = stream, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha.update(data)
        return data


def _tar_info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    """A member with fixed owner, mode and time: the archive depends on the content only."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0, 0, 0, "", ""
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    return info


def _add_bytes(out: tarfile.TarFile, name: str, data: bytes) -> None:
    out.addfile(_tar_info(name, len(data)), io.BytesIO(data))


def _canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media_type: str, data_or_digest, size: int | None = None) -> dict:
    if isinstance(data_or_digest, bytes):
        digest = "sha256:" + hashlib.sha256(data_or_digest).hexdigest()
        size = len(data_or_digest)
    else:
        digest = data_or_digest
    return {"mediaType": media_type, "digest": digest, "size": size}


def docker_archive_to_oci(archive: Path, out: BinaryIO, ref_name: str = "") -> str:
    """Write the OCI image layout archive of the single image in a ``docker save`` tar to
    ``out``; return the manifest digest. Layers are copied uncompressed and checked against the
    config's diff_ids; the config bytes are kept, so its digest stays the Docker image id."""
    with tarfile.open(archive, "r:") as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        entries = json.load(src.extractfile("manifest.json"))
        if len(entries) != 1:
            raise UserError(f"{archive} holds {len(entries)} images; one is expected.",
                            "export one image at a time.")
        config = src.extractfile(entries[0]["Config"]).read()
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        layer_names = entries[0]["Layers"]
        if len(diff_ids) != len(layer_names):
            raise UserError(f"{archive}: {len(layer_names)} layers but {len(diff_ids)} "
                            "diff_ids in its config.", "save the image again.")
        dst.addfile(_tar_info("blobs/", directory=True))
        dst.addfile(_tar_info("blobs/sha256/", directory=True))
        layers, written = [], set()
        for name, digest in zip(layer_names, diff_ids):
            member = src.getmember(name)
            if digest not in written:
                _copy_layer(src, member, digest, dst)
                written.add(digest)
            layers.append(_descriptor(OCI_LAYER, digest, member.size))
        config_desc = _descriptor(OCI_CONFIG, config)
        manifest = _canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                    "config": config_desc, "layers": layers})
        manifest_desc = _descriptor(OCI_MANIFEST, manifest)
        for data in (config, manifest):
            _add_bytes(dst, f"blobs/sha256/{hashlib.sha256(data).hexdigest()}", data)
        if ref_name:
            manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
        _add_bytes(dst, "index.json", _canonical_json(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [manifest_desc]}))
        _add_bytes(dst, "oci-layout", _canonical_json({"imageLayoutVersion": "1.0.0"}))
    return manifest_desc["digest"]


def _copy_layer(src: tarfile.TarFile, member: tarfile.TarInfo, digest: str,
                dst: tarfile.TarFile) -> None:
    reader = _HashingReader(src.extractfile(member))
    dst.addfile(_tar_info(f"blobs/sha256/{digest.split(':', 1)[1]}", member.size), reader)
    if "sha256:" + reader.sha.hexdigest() != digest:
        raise UserError(f"layer {member.name} does not match its digest {digest}.",
                        "the saved archive is corrupt: run the export again.")


# -- Apptainer -----------------------------------------------------------------------------------
def sif_script(facts: ImageFacts, sif_name: str, archive_name: str) -> str:
    """The shell script that builds the SIF where Apptainer is installed, with how to run it."""
    context = facts.env_value("CRDS_CONTEXT", "jwst_NNNN.pmap")
    env_lines = "".join(f"#     {item}\n" for item in facts.env)
    entry = " ".join([*facts.entrypoint, *facts.cmd]) or "(none)"
    sif, archive = shlex.quote(sif_name), shlex.quote(archive_name)
    return f"""#!/bin/sh
# Build {sif_name}, the Apptainer/Singularity image of
# {facts.name or facts.id}, from {archive_name} beside this script.
# Run it where apptainer (or singularity) is installed:  sh {shlex.quote(sif_name + ".sh")}
# It needs no Docker Engine, registry or network; copy the two files anywhere together.
#
# Image {facts.id}
# written by niriss-pipe {__version__}: build.py export {facts.reference} --to sif
#
# The SIF keeps the image's environment, from its OCI config:
{env_lines}# and `apptainer run` runs the image's entrypoint; with no arguments:
#     {entry}
#
# Run with a host CRDS cache read-only at /crds and your files at /data:
#     apptainer run --containall --bind CACHE:/crds:ro --bind "$PWD":/data --pwd /data \\
#         {sif} strun calwebb_detector1 jw..._uncal.fits
#     apptainer run --containall {sif} selftest
#     apptainer run --containall --bind CACHE:/crds:ro {sif} check-cache
# --containall (--contain --cleanenv --ipc --pid) keeps the host's environment (PYTHONPATH,
# CRDS_*), home (~/.local Python packages would shadow the image's) and /tmp out, as docker run
# does; without it give at least --cleanenv --no-home. Host variables do not override the
# image's ENV: use --env, e.g. --env CRDS_CONTEXT=jwst_NNNN.pmap for another context than
# {context} in the same cache. Apptainer ignores the image's USER and WORKDIR: processes
# run as you (files written to /data are yours), hence --pwd. The SIF is read-only, the cache
# is bound :ro and CRDS_READONLY_CACHE=1. `apptainer exec` skips the entrypoint's cache check.
set -eu
cd "$(dirname "$0")"
builder=$(command -v apptainer || command -v singularity) || {{
    echo "error: neither apptainer nor singularity is on PATH: install Apptainer" \\
        "(https://apptainer.org/docs/admin/main/installation.html), then run this again." >&2
    exit 1
}}
sif={sif}
partial={shlex.quote(sif_name + ".partial")}
trap 'rm -f "$partial"' EXIT
"$builder" build "$partial" docker-archive:{archive}
mv "$partial" "$sif"
echo "wrote $(pwd)/$sif"
"""


def build_sif(builder: str, archive: Path, dest: Path) -> None:
    proc = subprocess.run([builder, "build", str(dest), f"docker-archive:{archive}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise UserError(f"{Path(builder).name} build failed (exit {proc.returncode}): {tail}",
                        "see its message above; or export --to docker-archive and build the "
                        "SIF on the cluster.")


# -- the command -------------------------------------------------------------------------------
def export_image(engine, reference: str, fmt: str, output: Path | None = None, *,
                 force: bool = False, reporter: Reporter | None = None) -> list[Path]:
    """Export ``reference`` as ``fmt`` to ``output`` (default: named after the tag, here);
    return the paths written. Every check runs before any work."""
    reporter = reporter or Reporter()
    fmt = check_format(fmt)
    check_tools(fmt)
    facts = image_facts(engine, reference)
    out = Path(output) if output else default_output(facts, fmt)
    targets = planned_outputs(fmt, out)
    check_outputs(targets, force)
    started = time.monotonic()
    with Staging() as staging:
        WRITERS[fmt](engine, facts, out, staging, reporter)
        staging.commit()
    reporter.say(f"exported {facts.name or facts.id} ({facts.id.split(':')[-1][:12]}) as {fmt} "
                 f"in {time.monotonic() - started:.0f} s")
    for path in targets:
        reporter.say(f"  {path}  {human_bytes(tree_size(path))}")
    reporter.say(usage_hint(fmt, facts, targets))
    return targets


def _timed(reporter: Reporter, what: str, func, *args) -> None:
    started = time.monotonic()
    func(*args)
    reporter.detail(f"  {what:<28} {time.monotonic() - started:6.1f} s")


def _write_docker_archive(engine, facts, out, staging, reporter) -> None:
    _timed(reporter, "docker save", save_archive, engine, facts, staging.temp_for(out))


def _write_oci(engine, facts, out, staging, reporter) -> None:
    archive = staging.scratch(out, "docker.tar")
    _timed(reporter, "docker save", save_archive, engine, facts, archive)
    with open(staging.temp_for(out), "wb") as stream:
        _timed(reporter, "OCI layout", docker_archive_to_oci, archive, stream, facts.name)
    os.unlink(archive)


def _write_dir(engine, facts, out, staging, reporter) -> None:
    root = staging.temp_for(out)
    _timed(reporter, "file system", export_rootfs, engine, facts, root)
    charliecloud_fixups(root, facts)


def _write_squashfs(engine, facts, out, staging, reporter) -> None:
    root = staging.scratch(out, "tree")
    _timed(reporter, "file system", export_rootfs, engine, facts, root)
    charliecloud_fixups(root, facts)
    _timed(reporter, "mksquashfs", make_squashfs, root, staging.temp_for(out))
    _remove(root)


def _write_sif(engine, facts, out, staging, reporter) -> None:
    builder = sif_builder()
    if builder:
        archive = staging.scratch(out, "docker.tar")
        _timed(reporter, "docker save", save_archive, engine, facts, archive)
        _timed(reporter, f"{Path(builder).name} build", build_sif, builder, archive,
               staging.temp_for(out))
        return
    archive, script = sif_companions(out)
    _timed(reporter, "docker save", save_archive, engine, facts, staging.temp_for(archive))
    temp_script = staging.temp_for(script)
    temp_script.write_text(sif_script(facts, out.name, archive.name))
    temp_script.chmod(0o755)


WRITERS = {"docker-archive": _write_docker_archive, "oci": _write_oci, "dir": _write_dir,
           "squashfs": _write_squashfs, "sif": _write_sif}


def tree_size(path: Path) -> int:
    if not path.is_dir():
        return path.lstat().st_size
    return sum(os.lstat(os.path.join(folder, name)).st_size
               for folder, dirs, files in os.walk(path) for name in dirs + files)


def usage_hint(fmt: str, facts: ImageFacts, targets: list[Path]) -> str:
    """One line on how to use what was written."""
    first = targets[0]
    command = " ".join([*facts.entrypoint, *facts.cmd])
    if fmt in ("docker-archive", "oci"):
        return f"load it with: podman load -i {first}" + (
            f"   (or docker load -i {first})" if fmt == "docker-archive" else "")
    if fmt in ("dir", "squashfs"):
        return (f"run it with: ch-run --unset-env='*' --set-env -b CACHE:/crds {first} -- "
                f"{command}   (USER must be set)")
    if len(targets) == 2:
        return (f"Apptainer is not installed here: copy both files to the cluster and run "
                f"sh {targets[1]} there (its comments say how to run the SIF)")
    return f"run it with: apptainer run --containall --bind CACHE:/crds:ro {first} selftest"
