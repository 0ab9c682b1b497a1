"""A pmap-only change builds on the runtime stage it already has, with a small build context.

Everything up to the runtime stage (base, OS packages, the environment, the runtime) depends
only on the Dockerfile's text before its last stage, the context's files but the CRDS ones,
the base image and SOURCE_DATE_EPOCH. When a build with the same of all of those left a
runtime stage the engine still holds, the classic builder would find every one of those
layers in its cache anyway, but only after receiving the whole context (the 230 MiB of
wheels) and hashing it. Here the last stage is built ``FROM`` that runtime stage's id with
the context it needs alone (none, or the baked CRDS files): the same layers, the same history,
so the same image once rewritten (build/normalize.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from niriss_pipe.core.atomic import write_text
from niriss_pipe.core.cache import cache_path, read_json_object
from niriss_pipe.render.context import BuildContext

LAST_STAGE = "\nFROM runtime\n"  # Dockerfile.j2: the final stage, built on the runtime stage
CRDS_PREFIX = "crds/"  # the baked references, used by the last stage only
STAGES_FILE = "runtime-stages.json"


def split(dockerfile: str) -> tuple[str, str] | None:
    """The Dockerfile before its last stage, and the last stage (from its FROM line)."""
    at = dockerfile.find(LAST_STAGE)
    if at < 0:
        return None
    return dockerfile[:at + 1], dockerfile[at + 1:]


def runtime_key(context: BuildContext, base_id: str, epoch: str) -> str | None:
    """sha256 of what the runtime stage is made from; None for a Dockerfile without it."""
    parts = split(context.dockerfile)
    if parts is None:
        return None
    # Comments do not reach the builder (and the header names the image's tags and pmap).
    instructions = "".join(line + "\n" for line in parts[0].splitlines()
                           if not line.lstrip().startswith("#"))
    h = hashlib.sha256(f"{base_id}\0{epoch}\0".encode() + instructions.encode() + b"\0")
    for name in sorted(context.files):
        if not name.startswith(CRDS_PREFIX):
            h.update(name.encode() + b"\0" + hashlib.sha256(context.files[name]).digest())
    for name in sorted(context.disk):
        if not name.startswith(CRDS_PREFIX):
            item = context.disk[name]
            h.update(name.encode() + f"\0{item.algorithm}:{item.sha1}\0".encode())
    return h.hexdigest()


def last_stage_context(context: BuildContext, runtime_image: str) -> BuildContext:
    """The last stage alone, ``FROM`` the runtime stage's image, with the CRDS files only."""
    parts = split(context.dockerfile)
    assert parts is not None  # runtime_key found it
    lines = parts[1].split("\n")[1:]
    # The FROM counts as the first step of the stage that follows it (the progress display
    # names each step's stage by the marker before it).
    marker = next((i for i, line in enumerate(lines) if line.startswith("# == stage:")), None)
    head = [lines.pop(marker)] if marker is not None else []
    dockerfile = "\n".join([*head, f"FROM {runtime_image}", *lines])
    return BuildContext(dockerfile=dockerfile,
                        files={n: d for n, d in context.files.items()
                               if n.startswith(CRDS_PREFIX)},
                        disk={n: d for n, d in context.disk.items()
                              if n.startswith(CRDS_PREFIX)})


class RuntimeStages:
    """``{runtime key: runtime stage image id}`` of earlier builds (a cache: whether the
    engine still holds the image is checked at each use)."""

    def __init__(self, path: Path | None = None):
        self.path = path or cache_path(STAGES_FILE)
        self.entries: dict[str, str] = read_json_object(self.path)

    def get(self, key: str) -> str | None:
        value = self.entries.get(key)
        return value if isinstance(value, str) and value.startswith("sha256:") else None

    def put(self, key: str, image_id: str) -> None:
        if self.entries.get(key) == image_id:
            return
        self.entries[key] = image_id
        try:
            write_text(self.path, json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
        except OSError:  # a cache: without it the next build sends the whole context
            pass
