"""The image a batch runs, per runtime: a Docker tag pinned to its id, a podman archive, a
Charliecloud tree or SquashFS file, an Apptainer SIF; and the CRDS context it holds, where
that can be read here."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError, opt, prog, shown
from niriss_pipe.core.progress import Reporter, human_bytes
from niriss_pipe.engine.client import Engine
from niriss_pipe.export.facts import env_value, image_facts
from niriss_pipe.runtime.contract import ENV_PREFIX, label


@dataclass(frozen=True)
class ImageChoice:
    ref: str                # what the runtime runs
    id: str                 # Docker image id where known
    context: str | None     # the image's CRDS_CONTEXT where it can be read here
    archive: Path | None = None
    jwst: str | None = None  # the image's jwst version where it can be read here


JWST_LABEL = label("jwst.version")


# -- the image, per runtime ----------------------------------------------------------------------
def choose_image(runtime: str, image: str, reporter: Reporter) -> ImageChoice:
    path = Path(image)
    if runtime == "docker":
        engine = Engine(reporter)
        facts = image_facts(engine, image)
        info = engine.image_info(facts.id)
        return ImageChoice(facts.id, facts.id, facts.env_value("CRDS_CONTEXT") or None,
                           jwst=(info.labels or {}).get(JWST_LABEL) if info else None)
    if runtime == "podman":
        return _podman_image(image, reporter)
    if runtime == "charliecloud":
        if path.is_dir():
            if not (path / "ch" / "environment").is_file():
                raise UserError(f"{image} is a folder but not a Charliecloud image (no "
                                "ch/environment).", f"export one: {prog()} export IMAGE "
                                f"{opt('to')} dir -o {image}")
            try:
                env = (path / "ch" / "environment").read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UserError(f"{image}/ch/environment cannot be read ({exc}).",
                                f"export the image again: {prog()} export IMAGE {opt('to')} "
                                "dir") from None
            return ImageChoice(_resolved(image, path), "", _env_context(env.splitlines()),
                               jwst=_tree_jwst(path))
        if path.is_file() and _magic(path) == b"hsqs":
            return ImageChoice(_resolved(image, path), "",
                               _env_context(_sqfs_environment(path).splitlines()),
                               jwst=_sqfs_jwst(path))
        raise UserError(f"'{image}' is not a Charliecloud image (a folder or a .sqfs file).",
                        f"export the Docker image first: {prog()} export {image} {opt('to')} "
                        "squashfs (one file on the shared file system), then give that file.")
    if path.is_file():  # apptainer: a SIF; its environment cannot be read without apptainer
        return ImageChoice(_resolved(image, path), "", None)
    raise UserError(f"'{image}' is not a SIF file.",
                    f"export the Docker image first: {prog()} export {image} {opt('to')} sif "
                    "(where Apptainer is missing this writes the archive and a script that "
                    "builds the SIF on the cluster), then give the .sif file.")



def _resolved(image: str, path: Path) -> str:
    """The image file's real path, which task.sh runs (quoted); a link may point to a name
    the given one does not have."""
    real = str(path.resolve())
    problem = grammar.text_problem(real)
    if problem:
        raise UserError(f"the image {image} is a link to {shown(real)}, which cannot be written "
                        f"into the batch scripts: {problem}.", "rename the file it links to.")
    return real



def _magic(path: Path) -> bytes:
    with open(path, "rb") as stream:
        return stream.read(4)



def _env_context(items) -> str | None:
    """CRDS_CONTEXT among an image's ``KEY=VALUE`` environment items, or None."""
    return env_value(items, "CRDS_CONTEXT") or None



_DIST_INFO = re.compile(r"site-packages/jwst-([0-9][^/-]*)\.dist-info")


def _tree_jwst(root: Path) -> str | None:
    """The jwst version of an exported tree: its dist-info folder's name."""
    for found in root.glob(f"{ENV_PREFIX.lstrip('/')}/lib/python3*/site-packages/jwst-*.dist-info"):
        match = _DIST_INFO.search(found.as_posix())
        if match:
            return match.group(1)
    return None


def _sqfs_jwst(path: Path) -> str | None:
    """The jwst version in a SquashFS export: its dist-info folder's name in the listing."""
    if not shutil.which("unsquashfs"):
        return None
    proc = subprocess.run(["unsquashfs", "-l", str(path), ENV_PREFIX.lstrip("/") + "/lib"],
                          capture_output=True, text=True)
    match = _DIST_INFO.search(proc.stdout) if proc.returncode == 0 else None
    return match.group(1) if match else None


def _sqfs_environment(path: Path) -> str:
    if not shutil.which("unsquashfs"):
        return ""
    proc = subprocess.run(["unsquashfs", "-cat", str(path), "ch/environment"],
                          capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""



def archive_facts(path: Path) -> tuple[str, list[str], dict]:
    """Image id, ENV and labels of the one image in a docker-archive or OCI archive."""
    try:
        with tarfile.open(path, "r:") as tar:
            names = set(tar.getnames())
            if "manifest.json" in names:  # docker-archive
                config_name = json.load(tar.extractfile("manifest.json"))[0]["Config"]
                config_bytes = tar.extractfile(config_name).read()
            else:  # OCI layout
                index = json.load(tar.extractfile("index.json"))
                digest = index["manifests"][0]["digest"].split(":", 1)[1]
                manifest = json.load(tar.extractfile(f"blobs/sha256/{digest}"))
                config_digest = manifest["config"]["digest"].split(":", 1)[1]
                config_bytes = tar.extractfile(f"blobs/sha256/{config_digest}").read()
    except (OSError, tarfile.TarError, KeyError, ValueError, IndexError, AttributeError) as exc:
        raise UserError(f"{path} is not a docker-archive or OCI archive ({exc}).",
                        f"export one: {prog()} export IMAGE {opt('to')} docker-archive") from None
    config = json.loads(config_bytes)
    run = config.get("config") or {}
    labels = run.get("Labels") or {}
    return hashlib.sha256(config_bytes).hexdigest(), run.get("Env") or [], labels



def _podman_image(image: str, reporter: Reporter) -> ImageChoice:
    path = Path(image)
    if path.is_file():
        image_id, env, labels = archive_facts(path)
        if shutil.which("podman") and subprocess.run(
                ["podman", "image", "exists", image_id]).returncode != 0:
            reporter.say(f"loading {path.name} into podman's image store "
                         f"({human_bytes(path.stat().st_size)}, once per node) ...")
            started = time.monotonic()
            proc = subprocess.run(["podman", "load", "--quiet", "--input", str(path)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(f"podman load {path} failed: {proc.stderr.strip()[-600:]}",
                                f"check the archive ({prog()} export IMAGE {opt('to')} "
                                "docker-archive writes one) and podman's storage.")
            reporter.say(f"  loaded in {time.monotonic() - started:.0f} s")
        return ImageChoice(image_id, f"sha256:{image_id}", _env_context(env),
                           archive=Path(_resolved(image, path)), jwst=labels.get(JWST_LABEL))
    if not shutil.which("podman"):
        raise UserError("the podman runtime needs podman on PATH here, or an image archive.",
                        f"give the image as a docker-archive file ({prog()} export IMAGE "
                        f"{opt('to')} docker-archive), which each node loads when it lacks it.")
    # One line each: JSON holds no raw line break, so neither may split another.
    proc = subprocess.run(["podman", "image", "inspect", "--format", "{{.Id}}\n"
                           "{{json .Config.Labels}}\n{{json .Config.Env}}", image],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"podman has no image '{image}'.",
                        f"export it from Docker and give the file: {prog()} export "
                        f"{image} {opt('to')} docker-archive -o image.tar, then pass image.tar.")
    image_id, labels, env = (proc.stdout.strip().split("\n", 2) + ["", ""])[:3]
    return ImageChoice(image_id, f"sha256:{image_id}",
                       _env_context(json.loads(env or "[]") or []),
                       jwst=(json.loads(labels or "null") or {}).get(JWST_LABEL))
