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


# -- the config-only path: a pmap-only change rewrites no layer and saves nothing -----------------
RAW = {  # a built image's config as `docker save` has it (classic builder, Engine 20.10)
    "architecture": "amd64", "os": "linux", "docker_version": "20.10.24",
    "container": "c0ffee", "container_config": {"Hostname": "c0ffee"},
    "created": "2026-12-02T02:01:29Z",
    "config": {"Hostname": "c0ffee", "User": "jwst", "Env": ["CRDS_CONTEXT=jwst_1584.pmap"],
               "Image": "sha256:parent", "Labels": {"io.niriss-pipe.crds.context": "jwst_1584"},
               "Entrypoint": ["/opt/niriss-pipe/entrypoint.sh"]},
    "history": [{"created": "2026-12-01T21:47:21Z", "comment": "Imported from -"},
                {"created": "2026-12-02T02:01:28Z", "created_by": "/bin/sh -c pip install x"},
                {"created": "2026-12-02T02:01:29Z",
                 "created_by": "/bin/sh -c #(nop)  ENV CRDS_CONTEXT=jwst_1584.pmap",
                 "empty_layer": True},
                {"created": "2026-12-02T02:01:29Z",
                 "created_by": "/bin/sh -eu -c #(nop)  LABEL io.niriss-pipe.crds.context="
                               "jwst_1584",  # under the Dockerfile's SHELL
                 "empty_layer": True}],
    "rootfs": {"type": "layers", "diff_ids": ["sha256:b1", "sha256:b2"]},
}
NEW = ["sha256:n1", "sha256:n2"]


def shown(raw, pmap="1584"):
    """What inspect and history show of the image ``raw`` with its pmap changed to ``pmap``."""
    from niriss_pipe.engine.values import ImageConfig

    config = json.loads(json.dumps(raw["config"]).replace("1584", pmap))
    return ImageConfig(id="sha256:built", layers=tuple(raw["rootfs"]["diff_ids"]),
                       config=config, architecture="amd64", os="linux",
                       history=tuple((e.get("created_by", "").replace("1584", pmap),
                                      e.get("comment", "")) for e in raw["history"]))


def test_the_config_from_the_engine_is_the_full_rewrite_s():
    from niriss_pipe.build.normalize import config_from_engine

    full = rewrite_config(RAW, NEW, EPOCH)
    history = json.loads(full)["history"]
    assert config_from_engine(shown(RAW), history, NEW, EPOCH) == full
    # another pmap: the ENV and LABEL entries change, and the config is what a full rewrite
    # of that image would write
    other = json.loads(json.dumps(RAW).replace("1584", "1586"))
    assert config_from_engine(shown(RAW, "1586"), history, NEW, EPOCH) == \
        rewrite_config(other, NEW, EPOCH)


@pytest.mark.parametrize("change", ["a RUN changed", "one more entry", "a COPY changed"])
def test_anything_but_metadata_changing_takes_the_full_rewrite(change):
    from niriss_pipe.build.normalize import config_from_engine

    history = json.loads(rewrite_config(RAW, NEW, EPOCH))["history"]
    view = shown(RAW)
    entries = list(view.history)
    if change == "a RUN changed":
        entries[1] = ("/bin/sh -c pip install y", "")
    elif change == "one more entry":
        entries.append(("/bin/sh -c #(nop)  ENV A=1", ""))
    else:
        history[2]["created_by"] = "/bin/sh -c #(nop) COPY dir:abc in /crds"
        entries[2] = ("/bin/sh -c #(nop) COPY dir:def in /crds", "")
    from dataclasses import replace

    assert config_from_engine(replace(view, history=tuple(entries)), history, NEW, EPOCH) is None


class ConfigEngine:
    """The engine calls of the config-only path: inspect, ask for an id, load."""

    def __init__(self, view, held=(), load_fails=False):
        self.view, self.held, self.load_fails, self.loaded = view, set(held), load_fails, []

    def image_config(self, image_id):
        return self.view

    def image_id(self, reference):
        return reference if reference in self.held else None

    def load_archive(self, folder):
        from niriss_pipe.core.errors import UserError

        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        self.loaded.append(files)
        if self.load_fails:
            raise UserError("open /var/lib/docker/tmp/x/n1/layer.tar: no such file")
        config = next(p for p in folder.glob("*.json") if p.name != "manifest.json")
        return "sha256:" + hashlib.sha256(config.read_bytes()).hexdigest()


def test_config_only_loads_the_config_alone_when_every_layer_is_known(tmp_path):
    from niriss_pipe.build.normalize import normalize_config_only

    layer_map = LayerMap(tmp_path / "layers.json")
    engine = ConfigEngine(shown(RAW, "1586"))
    assert normalize_config_only(engine, "sha256:built", EPOCH, layer_map) is None  # unknown
    for old, new in zip(RAW["rootfs"]["diff_ids"], NEW):
        layer_map.put(old, EPOCH, new)
    assert normalize_config_only(engine, "sha256:built", EPOCH, layer_map) is None  # no history
    layer_map.put_history(RAW["rootfs"]["diff_ids"], EPOCH,
                          json.loads(rewrite_config(RAW, NEW, EPOCH))["history"])
    layer_map.save()
    again = LayerMap(tmp_path / "layers.json")  # remembered across builds
    other = json.loads(json.dumps(RAW).replace("1584", "1586"))
    expected = "sha256:" + hashlib.sha256(rewrite_config(other, NEW, EPOCH)).hexdigest()
    assert normalize_config_only(engine, "sha256:built", EPOCH, again) == expected
    assert len(engine.loaded[0]) == 2 and "manifest.json" in engine.loaded[0]  # no layer file
    held = ConfigEngine(shown(RAW, "1586"), held={expected})  # the engine has it: no load
    assert normalize_config_only(held, "sha256:built", EPOCH, again) == expected
    assert held.loaded == []
    gone = ConfigEngine(shown(RAW, "1586"), load_fails=True)  # a layer was removed meanwhile
    assert normalize_config_only(gone, "sha256:built", EPOCH, again) is None


# -- the full path: the save rewritten as it streams, the load sent as it is written ---------------
def saved_image(layout: str, layers: list[bytes], config: dict) -> tuple[str, bytes]:
    """An image as the engine's save streams it: the classic layout of Engine 20.10
    (``<v1 id>/layer.tar``, a layer held twice as a symlink to the first, the manifest after
    the layers) or the OCI layout of Engine 25 and later (``blobs/sha256/<digest>``)."""
    config_bytes = json.dumps(config).encode()
    image_hex = hashlib.sha256(config_bytes).hexdigest()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        def put(name, data=b"", link=None):
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if not link else None)

        names, first = [], {}
        for index, data in enumerate(layers):
            digest = hashlib.sha256(data).hexdigest()
            if layout == "oci":
                name = f"blobs/sha256/{digest}"
                if digest not in first:
                    put(name, data)
            else:
                name = f"{index:064x}/layer.tar"
                put(f"{index:064x}/json", b"{}")
                if digest in first:
                    put(name, link=f"../{first[digest].split('/')[0]}/layer.tar")
                else:
                    put(name, data)
            first.setdefault(digest, name)
            names.append(name)
        config_name = f"blobs/sha256/{image_hex}" if layout == "oci" else f"{image_hex}.json"
        put(config_name, config_bytes)
        put("manifest.json", json.dumps([{"Config": config_name, "Layers": names}]).encode())
    return "sha256:" + image_hex, out.getvalue()


class StreamEngine:
    """The engine calls of the full path: inspect, save (in small chunks), load from a
    stream (read through like the engine does; a layer it was not sent must be one it holds)."""

    def __init__(self, layout, layers, config, held=(), refuse=False, save_breaks=False):
        from niriss_pipe.engine.values import ImageConfig

        self.built, self.data = saved_image(layout, layers, config)
        self.view = ImageConfig(id=self.built, layers=tuple(config["rootfs"]["diff_ids"]),
                                config=config["config"], architecture="amd64", os="linux",
                                history=tuple((e.get("created_by", ""), e.get("comment", ""))
                                              for e in config["history"]))
        self.held, self.refuse, self.save_breaks = set(held), refuse, save_breaks
        self.loads, self.aborted = [], False

    def image_config(self, image_id):
        return self.view if image_id == self.built else None

    def save_image(self, image_id, named, chunk_size):
        from niriss_pipe.core.errors import EngineError

        for start in range(0, len(self.data), 1000):
            if self.save_breaks and start > len(self.data) // 2:
                raise EngineError("lost the connection to the Docker Engine while saving.", "")
            yield self.data[start:start + 1000]

    def load_stream(self, chunks):
        from niriss_pipe.core.errors import UserError
        from niriss_pipe.core.tarstream import ChunkReader

        files = {}
        try:
            with tarfile.open(fileobj=ChunkReader(chunks), mode="r|") as tar:
                for member in tar:
                    files[member.name] = tar.extractfile(member).read()
        except Exception:
            self.aborted = True
            raise
        self.loads.append(files)
        manifest = json.loads(files["manifest.json"])[0]
        for name in manifest["Layers"]:
            if name in files:
                digest = "sha256:" + hashlib.sha256(files[name]).hexdigest()
                assert name == f"{digest[7:]}/layer.tar"
                self.held.add(digest)
        if self.refuse or any(name not in files and "sha256:" + name.split("/")[0] not in
                              self.held for name in manifest["Layers"]):
            raise UserError("open /var/lib/docker/tmp/x/layer.tar: no such file", "")
        return "sha256:" + hashlib.sha256(files[manifest["Config"]]).hexdigest()


def stream_config(layers):
    return {**RAW, "rootfs": {"type": "layers", "diff_ids": [
        "sha256:" + hashlib.sha256(data).hexdigest() for data in layers]},
        "history": RAW["history"][:1] + [{**RAW["history"][1], "created_by": f"RUN {i}"}
                                         for i in range(len(layers) - 1)] + RAW["history"][2:]}


# Two layers (the second from before the epoch: other content), the third the first again:
# the save holds it once. The digests are of whole tars, with tarfile's record padding.
LAYERS = [layer(EPOCH + 10), layer(EPOCH - 100, owner="builder"), layer(EPOCH + 10)]


@pytest.mark.parametrize("layout", ["classic", "oci"])
def test_the_streamed_rewrite_is_the_rewrite_of_each_layer(tmp_path, monkeypatch, layout):
    from niriss_pipe.build.normalize import normalize_image

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    config = stream_config(LAYERS)
    engine = StreamEngine(layout, LAYERS, config)
    layer_map = LayerMap(tmp_path / "layers.json")
    new = [rewritten(data)[1] for data in LAYERS]
    expected = "sha256:" + hashlib.sha256(rewrite_config(config, new, EPOCH)).hexdigest()
    assert normalize_image(engine, engine.built, EPOCH, layer_map) == expected
    sent = engine.loads[0]
    assert sorted(sent) == sorted({f"{d[7:]}/layer.tar" for d in new} |
                                  {f"{expected[7:]}.json", "manifest.json"})  # one copy each
    assert all(layer_map.get(old, EPOCH) == d
               for old, d in zip(config["rootfs"]["diff_ids"], new))
    assert list((tmp_path / "tmp").iterdir()) == []  # no file of the image is left behind
    # Again with the rewrites known and held by the engine: only the config and manifest go.
    assert normalize_image(engine, engine.built, EPOCH, layer_map) == expected
    assert sorted(engine.loads[1]) == [f"{expected[7:]}.json", "manifest.json"]


def test_a_held_layer_the_engine_lost_is_sent_on_a_second_try(tmp_path):
    from niriss_pipe.build.normalize import normalize_image

    config = stream_config(LAYERS)
    layer_map = LayerMap(tmp_path / "layers.json")

    for old, data in zip(config["rootfs"]["diff_ids"], LAYERS):
        layer_map.put(old, EPOCH, rewritten(data)[1])  # known, but this engine holds none
    engine = StreamEngine("classic", LAYERS, config)
    image_id = normalize_image(engine, engine.built, EPOCH, layer_map)
    assert len(engine.loads) == 2 and len(engine.loads[1]) == 4  # 2 layers, config, manifest
    assert image_id == "sha256:" + hashlib.sha256(engine.loads[1][f"{image_id[7:]}.json"]
                                                  ).hexdigest()


def test_a_save_that_breaks_cuts_the_load_off_and_says_why(tmp_path):
    from niriss_pipe.build.normalize import normalize_image
    from niriss_pipe.core.errors import EngineError

    engine = StreamEngine("classic", LAYERS, stream_config(LAYERS), save_breaks=True)
    with pytest.raises(EngineError, match="lost the connection"):
        normalize_image(engine, engine.built, EPOCH, LayerMap(tmp_path / "layers.json"))
    assert engine.aborted and engine.loads == []  # the engine got a broken archive: no image


def test_a_refused_load_is_the_engine_s_words(tmp_path):
    from niriss_pipe.build.normalize import normalize_image
    from niriss_pipe.core.errors import UserError

    engine = StreamEngine("oci", LAYERS, stream_config(LAYERS), refuse=True)
    with pytest.raises(UserError, match="no such file"):
        normalize_image(engine, engine.built, EPOCH, LayerMap(tmp_path / "layers.json"))


# -- the build folder: in no layer of the image --------------------------------------------------
def build_layers() -> tuple[bytes, bytes]:
    """The build-only layer (COPY build-only/ /tmp/niriss-pipe-build/: the folders above it,
    wheels, a CA bundle) and the install step's layer (the environment, and the whiteout of
    the build folder it removed)."""
    def tar(entries):
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for name, data in entries:
                info = tarfile.TarInfo(name)
                info.mtime = EPOCH + 50
                if data is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
                else:
                    info.size = len(data)
                archive.addfile(info, io.BytesIO(data) if data is not None else None)
        return out.getvalue()

    copied = tar([("tmp", None), ("tmp/niriss-pipe-build", None),
                  ("tmp/niriss-pipe-build/ca-bundle.crt", b"-----BEGIN CERTIFICATE-----\n"),
                  ("tmp/niriss-pipe-build/wheels", None),
                  ("tmp/niriss-pipe-build/wheels/a-1-py3-none-any.whl", b"zip")])
    installed = tar([("opt", None), ("opt/env", None), ("opt/env/a.py", b"x = 1\n"),
                     ("tmp", None), ("tmp/.wh.niriss-pipe-build", b"")])
    return copied, installed


def test_the_build_only_layer_is_left_out_and_its_whiteout_with_it():
    copied, installed = build_layers()
    assert rewritten(copied)[1] is None
    data, digest = rewritten(installed)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert tar.getnames() == ["opt", "opt/env", "opt/env/a.py", "tmp"]
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    # A layer that only touched /tmp is content like any other: kept.
    only_tmp = io.BytesIO()
    with tarfile.open(fileobj=only_tmp, mode="w") as tar:
        info = tarfile.TarInfo("tmp")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    assert rewritten(only_tmp.getvalue())[1] is not None


def test_a_left_out_layer_s_history_entry_makes_no_layer():
    config = json.loads(rewrite_config(RAW, [None, "sha256:n2"], EPOCH))
    assert config["rootfs"]["diff_ids"] == ["sha256:n2"]
    made = [entry.get("empty_layer", False) for entry in config["history"]]
    assert made == [True, False, True, True]  # the first layer's entry, and the two metadata ones
    assert config["history"][0]["comment"] == "Imported from -"  # kept, as the record of it


@pytest.mark.parametrize("layout", ["classic", "oci"])
def test_an_image_is_loaded_without_its_build_folder(tmp_path, layout):
    """The streamed rewrite leaves the build-only layer out (not sent, not in the manifest),
    and the config-only path of a pmap-only change gives what a full rewrite would."""
    from niriss_pipe.build.normalize import normalize_config_only, normalize_image

    copied, installed = build_layers()
    layers = [layer(EPOCH - 100), copied, installed]
    config = stream_config(layers)
    engine = StreamEngine(layout, layers, config)
    layer_map = LayerMap(tmp_path / "layers.json")
    image_id = normalize_image(engine, engine.built, EPOCH, layer_map)
    sent = engine.loads[0]
    manifest = json.loads(sent["manifest.json"])[0]
    kept = [rewritten(layers[0])[1], rewritten(installed)[1]]
    assert manifest["Layers"] == [f"{d[7:]}/layer.tar" for d in kept]
    assert not [data for name, data in sent.items() if b"BEGIN CERTIFICATE" in data]
    final = json.loads(sent[manifest["Config"]])
    assert final["rootfs"]["diff_ids"] == kept
    assert [e.get("empty_layer", False) for e in final["history"]] == [False, True, False,
                                                                        True, True]
    assert layer_map.get(config["rootfs"]["diff_ids"][1], EPOCH) == ""  # known: left out
    # the same layers, another pmap: the config alone, as the full rewrite would write it
    other = json.loads(json.dumps(config).replace("1584", "1586"))
    again = StreamEngine(layout, layers, other, held=engine.held)
    config_only = normalize_config_only(
        ConfigEngine(again.view), again.built, EPOCH, layer_map)
    full = "sha256:" + hashlib.sha256(rewrite_config(other, [kept[0], None, kept[1]],
                                                     EPOCH)).hexdigest()
    assert config_only == full and image_id != full
