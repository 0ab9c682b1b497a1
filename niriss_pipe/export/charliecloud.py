"""Charliecloud: the image's flattened file system, its ENV as ``/ch/environment``, the mount
points ``ch-run`` binds onto, and the SquashFS file it mounts itself."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from niriss_pipe.core.errors import UserError, opt
from niriss_pipe.export.facts import CHUNK, ImageFacts
from niriss_pipe.export.staging import owner_writable

# Charliecloud's mount points (ch-convert's list): ch-run binds onto them, so they must exist.
MOUNT_DIRS = ("bin", "dev", "etc", "mnt", "proc", "sys", "usr", "tmp",
              *(f"mnt/{i}" for i in range(10)))
MOUNT_FILES = ("etc/hosts", "etc/resolv.conf")
# zstd level 3: 8 s instead of 90 s (gzip) for a 1 GiB tree, 4 % larger; squashfuse >= 0.1.103
# and Linux >= 4.14 read it. -mkfs-time 0 and -all-root make the file depend on the tree only.
MKSQUASHFS_ARGS = ("-noappend", "-all-root", "-b", "65536", "-comp", "zstd",
                   "-Xcompression-level", "3", "-mkfs-time", "0")


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
                        f"from Debian 11+, Ubuntu 22.04+, RHEL 9); or export {opt('to')} dir.")
