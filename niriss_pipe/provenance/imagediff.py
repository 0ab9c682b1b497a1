"""Two images compared by what they are made of: their ids first, then the fields of their
configs and their layers by digest, and in each layer that differs, its files (path, size,
mode, owner, time, content, link).

Images built by niriss-pipe are rewritten bit for bit from their content (build/normalize.py),
so equal inputs give equal ids; when they do not, this says where the difference is.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 1 << 20
FILES_SHOWN = 20


@dataclass
class LayerDiff:
    index: int
    first: str | None   # diff id, None when the layer is in the other image only
    second: str | None
    created_by: str
    files: list[str] = field(default_factory=list)  # "path: what differs"
    files_total: int = 0


@dataclass
class ImageDiff:
    first: str
    second: str
    config: list[str] = field(default_factory=list)  # dotted config fields that differ
    layers: list[LayerDiff] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return self.first == self.second

    def lines(self) -> list[str]:
        if self.same:
            return [f"  {'image':<14} identical ({self.first})"]
        out = [f"  {'image':<14} DIFFER: {self.first[7:19]} and {self.second[7:19]}"]
        if self.config:
            out.append(f"  {'config':<14} {len(self.config)} fields differ: "
                       + ", ".join(self.config[:8]) + (" ..." if len(self.config) > 8 else ""))
        for layer in self.layers:
            what = (f"{layer.first or 'none'} and {layer.second or 'none'}").replace(
                "sha256:", "")
            out.append(f"  layer {layer.index + 1:<8} {layer.created_by[:60]}: {what[:60]}; "
                       f"{layer.files_total} files differ")
            out += [f"      {line}" for line in layer.files]
            if layer.files_total > len(layer.files):
                out.append(f"      ... and {layer.files_total - len(layer.files)} more")
        return out

    def problem(self) -> str:
        layers = ", ".join(f"layer {layer.index + 1} ({layer.files_total} files)"
                           for layer in self.layers[:4])
        return (f"the images differ ({self.first[7:19]} and {self.second[7:19]}): "
                + "; ".join(part for part in (
                    f"config fields {', '.join(self.config[:4])}" if self.config else "",
                    layers) if part))


def config_differences(first, second, where: str = "") -> list[str]:
    """Dotted paths of the fields that differ between two JSON values."""
    if isinstance(first, dict) and isinstance(second, dict):
        found = []
        for key in sorted(set(first) | set(second)):
            path = f"{where}.{key}" if where else key
            if key not in first or key not in second:
                found.append(path)
            else:
                found += config_differences(first[key], second[key], path)
        return found
    if isinstance(first, list) and isinstance(second, list) and len(first) == len(second):
        found = []
        for index, (a, b) in enumerate(zip(first, second)):
            found += config_differences(a, b, f"{where}[{index}]")
        return found
    return [] if first == second else [where or "(all)"]


def layer_files(stream) -> dict[str, tuple]:
    """``{path: (type, size, mode, uid, gid, mtime, sha256 or link target)}`` of a layer."""
    entries = {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            content = member.linkname
            if member.isreg():
                digest = hashlib.sha256()
                handle = tar.extractfile(member)
                block = handle.read(CHUNK)
                while block:
                    digest.update(block)
                    block = handle.read(CHUNK)
                content = digest.hexdigest()
            entries[member.name] = (member.type, member.size, member.mode, member.uid,
                                    member.gid, int(member.mtime), content)
    return entries


def file_differences(first: dict, second: dict) -> list[str]:
    names = ("type", "size", "mode", "owner", "mtime", "content")
    found = [f"{path}: only in the first" for path in sorted(set(first) - set(second))]
    found += [f"{path}: only in the second" for path in sorted(set(second) - set(first))]
    for path in sorted(set(first) & set(second)):
        a, b = first[path], second[path]
        if a == b:
            continue
        what = []
        for name, x, y in zip(names, (a[0], a[1], a[2], a[3:5], a[5], a[6]),
                              (b[0], b[1], b[2], b[3:5], b[5], b[6])):
            if x != y:
                what.append(f"{name} {_shown(name, x)} vs {_shown(name, y)}")
        found.append(f"{path}: {', '.join(what)}")
    return sorted(found)


def _shown(name: str, value) -> str:
    if name == "mode":
        return oct(value)
    if name == "content":
        return str(value)[:12]
    if name == "type":
        return repr(value.decode() if isinstance(value, bytes) else value)
    return str(value)


def compare_images(engine, first: str, second: str) -> ImageDiff:
    """Ids, then config fields and layers (and the files of differing layers)."""
    a, b = engine.image_info(first), engine.image_info(second)
    diff = ImageDiff(a.id, b.id)
    if diff.same:
        return diff
    with tempfile.TemporaryDirectory(prefix="niriss-pipe-compare-") as tmp:
        saved = []
        for number, image in enumerate((a, b)):
            path = Path(tmp) / f"{number}.tar"
            with open(path, "wb") as out:
                for chunk in engine.save_image(image.id, "", CHUNK):
                    out.write(chunk)
            saved.append(path)
        with tarfile.open(saved[0]) as one, tarfile.open(saved[1]) as two:
            (m1, c1), (m2, c2) = _read(one), _read(two)
            diff.config = [path for path in config_differences(c1, c2)
                           if not path.startswith("rootfs.diff_ids")]
            ids1, ids2 = c1["rootfs"]["diff_ids"], c2["rootfs"]["diff_ids"]
            history = [entry for entry in c1.get("history", []) if not entry.get("empty_layer")]
            for index in range(max(len(ids1), len(ids2))):
                d1 = ids1[index] if index < len(ids1) else None
                d2 = ids2[index] if index < len(ids2) else None
                if d1 == d2:
                    continue
                made = history[index].get("created_by", "") if index < len(history) else ""
                layer = LayerDiff(index, d1, d2, made.replace("/bin/sh -eu -c ", ""))
                files1 = layer_files(one.extractfile(m1["Layers"][index])) if d1 else {}
                files2 = layer_files(two.extractfile(m2["Layers"][index])) if d2 else {}
                found = file_differences(files1, files2)
                layer.files, layer.files_total = found[:FILES_SHOWN], len(found)
                diff.layers.append(layer)
    return diff


def _read(archive: tarfile.TarFile) -> tuple[dict, dict]:
    manifest = json.load(archive.extractfile("manifest.json"))[0]
    return manifest, json.load(archive.extractfile(manifest["Config"]))
