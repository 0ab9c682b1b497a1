"""Base images: use the local one, pull a registry one, or make one from Debian's mirror.

Where no registry can be reached (air-gapped sites, this project's CI), the
base is made with ``debootstrap`` and ``docker import``-ed; its suite, mirror
and variant are recorded in labels so the image says where it came from.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.build.normalize import iso
from niriss_pipe.core.digest import file_digest
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


DEBUERREOTYPE = ("debuerreotype-init", "debuerreotype-minimizing-config", "debuerreotype-tar")
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def make_debootstrap_base(engine: Engine, base: BaseSpec, reference: str | None = None) -> str:
    """Make ``base.suite`` from its mirror with Debian's debuerreotype (debootstrap with
    SOURCE_DATE_EPOCH at the mirror's Release date, a minimized docker config, clamped file
    times, shadow dates and machine-id reset, no logs, a name-sorted tar) and load it as
    ``reference`` (default ``base.reference``) with a config of our own: the same suite,
    mirror and archive state give the same base image id, on any engine and any day."""
    reference = reference or base.reference
    missing = [tool for tool in ("debootstrap", *DEBUERREOTYPE) if shutil.which(tool) is None]
    if missing:
        raise UserError(
            f"the base image {base.reference} is not present, and {', '.join(missing)} "
            "(which make it reproducibly from Debian's mirror) "
            f"{'is' if len(missing) == 1 else 'are'} not installed.",
            "install them (Debian/Ubuntu: apt-get install debootstrap debuerreotype) and run "
            "again, or set 'base.image' in the spec to a registry image such as debian:"
            f"{base.suite}-slim@sha256:<digest> where a registry is reachable.")
    if os.geteuid() != 0:
        raise UserError(f"making the base image {base.reference} with debootstrap needs root.",
                        f"run 'sudo {prog()} base SPEC' once; later builds reuse it.")
    reporter = engine.reporter
    reporter.say(f"making base {reference} with debuerreotype ({base.suite}, "
                 f"{base.variant}, {base.mirror})")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="niriss-pipe-base-") as tmp:
        root, archive = Path(tmp) / "rootfs", Path(tmp) / "archive"
        init = ["debuerreotype-init", "--non-debian"]
        if base.variant == "buildd":  # buildd: minbase plus build-essential
            init += ["--include", "build-essential"]
        _run(reporter, [*init, str(root), base.suite, base.mirror],
             f"debootstrap of {base.suite} from {base.mirror}")
        _run(reporter, ["debuerreotype-minimizing-config", str(root)], "minimizing the base")
        epoch = int((root / "debuerreotype-epoch").read_text().strip())
        archive.mkdir()
        layer = archive / "layer.tar"
        _run(reporter, ["debuerreotype-tar", str(root), str(layer)], "packing the base")
        image_id = _load_base(engine, archive, layer, base, epoch, reference)
    reporter.say(f"  base ready in {time.monotonic() - started:.0f} s: {image_id[:19]} "
                 f"(Debian archive of {iso(epoch)})")
    return image_id


def _load_base(engine: Engine, archive: Path, layer: Path, base: BaseSpec, epoch: int,
               reference: str) -> str:
    """A docker-archive of the one layer with a fixed config: its id is its content's."""
    diff_id = "sha256:" + file_digest(layer)
    (archive / diff_id[7:]).mkdir()
    layer.rename(archive / diff_id[7:] / "layer.tar")
    made = (f"debuerreotype-init --non-debian {base.suite} {base.mirror}; "
            "debuerreotype-minimizing-config; debuerreotype-tar")
    config = {
        "architecture": "amd64", "os": "linux", "created": iso(epoch),
        "config": {"Env": [f"PATH={BASE_PATH}"], "Cmd": ["/bin/bash"],
                   "Labels": {label("base.suite"): base.suite, label("base.mirror"): base.mirror,
                              label("base.variant"): base.variant,
                              label("base.archive-date"): iso(epoch)}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": iso(epoch), "created_by": made}],
    }
    data = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    image_id = "sha256:" + hashlib.sha256(data).hexdigest()
    (archive / f"{image_id[7:]}.json").write_bytes(data)
    (archive / "manifest.json").write_text(json.dumps(
        [{"Config": f"{image_id[7:]}.json", "RepoTags": [reference],
          "Layers": [f"{diff_id[7:]}/layer.tar"]}]))
    loaded = engine.load_archive(archive)
    repository, tag = reference.rsplit(":", 1)
    engine.tag(loaded, repository, tag)
    return loaded


def _run(reporter, command: list[str], what: str) -> None:
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        reporter.detail(line.rstrip())
    if proc.wait() != 0:
        tail = "\n".join(f"    {line}" for line in list(reporter.tail)[-15:])
        raise UserError(f"{what} failed (exit {proc.returncode}).",
                        "check that the mirror is reachable and the suite exists; last output:\n"
                        + tail)
