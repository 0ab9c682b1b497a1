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

import os
import time
from pathlib import Path

from niriss_pipe.core.progress import Reporter, human_bytes
from niriss_pipe.export.apptainer import build_sif, sif_builder, sif_companions, sif_script
from niriss_pipe.export.charliecloud import charliecloud_fixups, export_rootfs, make_squashfs
from niriss_pipe.export.facts import CHUNK, ImageFacts, image_facts
from niriss_pipe.export.formats import (
    check_format,
    check_outputs,
    check_tools,
    default_output,
    planned_outputs,
)
from niriss_pipe.export.oci import docker_archive_to_oci
from niriss_pipe.export.staging import Staging, remove_output


def save_archive(engine, facts: ImageFacts, dest: Path) -> None:
    """``docker save`` the image into ``dest``, named with its tag so ``load`` restores it."""
    with open(dest, "wb") as out:
        for chunk in engine.save_image(facts.id, facts.name, CHUNK):
            out.write(chunk)


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
    remove_output(root)


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
