"""The build context tar and the content identity derived from it."""

from __future__ import annotations

import io
import tarfile

from niriss_pipe.build.builder import content_tag
from niriss_pipe.render.context import make_context

LOCK = b"jwst==3.0.0 --hash=sha256:00\n"


def test_tar_is_reproducible_and_complete(tmp_path):
    a, b = make_context("FROM x\n", LOCK), make_context("FROM x\n", LOCK)
    assert a.tar() == b.tar()
    with tarfile.open(fileobj=io.BytesIO(a.tar())) as tar:
        names = tar.getnames()
        assert {m.mtime for m in tar.getmembers()} == {0}
    assert names == sorted(names)
    assert {"Dockerfile", "entrypoint.sh", "niriss_pipe/__init__.py",
            "niriss_pipe/runtime/selftest.py", "niriss_pipe/runtime/synth.py",
            "niriss_pipe/runtime/cachecheck.py", "requirements.lock"} <= set(names)


def test_content_identity_follows_every_input(tmp_path):
    pem = tmp_path / "ca.pem"
    pem.write_text("cert")
    plain = make_context("FROM x\n", LOCK)
    base_tag = content_tag(plain, "sha256:1")
    assert content_tag(make_context("FROM x\n", LOCK), "sha256:1") == base_tag
    assert content_tag(plain, "sha256:2") != base_tag  # a rebuilt base
    assert content_tag(make_context("FROM y\n", LOCK), "sha256:1") != base_tag  # another Dockerfile
    assert content_tag(make_context("FROM x\n", LOCK, pem), "sha256:1") != base_tag  # a CA bundle
    assert content_tag(make_context("FROM x\n", b"other"), "sha256:1") != base_tag  # a lock
    assert base_tag.startswith("content-") and len(base_tag) == len("content-") + 16


def test_wheels_ride_in_the_context_by_their_hash(tmp_path):
    """Verified wheels go under build-only/wheels/ (the build-only layer); the content tag
    follows each wheel's sha256, and the same files give the same tar."""
    from niriss_pipe.core import grammar
    from niriss_pipe.render import dockerfile
    from niriss_pipe.render.context import DiskFile

    assert grammar.wheel_filename(dockerfile.UV_WHEEL)["name"] == "uv"
    assert grammar.full(grammar.SHA256_HEX, dockerfile.UV_SHA256)
    wheel = tmp_path / "a-1-py3-none-any.whl"
    wheel.write_bytes(b"zip")
    one = make_context("FROM x\n", LOCK, wheels={wheel.name: DiskFile(wheel, "1" * 64, "sha256")})
    other = make_context("FROM x\n", LOCK, wheels={wheel.name: DiskFile(wheel, "2" * 64,
                                                                        "sha256")})
    with tarfile.open(fileobj=io.BytesIO(one.tar())) as tar:
        assert tar.extractfile("build-only/wheels/a-1-py3-none-any.whl").read() == b"zip"
    assert content_tag(one, "sha256:1") != content_tag(other, "sha256:1")
    assert content_tag(one, "sha256:1") != content_tag(make_context("FROM x\n", LOCK), "sha256:1")


def test_the_build_steps_settings_name_the_ca_bundle_only_in_the_build_folder(tmp_path):
    """build.env, sourced by each RUN: HOME and, with a CA bundle, every client's CA variable,
    all in the build folder (never an ARG or ENV: no history line names them)."""
    from niriss_pipe.render.dockerfile import CA_ENV_IN_BUILD
    from niriss_pipe.runtime.contract import BUILD_DIR

    pem = tmp_path / "ca.pem"
    pem.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    with_ca = make_context("FROM x\n", LOCK, pem)
    env = with_ca.files["build-only/build.env"].decode().splitlines()
    assert env[1:] == [f"HOME={BUILD_DIR}/home"] + [
        f"{var}={BUILD_DIR}/ca-bundle.crt" for var in CA_ENV_IN_BUILD]
    assert with_ca.files["build-only/ca-bundle.crt"] == pem.read_bytes()
    plain = make_context("FROM x\n", LOCK)
    assert plain.files["build-only/build.env"].decode().splitlines()[1:] == [
        f"HOME={BUILD_DIR}/home"]
    assert not [name for name in plain.files if name.endswith(".crt")]


def test_os_packages_ride_in_their_own_folder_with_their_sums(tmp_path):
    """Verified .deb files go under os-packages/debs/ (the os-packages stage's build-only
    layer) with a SHA256SUMS sha256sum -c checks inside the build; with none, the sums file
    is empty (the stage then installs nothing) and the content tag follows each file."""
    import hashlib

    from niriss_pipe.render.context import DiskFile

    deb = tmp_path / "python3_3.11.2-1+b1_amd64.deb"
    deb.write_bytes(b"!<arch>\n")
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    other = tmp_path / "libc6_2.36-9_amd64.deb"
    other.write_bytes(b"libc")
    files = {deb.name: DiskFile(deb, digest, "sha256"),
             other.name: DiskFile(other, hashlib.sha256(b"libc").hexdigest(), "sha256")}
    one = make_context("FROM x\n", LOCK, debs=files)
    sums = one.files["os-packages/debs/SHA256SUMS"].decode()
    assert sums == (f"{files[other.name].sha1}  {other.name}\n"
                    f"{digest}  {deb.name}\n")  # sorted, sha256sum's own format
    with tarfile.open(fileobj=io.BytesIO(one.tar())) as tar:
        assert tar.extractfile(f"os-packages/debs/{deb.name}").read() == b"!<arch>\n"
    empty = make_context("FROM x\n", LOCK)
    assert empty.files["os-packages/debs/SHA256SUMS"] == b""
    assert content_tag(one, "sha256:1") != content_tag(empty, "sha256:1")
    changed = make_context("FROM x\n", LOCK, debs={**files, deb.name: DiskFile(deb, "0" * 64,
                                                                             "sha256")})
    assert content_tag(changed, "sha256:1") != content_tag(one, "sha256:1")
