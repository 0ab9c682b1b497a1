"""Real images on the real engine: build, tags, labels, self-test, no-op rebuild, failure."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from niriss_pipe.build.network import find_ca_bundle
from niriss_pipe.render import names as render
from niriss_pipe.runtime.contract import BUILD_DIR
from niriss_pipe.spec import lock
from tests.helpers import (
    ROOT,
    SOURCE_DATE_EPOCH,
    cli,
    cli_on_a_terminal,
    docker,
    final_lines,
    remove_repository,
    write_spec,
)

pytestmark = pytest.mark.engine


def test_build_reports_stages_quietly(default_build):
    proc, spec = default_build
    out = proc.stdout
    # Either a fresh build (stage lines, self-test verdict) or an up-to-date no-op.
    if "up to date" not in out:
        for stage in ("os-packages", "python-env", "build-only", "jwst", "runtime", "context",
                      "selftest"):
            assert f"  {stage}" in out, out
        assert "selftest: PASS" in out
        assert "Step 1/" not in out  # the full builder log only with -v
        assert len(out.splitlines()) < 20
    assert "Traceback" not in proc.stderr


def test_user_facing_and_content_tags(engine, default_build):
    _, spec = default_build
    image_id = engine.image_id(f"niriss-pipe:{spec.pmap_stem}")
    assert image_id
    assert engine.image_id(f"niriss-pipe:{render.full_tag(spec)}") == image_id
    image = engine.client.images.get(image_id)
    content = [t for t in image.tags if t.startswith("niriss-pipe:content-")]
    assert len(content) == 1


def test_labels(engine, default_build):
    _, spec = default_build
    labels = engine.image_labels(f"niriss-pipe:{spec.pmap_stem}")
    base_id = engine.image_id(spec.base.reference)
    expected_created = dt.datetime.fromtimestamp(int(SOURCE_DATE_EPOCH), dt.timezone.utc)
    assert labels["org.opencontainers.image.created"] == \
        expected_created.isoformat().replace("+00:00", "Z")
    assert labels["org.opencontainers.image.base.name"] == \
        "niriss-pipe-base:bookworm-minbase-27f28161"
    assert labels["org.opencontainers.image.base.digest"] == base_id
    assert labels["org.opencontainers.image.version"] == "jwst_1584-jwst3.0.0-py3.11"
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    assert labels["org.opencontainers.image.revision"] == head  # the checkout's, not a stale
    assert labels["org.opencontainers.image.source"]
    assert labels["io.niriss-pipe.crds.context"] == "jwst_1584.pmap"
    assert labels["io.niriss-pipe.jwst.version"] == "3.0.0"
    assert labels["io.niriss-pipe.python.version"] == "3.11"
    assert labels["io.niriss-pipe.python.manager"] == "venv"
    assert labels["io.niriss-pipe.base.suite"] == "bookworm"


def test_image_environment_is_offline_and_unprivileged(default_image):
    env = docker("run", "--rm", "--network", "none", default_image, "env").stdout
    assert "CRDS_CONTEXT=jwst_1584.pmap" in env
    assert "CRDS_PATH=/crds" in env and "CRDS_MODE=local" in env
    assert "CRDS_READONLY_CACHE=1" in env and "serverless" in env
    assert "PIP_CERT" not in env and "SSL_CERT_FILE" not in env  # build-only CA settings
    assert docker("run", "--rm", default_image, "id", "-un").stdout.strip() == "jwst"
    info = docker("run", "--rm", "--network", "none", default_image).stdout
    assert "jwst 3.0.0" in info and "CRDS_CONTEXT=jwst_1584.pmap" in info


def test_noop_rebuild(engine, default_build):
    _, spec = default_build
    before = engine.image_id(f"niriss-pipe:{spec.pmap_stem}")
    proc = cli("build", "images/default.yaml")
    assert "is up to date" in proc.stdout and "nothing to build" in proc.stdout
    assert "building" not in proc.stdout
    assert engine.image_id(f"niriss-pipe:{spec.pmap_stem}") == before


def test_selftest_command(default_image):
    proc = cli("selftest", default_image)
    assert "selftest: PASS" in proc.stdout


def test_selftest_as_arbitrary_uid_without_home(default_image):
    """HPC runtimes and `docker run --user` give uids with no passwd entry and no HOME."""
    proc = docker("run", "--rm", "--network", "none", "--user", "4321:4321", default_image,
                  "selftest")
    assert "selftest: PASS" in proc.stdout


def test_selftest_unknown_image_is_user_error():
    proc = cli("selftest", "niriss-pipe:no-such-tag", check=False)
    assert proc.returncode == 2 and "build it first" in proc.stderr


def test_second_release_reuses_environment_layers(engine, default_build):
    """jwst 1.20.2 with its own context: same base and OS layers, its own jwst layer."""
    proc = cli("build", "images/jwst_1464.yaml")
    assert engine.image_id("niriss-pipe:jwst_1464")
    labels = engine.image_labels("niriss-pipe:jwst_1464-jwst1.20.2-py3.11")
    assert labels["io.niriss-pipe.jwst.version"] == "1.20.2"
    if "up to date" not in proc.stdout:
        assert "os-packages    cached" in proc.stdout  # shared with the default image
        assert "selftest: PASS" in proc.stdout
    versions = docker("run", "--rm", "--network", "none", "niriss-pipe:jwst_1464",
                      "python", "-c", "import jwst; print(jwst.__version__)").stdout
    assert versions.strip() == "1.20.2"


def dangling() -> set[str]:
    return set(docker("images", "--filter", "dangling=true", "--quiet", "--no-trunc")
               .stdout.split())


def test_failed_build_leaves_no_tag_and_no_dangling_image(engine, tmp_path, default_build):
    spec = yaml.safe_load((ROOT / "images" / "default.yaml").read_text())
    spec["name"] = "niriss-pipe-test"
    path = write_spec(tmp_path, "broken", spec)
    # A lock missing one dependency (six, which python-dateutil needs), consistent with its
    # body digest: every file is real and verified, the install succeeds, and `pip check`
    # fails in the jwst stage, inside the build.
    lock_file = tmp_path / "locks" / "broken.txt"
    header, body, _ = lock.split_lock(lock_file.read_text())
    block = re.search(r"^six==1\.17\.0 \\\n(?:\s+--hash=sha256:[0-9a-f]{64}(?: \\)?\n)+"
                      r"(?:\s+# via .*\n)*", body, re.MULTILINE).group(0)
    body = body.replace(block, "")
    header = re.sub(r"# body: sha256:[0-9a-f]{64}", f"# body: sha256:{lock.body_digest(body)}",
                    header)
    lock_file.write_text(header + body)
    before, tags_before = dangling(), set(_tags("niriss-pipe-test"))
    # On a terminal, as a user runs it: the running stage's time updates in place.
    code, shown = cli_on_a_terminal("build", "--no-selftest", str(path))
    assert code == 1
    assert re.search(r"\r  jwst +\d+\.\d s \.\.\.", shown), shown  # ticking while pip ran
    lines = final_lines(shown)
    message = " ".join(" ".join(lines).split())
    assert "the build failed at Step" in message and "--require-hashes" in message
    assert "no tag was changed" in message
    assert "Traceback" not in shown
    stages = {line.split()[0]: line for line in lines if line.startswith("  ") and line.strip()}
    assert "FAILED after" in stages["jwst"] and "cached" not in stages["jwst"], shown
    assert set(_tags("niriss-pipe-test")) <= tags_before  # nothing tagged by this build
    assert dangling() <= before, "the failed build left an untagged image behind"
    # The whole log is a file, named in the error, holding what the screen did not show.
    named = re.search(r"the whole log is (\S+broken-\d{8}T\d{6}Z\.log)", message)
    assert named, message
    log = Path(named.group(1))
    log = log if log.is_absolute() else ROOT / log
    text = log.read_text()
    assert "Step 1/" in text and "requires six, which is not installed" in text
    assert "Step 1/" not in shown  # quiet on screen: one line per stage


def _tags(repository: str) -> list[str]:
    return docker("images", "--format", "{{.Repository}}:{{.Tag}}", repository).stdout.split()


def test_pmap_only_change_rebuilds_only_last_stage(engine, tmp_path, default_build):
    spec = yaml.safe_load((ROOT / "images" / "default.yaml").read_text())
    spec["name"] = "niriss-pipe-test"
    spec["crds"]["context"] = "jwst_1585.pmap"
    path = write_spec(tmp_path, "pmap", spec)
    before = dangling()
    try:
        proc = cli("build", str(path))
        lines = {line.split()[0]: line for line in proc.stdout.splitlines()
                 if line.startswith("  ")}
        for stage in ("os-packages", "python-env", "build-only", "jwst", "runtime"):
            assert lines[stage].split()[1] == "cached", proc.stdout
        assert engine.image_id("niriss-pipe-test:jwst_1585")
        env = docker("run", "--rm", "niriss-pipe-test:jwst_1585", "env").stdout
        assert "CRDS_CONTEXT=jwst_1585.pmap" in env
        # The build stages are no part of the image. This build made only the last stage, on
        # the runtime stage of the session's default image (build/shortcut.py), which stays
        # as the next build's cache under this spec's name too, never as a <none> image.
        assert dangling() <= before
        assert [t for t in _tags("niriss-pipe-test") if t.startswith("niriss-pipe-test:"
                                                                       "runtime-")]
    finally:
        remove_repository("niriss-pipe-test")


def test_render_command_prints_the_built_dockerfile(default_build):
    proc = cli("render", "images/default.yaml")
    assert proc.stdout.startswith("# Rendered by niriss-pipe")
    assert "FROM niriss-pipe-base:bookworm-minbase-27f28161" in proc.stdout


def _regular_files(tar: tarfile.TarFile):
    for member in tar:
        if member.isfile():
            yield member, tar.extractfile(member)


def test_image_holds_nothing_of_the_build_host(engine, default_build):
    """The build used the host's CA bundle (this network intercepts HTTPS), but no file of the
    image equals it, no history line or label names it, a host path or a credential, and the
    image's docker-archive export carries no layer that holds it."""
    _, spec = default_build
    bundle = find_ca_bundle(None)
    assert bundle is not None, "no CA bundle detected: the build did not need one here"
    data = bundle.read_bytes()
    wanted, size = hashlib.sha256(data).hexdigest(), len(data)
    image = f"niriss-pipe:{spec.pmap_stem}"
    history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    for word in ("build-ca", "ca-bundle", "PIP_CERT", "SSL_CERT_FILE", str(bundle), "/root",
                 "/work"):
        assert word not in history, word
    # The one folder of /tmp a build step names is the build folder, which no layer holds.
    assert {path.split("/")[2] for path in re.findall(r"/tmp/[^\s/'\"]+", history)} <= \
        {BUILD_DIR.split("/")[2]}, history
    labels = engine.image_labels(image)
    assert not [v for v in labels.values() if v.startswith(("/", "file:")) or "@" in v.split(
        "://", 1)[-1].split("/", 1)[0]], labels
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    layers = 0
    with tarfile.open(fileobj=save.stdout, mode="r|") as archive:
        for member in archive:
            if not member.name.endswith("layer.tar"):
                continue
            layers += 1
            layer = io.BytesIO(archive.extractfile(member).read())
            with tarfile.open(fileobj=layer) as files:
                names = files.getnames()
                assert not [n for n in names if BUILD_DIR.split("/")[2] in n], names
                for entry, stream in _regular_files(files):
                    assert not entry.name.endswith(("build-ca.crt", "ca-bundle.crt")), entry.name
                    if entry.size == size:
                        assert hashlib.sha256(stream.read()).hexdigest() != wanted, entry.name
    assert save.wait() == 0 and layers >= 5
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    assert not [e for e in config["Env"] if "CERT" in e or "PROXY" in e.upper()], config["Env"]
