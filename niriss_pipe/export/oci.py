"""An OCI image layout archive from a ``docker save`` archive, in Python: the same uncompressed
layers and config bytes, so the config digest stays the Docker image id."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import BinaryIO

from niriss_pipe.core.errors import UserError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


# -- OCI image layout, from a docker-archive ---------------------------------------------------
class _HashingReader(io.RawIOBase):
    """Reads through a stream and hashes what passes, to check a layer against its digest."""

    def __init__(self, stream: BinaryIO):
        self.stream, self.sha = stream, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.sha.update(data)
        return data


def _tar_info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    """A member with fixed owner, mode and time: the archive depends on the content only."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = size, 0, 0, 0, "", ""
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    return info


def _add_bytes(out: tarfile.TarFile, name: str, data: bytes) -> None:
    out.addfile(_tar_info(name, len(data)), io.BytesIO(data))


def _canonical_json(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _descriptor(media_type: str, data_or_digest, size: int | None = None) -> dict:
    if isinstance(data_or_digest, bytes):
        digest = "sha256:" + hashlib.sha256(data_or_digest).hexdigest()
        size = len(data_or_digest)
    else:
        digest = data_or_digest
    return {"mediaType": media_type, "digest": digest, "size": size}


def docker_archive_to_oci(archive: Path, out: BinaryIO, ref_name: str = "") -> str:
    """Write the OCI image layout archive of the single image in a ``docker save`` tar to
    ``out``; return the manifest digest. Layers are copied uncompressed and checked against the
    config's diff_ids; the config bytes are kept, so its digest stays the Docker image id."""
    with tarfile.open(archive, "r:") as src, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst:
        entries = json.load(src.extractfile("manifest.json"))
        if len(entries) != 1:
            raise UserError(f"{archive} holds {len(entries)} images; one is expected.",
                            "export one image at a time.")
        config = src.extractfile(entries[0]["Config"]).read()
        diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        layer_names = entries[0]["Layers"]
        if len(diff_ids) != len(layer_names):
            raise UserError(f"{archive}: {len(layer_names)} layers but {len(diff_ids)} "
                            "diff_ids in its config.", "save the image again.")
        dst.addfile(_tar_info("blobs/", directory=True))
        dst.addfile(_tar_info("blobs/sha256/", directory=True))
        layers, written = [], set()
        for name, digest in zip(layer_names, diff_ids):
            member = src.getmember(name)
            if digest not in written:
                _copy_layer(src, member, digest, dst)
                written.add(digest)
            layers.append(_descriptor(OCI_LAYER, digest, member.size))
        config_desc = _descriptor(OCI_CONFIG, config)
        manifest = _canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                    "config": config_desc, "layers": layers})
        manifest_desc = _descriptor(OCI_MANIFEST, manifest)
        for data in (config, manifest):
            _add_bytes(dst, f"blobs/sha256/{hashlib.sha256(data).hexdigest()}", data)
        if ref_name:
            manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
        _add_bytes(dst, "index.json", _canonical_json(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [manifest_desc]}))
        _add_bytes(dst, "oci-layout", _canonical_json({"imageLayoutVersion": "1.0.0"}))
    return manifest_desc["digest"]


def _copy_layer(src: tarfile.TarFile, member: tarfile.TarInfo, digest: str,
                dst: tarfile.TarFile) -> None:
    reader = _HashingReader(src.extractfile(member))
    dst.addfile(_tar_info(f"blobs/sha256/{digest.split(':', 1)[1]}", member.size), reader)
    if "sha256:" + reader.sha.hexdigest() != digest:
        raise UserError(f"layer {member.name} does not match its digest {digest}.",
                        "the saved archive is corrupt: run the export again.")
