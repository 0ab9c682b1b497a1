"""A base archive is read (never extracted) and refused unless it is the spec's base."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from niriss_pipe.build.basefile import archive_image, check_is_base
from niriss_pipe.core.errors import UserError
from niriss_pipe.spec.model import BaseSpec

MIRROR = "http://deb.debian.org/debian"


def base(mirror: str = MIRROR) -> BaseSpec:
    return BaseSpec(suite="bookworm", mirror=mirror, variant="minbase")


def config(suite: str = "bookworm", mirror: str = MIRROR) -> bytes:
    labels = {"io.niriss-pipe.base.suite": suite, "io.niriss-pipe.base.mirror": mirror,
              "io.niriss-pipe.base.variant": "minbase"}
    return json.dumps({"config": {"Labels": labels}}).encode()


def archive(path, members: dict[str, bytes], manifest=None):
    with tarfile.open(path, "w") as tar:
        data = {"manifest.json": json.dumps(manifest if manifest is not None else [
            {"Config": "c.json", "RepoTags": [base().reference], "Layers": []}]).encode(),
            **members}
        for name, content in data.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return path


def test_the_id_is_the_config_digest_and_the_labels_are_checked(tmp_path):
    raw = config()
    image_id, read, tags = archive_image(archive(tmp_path / "b.tar", {"c.json": raw}))
    assert image_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert tags == [base().reference]
    check_is_base(tmp_path / "b.tar", base(), read, tags)
    with pytest.raises(UserError) as err:
        check_is_base(tmp_path / "b.tar", base("http://ftp.debian.org/debian"), read, tags)
    assert "mirror 'http://deb.debian.org/debian'" in str(err.value)
    assert "--save FILE" in str(err.value)


@pytest.mark.parametrize("manifest, members, why", [
    ([], {}, "exactly one image"),
    ([{"Config": "c.json"}, {"Config": "c.json"}], {"c.json": b"{}"}, "exactly one image"),
    ([{"Config": "../../etc/passwd"}], {}, "has no ../../etc/passwd"),
    ([{"Config": "c.json"}], {"c.json": b"not json"}, "not JSON"),
    ([{"Layers": []}], {}, "names no image config"),
])
def test_what_is_not_one_base_is_refused(tmp_path, manifest, members, why):
    path = archive(tmp_path / "b.tar", members, manifest)
    with pytest.raises(UserError) as err:
        archive_image(path)
    assert why in str(err.value) and "--load" in str(err.value)


def test_a_config_that_is_a_link_is_not_read(tmp_path):
    path = tmp_path / "b.tar"
    with tarfile.open(path, "w") as tar:
        data = json.dumps([{"Config": "c.json"}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("c.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
        tar.addfile(link)
    with pytest.raises(UserError, match="not a small regular file"):
        archive_image(path)


def test_not_a_tar_and_no_file(tmp_path):
    (tmp_path / "x.tar").write_bytes(b"hello")
    with pytest.raises(UserError, match="not a docker-archive"):
        archive_image(tmp_path / "x.tar")
    with pytest.raises(UserError, match="--load"):
        archive_image(tmp_path / "missing.tar")
