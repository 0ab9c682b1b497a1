"""The base image as a file: ``base --save FILE`` here, ``base --load FILE`` at an air-gapped site.

A site with no Debian mirror and no registry cannot make or pull the base, but a build only
needs the very image the spec names. The file is a ``docker save`` archive (its labels and
its tag kept); loading it first reads its manifest and config (nothing is extracted) and
refuses an archive that is not the spec's base: another suite, variant or mirror, or more
than one image. The engine's id of the loaded image is the sha256 of that config, so the
base id at the site is the one it had here.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from pathlib import Path

from niriss_pipe.core.errors import UserError, os_error, prog
from niriss_pipe.core.progress import human_bytes
from niriss_pipe.engine.client import Engine
from niriss_pipe.runtime.contract import label
from niriss_pipe.spec.model import BaseSpec

CHUNK = 1 << 20
MAX_CONFIG = 1 << 20  # an image config is a few KiB; a larger member is not one


def save_base(engine: Engine, base: BaseSpec, path: Path) -> str:
    """Write the spec's base to ``path`` (atomically); return its image id."""
    image_id = engine.image_id(base.reference)
    if image_id is None:
        raise UserError(f"the base image {base.reference} is not present, so it cannot be "
                        "saved.", f"make it first: {prog()} base SPEC (or load it: {prog()} "
                        "base SPEC --load FILE)")
    part = path.with_name(path.name + ".part")
    try:
        with open(part, "wb") as out:
            for chunk in engine.save_image(image_id, base.reference, CHUNK):
                out.write(chunk)
        os.replace(part, path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise os_error(exc, "--save", "give a writable path with room for the base "
                       "(about 100 MiB).") from None
    engine.reporter.say(f"saved {base.reference} ({image_id[7:19]}, "
                        f"{human_bytes(path.stat().st_size)}) to {path}; at the other site: "
                        f"{prog()} base SPEC --load {path.name}")
    return image_id


def archive_image(path: Path) -> tuple[str, dict, list[str]]:
    """(image id, config, tags) of the one image a docker-archive holds, read without
    extracting anything; a UserError for anything else."""
    def refuse(what: str) -> UserError:
        return UserError(f"--load {path}: {what}.",
                         f"give a file written by {prog()} base SPEC --save FILE.")

    try:
        with tarfile.open(path, mode="r:*") as tar:
            manifest = _member_json(tar, "manifest.json", refuse)
            if not isinstance(manifest, list) or len(manifest) != 1:
                raise refuse("it does not hold exactly one image")
            entry = manifest[0] if isinstance(manifest[0], dict) else {}
            name = entry.get("Config")
            if not isinstance(name, str):
                raise refuse("its manifest names no image config")
            raw = _member_bytes(tar, name, refuse)
    except (OSError, tarfile.TarError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, tarfile.TarError):
            raise os_error(exc, "--load", "give the path of a base archive.") from None
        raise refuse(f"it is not a docker-archive tar ({exc})") from None
    try:
        config = json.loads(raw)
    except ValueError:
        raise refuse("its image config is not JSON") from None
    tags = [t for t in entry.get("RepoTags") or [] if isinstance(t, str)]
    return "sha256:" + hashlib.sha256(raw).hexdigest(), config, tags


def _member_bytes(tar: tarfile.TarFile, name: str, refuse) -> bytes:
    try:
        member = tar.getmember(name)
    except KeyError:
        raise refuse(f"it has no {name}") from None
    stream = tar.extractfile(member) if member.isfile() and member.size <= MAX_CONFIG else None
    if stream is None:
        raise refuse(f"its {name} is not a small regular file")
    return stream.read()


def _member_json(tar: tarfile.TarFile, name: str, refuse):
    try:
        return json.loads(_member_bytes(tar, name, refuse))
    except ValueError:
        raise refuse(f"its {name} is not JSON") from None


def check_is_base(path: Path, base: BaseSpec, config: dict, tags: list[str]) -> None:
    """Refuse an archive that is not the spec's base (its labels, or its tag for a pulled one)."""
    labels = (config.get("config") or {}).get("Labels") or {}
    if base.debootstrap:
        want = {label("base.suite"): base.suite, label("base.variant"): base.variant,
                label("base.mirror"): base.mirror}
        wrong = [f"{key.rsplit('.', 1)[-1]} {labels.get(key)!r} (the spec: {value!r})"
                 for key, value in want.items() if labels.get(key) != value]
        if wrong:
            raise UserError(f"--load {path}: the archive is not the base the spec names: "
                            f"{'; '.join(wrong)}.",
                            f"save the spec's own base where it exists: {prog()} base SPEC "
                            "--save FILE.")
    elif base.reference not in tags:
        raise UserError(f"--load {path}: the archive is tagged {', '.join(tags) or 'nothing'}, "
                        f"not {base.reference} as the spec's base.image says.",
                        f"save the spec's own base: {prog()} base SPEC --save FILE.")


def load_base(engine: Engine, base: BaseSpec, path: Path) -> str:
    """Load the spec's base from ``path`` after checking it is that base; tag it as the spec
    names it; return its id."""
    image_id, config, tags = archive_image(path)
    check_is_base(path, base, config, tags)
    loaded = engine.load_file(path)
    if image_id not in loaded:
        raise UserError(f"--load {path}: the engine loaded {', '.join(loaded) or 'nothing'}, "
                        f"not the archive's image {image_id}.",
                        "save the base again; the file may be damaged.")
    if ":" in base.reference.rsplit("/", 1)[-1] and "@" not in base.reference:
        repository, tag = base.reference.rsplit(":", 1)
        engine.tag(image_id, repository, tag)
    engine.reporter.say(f"loaded {base.reference} ({image_id[7:19]}) from {path}")
    return image_id
