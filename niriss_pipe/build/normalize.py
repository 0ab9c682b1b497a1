"""Bit-identical images: the built image rewritten so that its id depends on its content only.

The classic builder stamps each layer with the build's clock (file times in the layer tars) and
the config with the build's containers (ids, host names, times, the builder's version). Here the
image is saved, every layer tar rewritten (entries kept in their order, modification times
clamped to SOURCE_DATE_EPOCH, no user or group names, no access or change times) and the config
rewritten (creation and history times at SOURCE_DATE_EPOCH; no container, container_config,
docker_version or parent image), and the result loaded: the same inputs give the same image id
on any engine. A rewritten layer is a pure function of the original layer and the epoch, so its
digest is remembered and a layer the engine already holds is neither rewritten nor sent again.

When every layer of a built image is one whose rewrite is known, and only its run settings
changed (a pmap-only change: ENV and LABEL), nothing needs saving: the config is written anew
from what the engine shows (inspect and history) and the history of the same layers seen
before, and loaded alone (the engine keeps layers it holds). That shortcut is taken only for a
layer chain whose full rewrite it reproduced exactly on this machine before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import BinaryIO

from niriss_pipe.core.atomic import write_text
from niriss_pipe.core.errors import EngineError, UserError

CHUNK = 1 << 20
MAP_ENV = "NIRISS_PIPE_LAYER_MAP"  # where rewritten layers' digests are remembered
# An instruction that changes no file (ENV, LABEL, ARG...), as the classic builder records it
# under the Dockerfile's SHELL (``/bin/sh -eu -c #(nop)  ENV ...``).
METADATA = re.compile(r"\S+(?: -\S+)* -c #\(nop\) +(?!COPY |ADD )[A-Z]+ ")
DROPPED = ("container", "container_config", "docker_version")


def iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def rewrite_layer(src: BinaryIO, dst: BinaryIO, epoch: int) -> str:
    """Copy a layer tar from ``src`` to ``dst`` with its clock removed; return its
    ``sha256:`` digest (the layer's diff id). Entry order, modes, numeric owners, link
    targets and extended attributes (security.capability...) are kept: they are content."""
    digest = hashlib.sha256()

    class Hashing:  # the digest of exactly what is written
        def write(self, data: bytes) -> int:
            digest.update(data)
            return dst.write(data)

    with tarfile.open(fileobj=src, mode="r|") as tin, \
            tarfile.open(fileobj=Hashing(), mode="w|", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            member.mtime = min(int(member.mtime), epoch)
            member.uname = member.gname = ""
            member.pax_headers = {key: value for key, value in member.pax_headers.items()
                                  if key.startswith("SCHILY.xattr.")}
            tout.addfile(member, tin.extractfile(member) if member.isreg() else None)
    return "sha256:" + digest.hexdigest()


def rewrite_config(config: dict, diff_ids: list[str], epoch: int) -> bytes:
    """The image config with the build's clock and containers removed, canonical JSON: its
    sha256 is the image id."""
    clean = {key: value for key, value in config.items() if key not in DROPPED}
    clean["created"] = iso(epoch)
    clean["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    clean["history"] = [{**entry, "created": iso(epoch)} for entry in config.get("history", [])]
    run = dict(clean.get("config") or {})
    run.pop("Image", None)  # the builder's parent image id: an intermediate, never the same
    run["Hostname"] = ""
    clean["config"] = run
    return json.dumps(clean, sort_keys=True, separators=(",", ":")).encode()


def _json_dict(path: Path) -> dict:
    """A JSON object from ``path``; {} when it is missing, broken or not an object (a cache)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_archive(folder: Path, config_bytes: bytes, layer_files: list[str]) -> str:
    """Lay out a docker-archive in ``folder``: the config and a manifest naming the layer
    files (present in ``folder``, or held by the engine already); return the image id."""
    image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    (folder / f"{image_id[7:]}.json").write_bytes(config_bytes)
    (folder / "manifest.json").write_text(json.dumps(
        [{"Config": f"{image_id[7:]}.json", "RepoTags": None, "Layers": layer_files}]))
    return image_id


class LayerMap:
    """``{original diff id @ epoch: rewritten diff id}``, remembered across builds (a pure
    function, valid on any engine: whether an engine holds the layer is what load finds)."""

    def __init__(self, path: Path | None = None):
        default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        self.path = path or Path(os.environ.get(MAP_ENV) or default / "niriss-pipe" /
                                 "layers.json")
        self.entries: dict[str, str] = _json_dict(self.path)
        self.histories_path = self.path.with_name(self.path.stem + "-histories.json")
        self.histories: dict[str, list] = _json_dict(self.histories_path)

    def get(self, diff_id: str, epoch: int) -> str | None:
        return self.entries.get(f"{diff_id}@{epoch}")

    def put(self, diff_id: str, epoch: int, new: str) -> None:
        self.entries[f"{diff_id}@{epoch}"] = new

    @staticmethod
    def chain(diff_ids, epoch: int) -> str:
        return hashlib.sha256(json.dumps([list(diff_ids), epoch]).encode()).hexdigest()

    def history(self, diff_ids, epoch: int) -> list | None:
        """The rewritten history last seen on these original layers, when it was proven."""
        return self.histories.get(self.chain(diff_ids, epoch))

    def put_history(self, diff_ids, epoch: int, history: list) -> None:
        self.histories[self.chain(diff_ids, epoch)] = history

    def save(self) -> None:
        try:
            write_text(self.path, json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
            write_text(self.histories_path, json.dumps(self.histories, sort_keys=True) + "\n")
        except OSError:  # a cache: without it the next build only rewrites more
            pass


def config_from_engine(shown, history: list, diff_ids: list[str], epoch: int) -> bytes | None:
    """The rewritten config of an image from what the engine shows of it (``shown``: an
    engine ImageConfig) and the rewritten ``history`` of an image on the same layers: its
    entries are kept where the instruction is the same, and may differ only where both are
    metadata instructions (ENV, LABEL, ARG...: no layer). None when that does not hold."""
    if len(history) != len(shown.history):
        return None
    entries = []
    for old, (created_by, comment) in zip(history, shown.history):
        if old.get("created_by", "") == created_by and old.get("comment", "") == comment:
            entries.append(old)
        elif old.get("empty_layer") and METADATA.match(created_by) and not comment:
            entries.append({"created": iso(epoch), "created_by": created_by,
                            "empty_layer": True})
        else:
            return None
    raw = {"architecture": shown.architecture, "os": shown.os, "config": shown.config,
           "history": entries, **shown.extra}
    return rewrite_config(raw, diff_ids, epoch)


def normalize_config_only(engine, image_id: str, epoch: int,
                          layer_map: LayerMap | None = None) -> str | None:
    """The rewritten image of ``image_id`` without saving it, when every layer's rewrite is
    known and its layers' history was proven (see the module docstring); else None."""
    layer_map = layer_map or LayerMap()
    shown = engine.image_config(image_id)
    if shown is None:
        return None
    diff_ids = [layer_map.get(diff, epoch) for diff in shown.layers]
    history = layer_map.history(shown.layers, epoch)
    if None in diff_ids or history is None:
        return None
    config_bytes = config_from_engine(shown, history, diff_ids, epoch)
    if config_bytes is None:
        return None
    new_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    if engine.image_id(new_id) == new_id:
        return new_id
    with tempfile.TemporaryDirectory(prefix="niriss-pipe-normalize-") as tmp:
        folder = Path(tmp)  # no layer file: the engine holds them all
        write_archive(folder, config_bytes, [f"{d.split(':', 1)[1]}/layer.tar" for d in diff_ids])
        try:
            loaded = engine.load_archive(folder)
        except UserError:  # a layer the engine no longer holds: the full rewrite sends it
            return None
    return new_id if loaded == new_id else None


def normalize_image(engine, image_id: str, epoch: int, layer_map: LayerMap | None = None
                    ) -> str:
    """Load the rewritten image of ``image_id``; return its id. Layers whose rewrite is known
    are left out of the archive when the engine already holds them."""
    layer_map = layer_map or LayerMap()
    with tempfile.TemporaryDirectory(prefix="niriss-pipe-normalize-") as tmp:
        saved = Path(tmp) / "saved.tar"
        with open(saved, "wb") as out:
            for chunk in engine.save_image(image_id, "", CHUNK):
                out.write(chunk)
        with tarfile.open(saved) as archive:
            manifest = json.load(archive.extractfile("manifest.json"))[0]
            config = json.load(archive.extractfile(manifest["Config"]))
            originals = config["rootfs"]["diff_ids"]
            known = [layer_map.get(diff, epoch) for diff in originals]
            try:
                return _load(engine, image_id, archive, manifest, config, known, epoch,
                             layer_map, tmp)
            except UserError:  # a failed load: the engine's words, as an error paragraph
                if not any(known):
                    raise
                # The engine lacks a layer we did not send (another engine, or removed):
                # send every layer.
                return _load(engine, image_id, archive, manifest, config,
                             [None] * len(known), epoch, layer_map, tmp)


def _prove_history(engine, built_id: str, originals: list[str], config_bytes: bytes,
                   diff_ids: list[str], epoch: int, layer_map: LayerMap) -> None:
    """Remember this history for the config-only path only if that path, from what the
    engine shows of the built image, writes exactly this config."""
    history = json.loads(config_bytes)["history"]
    shown = engine.image_config(built_id)
    if shown is not None and config_from_engine(shown, history, diff_ids, epoch) == config_bytes:
        layer_map.put_history(originals, epoch, history)


def _load(engine, built_id, archive, manifest, config, known, epoch, layer_map, tmp) -> str:
    out_dir = Path(tmp) / "normalized"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    diff_ids, files = [], []
    for index, (member_name, new) in enumerate(zip(manifest["Layers"], known)):
        if new is None:
            part = out_dir / f"layer-{index}.tar"
            with archive.extractfile(member_name) as src, open(part, "wb") as dst:
                new = rewrite_layer(src, dst, epoch)
            layer_map.put(config["rootfs"]["diff_ids"][index], epoch, new)
            final = out_dir / new.split(":", 1)[1] / "layer.tar"
            final.parent.mkdir(exist_ok=True)
            part.rename(final)
        diff_ids.append(new)
        files.append(f"{new.split(':', 1)[1]}/layer.tar")
    config_bytes = rewrite_config(config, diff_ids, epoch)
    _prove_history(engine, built_id, config["rootfs"]["diff_ids"], config_bytes, diff_ids, epoch,
                   layer_map)
    layer_map.save()
    image_id = write_archive(out_dir, config_bytes, files)
    loaded = engine.load_archive(out_dir)
    if loaded != image_id:
        raise EngineError(f"the engine loaded the rewritten image as {loaded}, not {image_id}.",
                          "report this: the engine changed the config it was given.")
    return image_id
