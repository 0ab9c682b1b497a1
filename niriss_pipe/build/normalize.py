"""Bit-identical images: the built image rewritten so that its id depends on its content only.

The classic builder stamps each layer with the build's clock (file times in the layer tars) and
the config with the build's containers (ids, host names, times, the builder's version). Here the
image is saved, every layer tar rewritten (entries kept in their order, modification times
clamped to SOURCE_DATE_EPOCH, no user or group names, no access or change times) and the config
rewritten (creation and history times at SOURCE_DATE_EPOCH; no container, container_config,
docker_version or parent image), and the result loaded: the same inputs give the same image id
on any engine. All in one pass, with no file of the whole image: the save is read as it streams,
each layer rewritten into a file of its own, and the load sends each one while the next is
rewritten. A rewritten layer is a pure function of the original layer and the epoch, so its
digest is remembered and a layer the engine already holds is not sent again.

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
import queue
import re
import tarfile
import tempfile
import threading
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from niriss_pipe.core import tarstream
from niriss_pipe.core.atomic import write_text
from niriss_pipe.core.cache import cache_path, read_json_object
from niriss_pipe.core.errors import EngineError, UserError
from niriss_pipe.runtime import contract

CHUNK = tarstream.CHUNK
MAP_ENV = "NIRISS_PIPE_LAYER_MAP"  # where rewritten layers' digests are remembered
# An instruction that changes no file (ENV, LABEL, ARG...), as the classic builder records it
# under the Dockerfile's SHELL (``/bin/sh -eu -c #(nop)  ENV ...``).
METADATA = re.compile(r"\S+(?: -\S+)* -c #\(nop\) +(?!COPY |ADD )[A-Z]+ ")
DROPPED = ("container", "container_config", "docker_version")
BUILD = contract.BUILD_DIR.strip("/")  # "tmp/niriss-pipe-build", as layer tars name it
BUILD_PARENTS = {str(parent) for parent in PurePosixPath(BUILD).parents if str(parent) != "."}
BUILD_WHITEOUT = str(PurePosixPath(BUILD).parent / (".wh." + PurePosixPath(BUILD).name))
REWRITE = 2  # the rewrite's version, in the layer map's keys: 2 leaves the build folder out


def iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def rewrite_layer(src: BinaryIO, dst: BinaryIO, epoch: int) -> str | None:
    """Copy a layer tar from ``src`` to ``dst`` with its clock removed; return its
    ``sha256:`` digest (the layer's diff id), or None for a build-only layer (see
    ``rewrite_layer_hashed``). Entry order, modes, numeric owners, link targets and extended
    attributes (security.capability...) are kept: they are content."""
    return rewrite_layer_hashed(src, dst, epoch)[1]


def _build_only(name: str) -> bool:
    """Whether a layer entry is the build folder, in it, or the whiteout that removes it."""
    name = name.removeprefix("./").rstrip("/")
    return name == BUILD or name.startswith(BUILD + "/") or name == BUILD_WHITEOUT


def rewrite_layer_hashed(src: BinaryIO, dst: BinaryIO, epoch: int) -> tuple[str, str | None]:
    """``rewrite_layer``, and the digest of all that was read (the original's diff id, its
    padding and end blocks included): a streamed save names its layers by neither.

    The build folder (contract.BUILD_DIR: wheels, uv, a CA bundle) and its whiteout are left
    out of every layer; a layer that held nothing else (but the folders above it) is a
    build-only layer: None, and nothing of ``dst`` is to be used."""
    digest, original = hashlib.sha256(), hashlib.sha256()

    class Hashing:  # the digest of exactly what is written
        def write(self, data: bytes) -> int:
            digest.update(data)
            return dst.write(data)

    class Hashed:  # the digest of exactly what is read
        def read(self, size: int = -1) -> bytes:
            data = src.read(size)
            original.update(data)
            return data

    reader, left_out, kept = Hashed(), 0, False
    with tarfile.open(fileobj=reader, mode="r|") as tin, \
            tarfile.open(fileobj=Hashing(), mode="w|", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            if _build_only(member.name):
                left_out += 1
                continue
            kept = kept or not (member.isdir() and member.name.rstrip("/") in BUILD_PARENTS)
            member.mtime = min(int(member.mtime), epoch)
            member.uname = member.gname = ""
            member.pax_headers = {key: value for key, value in member.pax_headers.items()
                                  if key.startswith("SCHILY.xattr.")}
            tout.addfile(member, tin.extractfile(member) if member.isreg() else None)
    while reader.read(CHUNK):  # what tarfile left unread: the end blocks, the record padding
        pass
    new = None if left_out and not kept else "sha256:" + digest.hexdigest()
    return "sha256:" + original.hexdigest(), new


def rewrite_config(config: dict, layers: list[str | None], epoch: int) -> bytes:
    """The image config with the build's clock and containers removed, canonical JSON: its
    sha256 is the image id. ``layers``: the rewritten diff id of each layer of ``config``
    (None or "": a build-only layer, left out; its history entry then makes no layer)."""
    clean = {key: value for key, value in config.items() if key not in DROPPED}
    clean["created"] = iso(epoch)
    clean["rootfs"] = {"type": "layers", "diff_ids": [layer for layer in layers if layer]}
    made = iter(layers)
    history = []
    for entry in config.get("history", []):
        entry = {**entry, "created": iso(epoch)}
        if not entry.get("empty_layer") and not next(made, "kept"):
            entry["empty_layer"] = True
        history.append(entry)
    clean["history"] = history
    run = dict(clean.get("config") or {})
    run.pop("Image", None)  # the builder's parent image id: an intermediate, never the same
    run["Hostname"] = ""
    clean["config"] = run
    return json.dumps(clean, sort_keys=True, separators=(",", ":")).encode()


def layer_file(diff_id: str) -> str:
    """A layer's file in a docker-archive: ``<hex>/layer.tar``."""
    return f"{diff_id.split(':', 1)[1]}/layer.tar"


def archive_index(config_bytes: bytes, diff_ids: list[str]) -> tuple[str, list[tuple[str, bytes]]]:
    """The image id, and the config and manifest files of a docker-archive of these layers
    (whose files are in the archive, or held by the engine already)."""
    image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    manifest = json.dumps([{"Config": f"{image_id[7:]}.json", "RepoTags": None,
                            "Layers": [layer_file(diff) for diff in diff_ids]}])
    return image_id, [(f"{image_id[7:]}.json", config_bytes), ("manifest.json", manifest.encode())]


def write_archive(folder: Path, config_bytes: bytes, diff_ids: list[str]) -> str:
    """Lay out a docker-archive's config and manifest in ``folder``; return the image id."""
    image_id, files = archive_index(config_bytes, diff_ids)
    for name, data in files:
        (folder / name).write_bytes(data)
    return image_id


class LayerMap:
    """``{original diff id @ epoch: rewritten diff id}``, remembered across builds (a pure
    function, valid on any engine: whether an engine holds the layer is what load finds)."""

    def __init__(self, path: Path | None = None):
        self.path = path or Path(os.environ.get(MAP_ENV) or cache_path("layers.json"))
        self.entries: dict[str, str] = read_json_object(self.path)
        self.histories_path = self.path.with_name(self.path.stem + "-histories.json")
        self.histories: dict[str, list] = read_json_object(self.histories_path)

    def get(self, diff_id: str, epoch: int) -> str | None:
        """The rewritten diff id; "" for a build-only layer (left out); None: not known."""
        return self.entries.get(f"{diff_id}@{epoch}/{REWRITE}")

    def put(self, diff_id: str, epoch: int, new: str | None) -> None:
        self.entries[f"{diff_id}@{epoch}/{REWRITE}"] = new or ""

    @staticmethod
    def chain(diff_ids, epoch: int) -> str:
        return hashlib.sha256(json.dumps([list(diff_ids), epoch, REWRITE]).encode()).hexdigest()

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
    layers = [layer_map.get(diff, epoch) for diff in shown.layers]
    history = layer_map.history(shown.layers, epoch)
    if None in layers or history is None:
        return None
    diff_ids = [layer for layer in layers if layer]  # build-only layers left out
    config_bytes = config_from_engine(shown, history, diff_ids, epoch)
    if config_bytes is None:
        return None
    new_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    if engine.image_id(new_id) == new_id:
        return new_id
    with tempfile.TemporaryDirectory(prefix="niriss-pipe-normalize-") as tmp:
        folder = Path(tmp)  # no layer file: the engine holds them all
        write_archive(folder, config_bytes, diff_ids)
        try:
            loaded = engine.load_archive(folder)
        except UserError:  # a layer the engine no longer holds: the full rewrite sends it
            return None
    return new_id if loaded == new_id else None


def normalize_image(engine, image_id: str, epoch: int, layer_map: LayerMap | None = None
                    ) -> str:
    """Load the rewritten image of ``image_id``; return its id. The save is rewritten as it
    streams and the result loaded as it is written (see ``_stream``). Layers whose rewrite is
    known are left out of the load when the engine already holds them."""
    layer_map = layer_map or LayerMap()
    shown = engine.image_config(image_id)
    if shown is None:
        raise EngineError(f"the image just built ({image_id[7:19]}) is gone from the engine.",
                          "build again; if it happens again, check that nothing else removes "
                          "images meanwhile (docker image prune).")
    originals = list(shown.layers)
    held = {diff for diff in originals if layer_map.get(diff, epoch) is not None}
    try:
        return _stream(engine, image_id, originals, held, epoch, layer_map)
    except UserError:  # a failed load: the engine's words, as an error paragraph
        if not held:
            raise
        # The engine lacks a layer we did not send (another engine, or removed): send all.
        return _stream(engine, image_id, originals, set(), epoch, layer_map)


def _prove_history(engine, built_id: str, originals: list[str], config_bytes: bytes,
                   diff_ids: list[str], epoch: int, layer_map: LayerMap) -> None:
    """Remember this history for the config-only path only if that path, from what the
    engine shows of the built image, writes exactly this config."""
    history = json.loads(config_bytes)["history"]
    shown = engine.image_config(built_id)
    if shown is not None and config_from_engine(shown, history, diff_ids, epoch) == config_bytes:
        layer_map.put_history(originals, epoch, history)


def _layer_of(member: tarfile.TarInfo, originals: set[str]) -> bool:
    """Whether a member of a saved image is a layer: ``<id>/layer.tar`` (the engine's
    classic layout) or ``blobs/sha256/<diff id>`` (the OCI layout of Docker 25 and later)."""
    name = member.name
    return name.endswith("/layer.tar") or (
        name.startswith("blobs/sha256/") and "sha256:" + name.rsplit("/", 1)[1] in originals)


def _config_of(member: tarfile.TarInfo, image_id: str) -> bool:
    hex_id = image_id.split(":", 1)[1]
    return member.name in (f"{hex_id}.json", f"blobs/sha256/{hex_id}")


class _Abort(Exception):
    """The rewrite failed: the load in progress is cut off (the engine keeps nothing)."""


def _stream(engine, built_id: str, originals: list[str], held: set[str], epoch: int,
            layer_map: LayerMap) -> str:
    """Save, rewrite and load in one pass. Each layer is rewritten from the save stream into
    a file of its own (a tar member's size comes before its data) and handed to the load,
    which sends it while the next one is rewritten; the config and the manifest go last,
    when every new diff id is known (the engine reads the manifest once all has arrived)."""
    ready: queue.Queue = queue.Queue()
    outcome: dict = {}

    def archive():
        while (item := ready.get()) is not None:
            if item is _Abort:
                raise _Abort()
            yield from tarstream.member(*item)
        yield tarstream.END

    def load():
        try:
            outcome["id"] = engine.load_stream(archive())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            outcome["error"] = exc

    loader = threading.Thread(target=load, name="niriss-pipe-load", daemon=True)
    with tempfile.TemporaryDirectory(prefix="niriss-pipe-normalize-") as tmp:
        loader.start()
        try:
            config, rewritten = _rewrite_saved(engine, built_id, set(originals), held, epoch,
                                               layer_map, Path(tmp), ready)
            missing = [diff for diff in originals if diff not in rewritten]
            if config is None or missing:
                raise EngineError(f"the engine's save of {built_id[7:19]} lacks "
                                  f"{'its config' if config is None else missing[0]}.",
                                  ENGINE_FIX_SAVE)
            layers = [rewritten[diff] for diff in originals]
            diff_ids = [layer for layer in layers if layer]  # build-only layers left out
            config_bytes = rewrite_config(config, layers, epoch)
            image_id, index = archive_index(config_bytes, diff_ids)
            for item in index:
                ready.put(item)
            ready.put(None)
        except BaseException:
            ready.put(_Abort)
            loader.join()
            raise
        loader.join()
    if "error" in outcome:
        raise outcome["error"]
    _prove_history(engine, built_id, originals, config_bytes, diff_ids, epoch, layer_map)
    layer_map.save()
    if outcome["id"] != image_id:
        raise EngineError(f"the engine loaded the rewritten image as {outcome['id']}, not "
                          f"{image_id}.", "report this: the engine changed the config it was "
                          "given.")
    return image_id


ENGINE_FIX_SAVE = "check the engine's log and free disk space, then build again."


def _rewrite_saved(engine, built_id: str, originals: set[str], held: set[str], epoch: int,
                   layer_map: LayerMap, tmp: Path, ready: queue.Queue
                   ) -> tuple[dict | None, dict[str, str]]:
    """Read the engine's save of ``built_id`` as it streams: rewrite each layer into ``tmp``
    and put it on ``ready`` unless the engine holds its rewrite (``held``); return the config
    and ``{original diff id: rewritten diff id}``. A layer the save holds twice comes as a
    symlink to the first, and is sent once."""
    config, rewritten, sent = None, {}, set()
    saved = tarstream.ChunkReader(engine.save_image(built_id, "", CHUNK))
    with tarfile.open(fileobj=saved, mode="r|") as archive:
        for index, member in enumerate(archive):
            if member.isreg() and _config_of(member, built_id):
                config = json.load(archive.extractfile(member))
            elif member.isreg() and _layer_of(member, originals):
                part = tmp / f"layer-{index}.tar"
                with archive.extractfile(member) as src, open(part, "wb") as dst:
                    original, new = rewrite_layer_hashed(src, dst, epoch)
                rewritten[original] = new
                layer_map.put(original, epoch, new)
                if new is None or original in held or new in sent:
                    part.unlink()
                else:
                    sent.add(new)
                    ready.put((layer_file(new), part))
    return config, rewritten
