"""Base images: use the local one, pull a registry one, or make one from Debian's mirror.

Where no registry can be reached (air-gapped sites, this project's CI), the
base is made with ``debootstrap`` and ``docker import``-ed; its suite, mirror
and variant are recorded in labels so the image says where it came from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.core.errors import UserError, prog
from niriss_pipe.engine.client import Engine
from niriss_pipe.runtime.contract import label
from niriss_pipe.spec.model import BaseSpec


@dataclass(frozen=True)
class ResolvedBase:
    reference: str
    image_id: str
    digest: str  # registry digest when pulled, else the local image id


def resolve(engine: Engine, base: BaseSpec, *, make: bool = True) -> ResolvedBase:
    """Find the spec's base locally; pull it or make it (debootstrap) when it is missing."""
    image_id = engine.image_id(base.reference)
    if image_id is None:
        if base.image:
            image_id = engine.pull(base.reference)
        elif make:
            image_id = make_debootstrap_base(engine, base)
        else:
            raise UserError(f"base image {base.reference} is not present.",
                            f"make it from Debian's mirror: {prog()} base SPEC")
    return ResolvedBase(base.reference, image_id, engine.repo_digest(base.reference))


def make_debootstrap_base(engine: Engine, base: BaseSpec, reference: str | None = None) -> str:
    """debootstrap ``base.suite`` into a temp dir and import it as ``reference``
    (default ``base.reference``)."""
    reference = reference or base.reference
    if shutil.which("debootstrap") is None:
        raise UserError(
            f"the base image {base.reference} is not present and debootstrap is not installed "
            "to make it.",
            "install it (Debian/Ubuntu: apt-get install debootstrap) and run again, or set "
            "'base.image' in the spec to a registry image such as debian:"
            f"{base.suite}-slim@sha256:<digest> where a registry is reachable.")
    if os.geteuid() != 0:
        raise UserError(f"making the base image {base.reference} with debootstrap needs root.",
                        f"run 'sudo {prog()} base SPEC' once; later builds reuse it.")
    reporter = engine.reporter
    reporter.say(f"making base {reference} with debootstrap ({base.suite}, "
                 f"{base.variant}, {base.mirror})")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="niriss-pipe-base-") as tmp:
        root = Path(tmp) / "rootfs"
        _run(reporter, ["debootstrap", f"--variant={base.variant}", base.suite, str(root),
                        base.mirror], f"debootstrap of {base.suite} from {base.mirror}")
        # A Debian base image convention: no apt caches, no policy-rc.d surprises.
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
        tar_path = Path(tmp) / "rootfs.tar"
        _run(reporter, ["tar", "-C", str(root), "--numeric-owner", "-cf", str(tar_path), "."],
             "packing the root file system")
        repository, tag = reference.rsplit(":", 1)
        changes = [
            f'LABEL {label("base.suite")}="{base.suite}"',
            f'LABEL {label("base.mirror")}="{base.mirror}"',
            f'LABEL {label("base.variant")}="{base.variant}"',
            'CMD ["/bin/bash"]',
        ]
        image_id = engine.import_rootfs(str(tar_path), repository, tag, changes)
    reporter.say(f"  base ready in {time.monotonic() - started:.0f} s: {image_id[:19]}")
    return image_id


def _run(reporter, command: list[str], what: str) -> None:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        reporter.detail(line.rstrip())
    if proc.wait() != 0:
        tail = "\n".join(f"    {line}" for line in list(reporter.tail)[-15:])
        raise UserError(f"{what} failed (exit {proc.returncode}).",
                        "check that the mirror is reachable and the suite exists; last output:\n"
                        + tail)
