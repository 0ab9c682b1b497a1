"""The rewrite that makes images bit-identical: layers lose the build's clock and names but
keep their content, order, modes, owners, links and attributes; configs lose the build's
containers and times. Two layers that differ only in when they were made come out equal."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from niriss_pipe.build.normalize import LayerMap, iso, rewrite_config, rewrite_layer

EPOCH = 1752537600  # 2025-07-15T00:00:00Z


def layer(made: float, owner: str = "root") -> bytes:
    """A layer tar as the builder writes it: a folder, a file, a hard link, a symlink, an
    executable with a capability, times from the clock ``made``."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name, kind, data=b"", **extra):
            info = tarfile.TarInfo(name)
            info.type, info.mtime, info.uname, info.gname = kind, made, owner, owner
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            for key, value in extra.items():
                setattr(info, key, value)
            info.pax_headers = {"atime": str(made), "ctime": str(made)}
            if name == "usr/bin/ping":
                info.pax_headers["SCHILY.xattr.security.capability"] = "\x01\x00\x00\x02"
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("opt/env/", tarfile.DIRTYPE, mode=0o755)
        add("opt/env/a.py", tarfile.REGTYPE, b"x = 1\n", mode=0o644, uid=0)
        add("opt/env/b.py", tarfile.LNKTYPE, linkname="opt/env/a.py")
        add("opt/env/c", tarfile.SYMTYPE, linkname="a.py")
        add("data/", tarfile.DIRTYPE, mode=0o755, uid=1000, gid=1000)
        add("usr/bin/ping", tarfile.REGTYPE, b"\x7fELF", mode=0o755)
        add("old.txt", tarfile.REGTYPE, b"from the deb\n", mode=0o644)
    return out.getvalue()


def rewritten(data: bytes) -> tuple[bytes, str]:
    out = io.BytesIO()
    digest = rewrite_layer(io.BytesIO(data), out, EPOCH)
    return out.getvalue(), digest


def test_layers_made_at_different_times_come_out_bit_identical():
    one, two = layer(EPOCH + 86400), layer(EPOCH + 3 * 86400.5, owner="builder")
    assert hashlib.sha256(one).digest() != hashlib.sha256(two).digest()
    (a, digest_a), (b, digest_b) = rewritten(one), rewritten(two)
    assert a == b and digest_a == digest_b == "sha256:" + hashlib.sha256(a).hexdigest()


def test_the_rewrite_keeps_the_content():
    data, _ = rewritten(layer(EPOCH + 100))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["opt/env", "opt/env/a.py", "opt/env/b.py",
                                             "opt/env/c", "data", "usr/bin/ping", "old.txt"]
        by_name = {m.name: m for m in members}
        assert tar.extractfile("opt/env/a.py").read() == b"x = 1\n"
        assert by_name["opt/env/b.py"].islnk() and by_name["opt/env/b.py"].linkname == \
            "opt/env/a.py"
        assert by_name["opt/env/c"].issym() and by_name["opt/env/c"].linkname == "a.py"
        assert (by_name["data"].uid, by_name["data"].gid) == (1000, 1000)
        assert by_name["usr/bin/ping"].mode == 0o755
        assert by_name["usr/bin/ping"].pax_headers == {
            "SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}
        assert all(m.mtime == EPOCH and m.uname == m.gname == "" for m in members)
        assert all("atime" not in m.pax_headers and "ctime" not in m.pax_headers
                   for m in members)


def test_times_before_the_epoch_are_kept():
    """Files from Debian's packages keep their own (older) times: only the build's clock is
    clamped."""
    data, _ = rewritten(layer(EPOCH - 5000))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert {m.mtime for m in tar.getmembers()} == {EPOCH - 5000}


def test_the_config_loses_the_build_s_containers_and_times():
    built = {
        "architecture": "amd64", "os": "linux", "created": "2026-12-01T23:40:01.123Z",
        "container": "b2d365e69490", "docker_version": "20.10.24+dfsg1",
        "container_config": {"Hostname": "b2d365e69490", "Cmd": ["/bin/sh"]},
        "config": {"Hostname": "", "Image": "sha256:" + "9" * 64, "Env": ["A=1"],
                   "Labels": {"x": "y"}, "Cmd": ["info"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:old"]},
        "history": [{"created": "2026-12-01T23:40:00Z", "created_by": "RUN x"},
                    {"created": "2026-12-01T23:40:01Z", "created_by": "ENV A=1",
                     "empty_layer": True}],
    }
    data = rewrite_config(built, ["sha256:new"], EPOCH)
    config = json.loads(data)
    assert set(config) == {"architecture", "os", "created", "config", "rootfs", "history"}
    assert config["created"] == iso(EPOCH) == "2025-07-15T00:00:00Z"
    assert "Image" not in config["config"] and config["config"]["Env"] == ["A=1"]
    assert config["rootfs"]["diff_ids"] == ["sha256:new"]
    assert [h["created"] for h in config["history"]] == [iso(EPOCH)] * 2
    assert config["history"][1]["empty_layer"] is True
    assert data == json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    again = rewrite_config({**built, "container": "other", "created": "2027-01-01T00:00:00Z"},
                           ["sha256:new"], EPOCH)
    assert again == data


@pytest.mark.parametrize("broken", ["{", "[]"])
def test_the_layer_map_survives_a_broken_file(tmp_path, broken):
    path = tmp_path / "layers.json"
    path.write_text(broken)
    mapping = LayerMap(path) if broken == "{" else LayerMap(tmp_path / "missing.json")
    assert mapping.get("sha256:a", EPOCH) is None
    mapping.put("sha256:a", EPOCH, "sha256:b")
    mapping.save()
    assert LayerMap(mapping.path).get("sha256:a", EPOCH) == "sha256:b"
    assert LayerMap(mapping.path).get("sha256:a", EPOCH + 1) is None  # another epoch
