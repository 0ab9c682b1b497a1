"""Bit-identical images for real: the same spec and lock give the same image id on another
engine (its own data root and socket, started here, with its base made again from Debian's
mirror), through ``verify --rebuild``; and a one-line change in the lock gives another image,
whose differing layer and files ``compare`` names.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import yaml

from niriss_pipe.spec import lock
from tests.helpers import ROOT, cli, remove_repository, write_spec

pytestmark = pytest.mark.engine

# six 1.16.0's wheel on PyPI (py2.py3-none-any): a real, older release python-dateutil accepts.
SIX_1_16_0 = ("six==1.16.0 \\\n    --hash=sha256:"
              "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n")


BRIDGE, BRIDGE_NET = "np-docker1", "172.31.254.1/24"  # the second engine's own bridge


@pytest.fixture(scope="module")
def second_engine(tmp_path_factory):
    """Another dockerd: its own data root, exec root, socket and bridge (an engine started
    with --bridge=none deletes the host's docker0, the first engine's), no iptables rules;
    its builds use the host's network. Stopped and removed at the end."""
    root = tmp_path_factory.mktemp("engine2")
    socket = root / "docker.sock"
    subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
    subprocess.run(["ip", "addr", "add", BRIDGE_NET, "dev", BRIDGE], check=True)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
    log = open(root / "dockerd.log", "w")
    daemon = subprocess.Popen(
        ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "docker.pid"), "--host", f"unix://{socket}",
         "--bridge", BRIDGE, "--iptables=false", "--ip6tables=false"],
        stdout=log, stderr=subprocess.STDOUT)
    host = f"unix://{socket}"
    try:
        for _ in range(60):
            if subprocess.run(["docker", "-H", host, "info"],
                              capture_output=True).returncode == 0:
                break
            time.sleep(1)
        else:
            raise AssertionError("the second dockerd did not start: "
                                 + (root / "dockerd.log").read_text()[-2000:])
        yield host
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        log.close()
        subprocess.run(["ip", "link", "delete", BRIDGE], check=False)
        for line in Path("/proc/mounts").read_text().splitlines():  # its netns, overlays
            mount = line.split()[1]
            if mount.startswith(str(root)):
                subprocess.run(["umount", "-l", mount], check=False)
        subprocess.run(["rm", "-rf", str(root / "data"), str(root / "exec")], check=False)
        assert subprocess.run(["ip", "link", "show", "docker0"],
                              capture_output=True).returncode == 0, "docker0 is gone"


# The revision an earlier commit of the tool would have written into the image's labels.
EARLIER = "0123456789abcdef0123456789abcdef01234567"


def relabel_into(image_id: str, old: str, new: str, tag: str, host: str) -> str:
    """Stream the engine's save of ``image_id`` into the engine at ``host`` with ``old`` (its
    revision label) written as ``new`` in its config, as a build by that revision would have
    written it; return the new image's id (the sha256 of that config)."""
    hex_id = image_id.split(":", 1)[1]
    save = subprocess.Popen(["docker", "save", image_id], stdout=subprocess.PIPE)
    load = subprocess.Popen(["docker", "-H", host, "load"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    new_id = None
    with tarfile.open(fileobj=save.stdout, mode="r|") as src, \
            tarfile.open(fileobj=load.stdin, mode="w|", format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            data = src.extractfile(member) if member.isreg() else None
            if member.name == f"{hex_id}.json":
                text = data.read().decode()
                assert text.count(old) >= 1, "the config names no revision"
                config = text.replace(old, new).encode()
                new_id = "sha256:" + hashlib.sha256(config).hexdigest()
                member.name, member.size, data = f"{new_id[7:]}.json", len(config), \
                    io.BytesIO(config)
            elif member.name == "manifest.json":
                manifest = json.loads(data.read())
                manifest[0]["Config"], manifest[0]["RepoTags"] = f"{new_id[7:]}.json", [tag]
                raw = json.dumps(manifest).encode()
                member.size, data = len(raw), io.BytesIO(raw)
            elif member.name == "repositories":
                continue
            dst.addfile(member, data)
    out, err = load.communicate()  # closes its stdin: the end of the archive
    assert save.wait() == 0 and load.returncode == 0, err.decode()
    return new_id


@pytest.mark.no_layer_cache  # last, with the no-cache builds: the heaviest check
def test_another_engine_rebuilds_the_default_image_bit_for_bit(second_engine, default_image_id,
                                                              engine):
    """The session's image, loaded into an empty engine that has never built anything, is
    rebuilt there from its spec and lock with no layer cache (its debootstrap base made
    anew): the same image id. It is loaded as an earlier commit of the tool would have made it
    (its revision label that commit's): the rebuild builds under the image's labels, so it is
    bit for bit that image, and says which checkout rebuilt it."""
    from niriss_pipe.build.stamps import revision

    image_id = engine.image_id(default_image_id)  # the full id
    here = engine.image_info(image_id).labels["org.opencontainers.image.revision"]
    assert here == revision() and len(here) == 40
    default_image = "niriss-pipe-under-test:jwst_1584"  # a tag of ours: the image by id
    env = {**os.environ, "DOCKER_HOST": second_engine}
    earlier_id = relabel_into(image_id, here, EARLIER, default_image, second_engine)
    assert earlier_id != image_id
    images = subprocess.run(["docker", "-H", second_engine, "images", "-q", "--no-trunc"],
                            capture_output=True, text=True).stdout.split()
    assert set(images) == {earlier_id}  # only the image under test: no base, no cache there
    proc = cli("verify", default_image, "--rebuild", "--no-selftest",
               env={"DOCKER_HOST": second_engine, "NIRISS_PIPE_BUILD_NETWORK": "host"},
               check=False)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "making base" in out and "debuerreotype" in out  # the base was made there, anew
    assert f"  built by revision {EARLIER[:12]}; this checkout is {here[:12]}" in out, out
    assert f"rebuilt bit for bit ({earlier_id}) by revision {here[:12]}" in out, out
    assert f"  image          identical ({earlier_id})" in out
    rebuilt = [line for line in subprocess.run(
        ["docker", "-H", second_engine, "images", "--format", "{{.Repository}}"],
        capture_output=True, text=True, env=env).stdout.split() if "rebuild" in line]
    assert rebuilt == []  # the rebuild's tags are gone


def test_a_one_line_change_in_the_lock_is_another_image_and_compare_names_it(
        tmp_path, default_image_id, engine):
    default_image = engine.image_id(default_image_id)
    spec = yaml.safe_load((ROOT / "images" / "default.yaml").read_text())
    spec["name"] = "niriss-pipe-onechange"
    path = write_spec(tmp_path, "onechange", spec)
    locked = tmp_path / "locks" / "onechange.txt"
    header, body, _ = lock.split_lock(locked.read_text())
    block = re.search(r"^six==1\.17\.0 \\\n(?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+", body,
                      re.MULTILINE).group(0)
    body = body.replace(block, SIX_1_16_0)  # the one pin: as a resolver would write it
    header = re.sub(r"# body: sha256:[0-9a-f]{64}", f"# body: sha256:{lock.body_digest(body)}",
                    header)
    locked.write_text(header + body)
    try:
        built = cli("build", "--no-selftest", str(path))
        assert "normalize" in built.stdout
        other = engine.image_id("niriss-pipe-onechange:jwst_1584")
        assert other and other != default_image_id
        proc = cli("compare", default_image, "niriss-pipe-onechange:jwst_1584", check=False)
        out = proc.stdout
        assert proc.returncode == 1, out + proc.stderr
        assert "image          DIFFER" in out
        assert "io.niriss-pipe.lock.digest" in out  # the label naming the lock
        assert re.search(r"six-1\.17\.0\.dist-info/\S+: only in the first", out), out
        assert re.search(r"six-1\.16\.0\.dist-info/\S+: only in the second", out), out
        assert "opt/niriss-pipe/requirements.lock: size" in out
        as_json = json.loads(cli("compare", "--json", default_image,
                                 "niriss-pipe-onechange:jwst_1584", check=False).stdout)
        assert not as_json["same"] and len(as_json["layers"]) == 2, as_json["layers"]
        # the same image compared with itself
        same = cli("compare", default_image, default_image)
        assert "identical" in same.stdout
    finally:
        remove_repository("niriss-pipe-onechange")


def test_pmap_only_rebuild_and_noop_keep_their_speed_path(engine, default_image_id, tmp_path):
    """A new pmap rebuilds only the context stage on the cached runtime stage (no environment
    layer rebuilt or rewritten), and its image differs from the default in its config only.
    Its rewrite is then config-only (nothing saved) and gives the id the full rewrite gives;
    its self-test verdict is the same environment's."""
    from niriss_pipe.build.normalize import LayerMap

    default_image = engine.image_id(default_image_id)
    spec = yaml.safe_load((ROOT / "images" / "default.yaml").read_text())
    spec["name"] = "niriss-pipe-pmaponly"
    spec["crds"]["context"] = "jwst_1586.pmap"
    path = write_spec(tmp_path, "pmaponly", spec)
    # this test's own layer map: the rewrites the session's builds learned, no histories yet
    layers = tmp_path / "layers.json"
    layers.write_text(LayerMap().path.read_text())
    env = {"NIRISS_PIPE_LAYER_MAP": str(layers)}
    tag = "niriss-pipe-pmaponly:jwst_1586"
    try:
        proc = cli("build", "--no-selftest", str(path), env=env)
        stages = {line.split()[0]: line for line in proc.stdout.splitlines()
                  if line.startswith("  ")}
        for stage in ("os-packages", "python-env", "build-only", "jwst", "runtime"):
            assert stages[stage].split()[1] == "cached", proc.stdout
        assert "config only" not in stages["normalize"]  # the full rewrite: it learns
        full = engine.image_id(tag)
        diff = json.loads(cli("compare", "--json", default_image, tag, check=False).stdout)
        assert diff["layers"] == [], diff["layers"]  # every layer is the default's
        assert any("CRDS_CONTEXT" in field or "Env" in field for field in diff["config"])

        cli("build", "--force", str(path), env=env)  # with its self-test (run or reused)
        again = cli("build", "--force", str(path), env=env).stdout
        normalize = next(line for line in again.splitlines() if line.startswith("  normalize"))
        assert "config only" in normalize and full[7:19] in normalize, again
        assert engine.image_id(tag) == full  # the same id as the full rewrite's
        assert re.search(r"  selftest +reused +selftest: PASS .*\(the verdict of [0-9a-f]{12}, "
                         r"the same environment\)", again), again
        records = Path(os.environ["NIRISS_PIPE_RECORDS"]) / "niriss-pipe-pmaponly"
        record = json.loads(sorted(records.glob("*.json"))[-1].read_text())
        assert record["build"]["selftest_reused_from"].startswith("sha256:")
        shown = cli("inspect", tag).stdout
        assert re.search(r"self-test +selftest: PASS.* at build \(reused: the verdict of", shown)
        noop = cli("build", str(path), env=env)
        assert "is up to date" in noop.stdout

        # another pmap on the same layers: config-only at once, and the id the full rewrite
        # (a layer map that has proven nothing) gives for it
        spec["crds"]["context"] = "jwst_1587.pmap"
        other = write_spec(tmp_path, "pmaponly", spec)
        built = cli("build", "--no-selftest", str(other), env=env).stdout
        assert "config only" in built, built
        fast = engine.image_id("niriss-pipe-pmaponly:jwst_1587")
        unproven = tmp_path / "unproven.json"
        unproven.write_text(layers.read_text())
        slow = cli("build", "--force", "--no-selftest", str(other),
                   env={"NIRISS_PIPE_LAYER_MAP": str(unproven)}).stdout
        assert "config only" not in slow
        assert engine.image_id("niriss-pipe-pmaponly:jwst_1587") == fast
    finally:
        remove_repository("niriss-pipe-pmaponly")
