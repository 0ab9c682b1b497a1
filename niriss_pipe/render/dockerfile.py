"""Render layer: spec in, Dockerfile text out. Pure and deterministic.

Like spack's container writers, the spec is first turned into a flat *writer
context* (a dict the tests can check field by field), then fed to
``Dockerfile.j2``. Nothing here touches the engine, the network or the clock:
values only known at build time (creation date, revision, base digest) are
``ARG``s filled by the engine layer.
"""

from __future__ import annotations

import functools

import jinja2

from niriss_pipe import __version__
from niriss_pipe.core import templates
from niriss_pipe.render import names
from niriss_pipe.runtime import contract
from niriss_pipe.spec.model import ImageSpec

TEMPLATE = "Dockerfile.j2"  # niriss_pipe/templates/ (the top-level Dockerfile.j2 links to it)
MICROMAMBA_VERSION = "2.0.5-0"
LOCK_NAME = "requirements.lock"  # names in the build context
# What only the build needs, one folder of the context and one layer of the build, under
# contract.BUILD_DIR in the build and never in the image (build/normalize.py drops that layer).
BUILD_ONLY_NAME = "build-only"
CA_BUNDLE_NAME = "ca-bundle.crt"  # in it: the build host's CA bundle, when one is needed
BUILD_ENV_NAME = "build.env"  # ... the build steps' settings, sourced by each RUN
OVERLAPS_NAME = "overlaps.py"  # ... templates/overlaps.py: files two wheels install, made stable
WHEELS_NAME = "wheels"  # ... the verified wheels the lock names (build/wheels.py)
# The OS packages come the same way, in a build-only layer of their own before the os-packages
# step: this folder of the context, holding DEBS_NAME/ (the verified .deb files, build/debs.py,
# and their SHA256SUMS).
OS_PACKAGES_NAME = "os-packages"
DEBS_NAME = "debs"
# uv installs the lock: this wheel from PyPI, by its sha256, unpacked in the build folder.
UV_VERSION = "0.13.9"
UV_WHEEL = "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
UV_SHA256 = "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19"
# Every client a build step runs reads its CA bundle from one of these (pip, requests, OpenSSL,
# curl, git, micromamba).
CA_ENV_IN_BUILD = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE",
                   "GIT_SSL_CAINFO", "MAMBA_SSL_VERIFY")
# The test image's own build stage (render/testimage.py) keeps its CA bundle here.
CA_IN_IMAGE = "/etc/niriss-pipe/build-ca.crt"


def in_build(name: str) -> str:
    """Where a file of the build-only folder is during the build."""
    return f"{contract.BUILD_DIR}/{name}"


def build_env(ca_bundle: bool) -> bytes:
    """``build.env``: what every build step sources (``set -a``), so that no ARG or ENV, and so
    no line of the image's history, names the build host's CA bundle; HOME in the build folder,
    so that nothing a tool keeps in it reaches the image."""
    lines = [f"HOME={in_build('home')}"]
    if ca_bundle:
        lines += [f"{var}={in_build(CA_BUNDLE_NAME)}" for var in CA_ENV_IN_BUILD]
    return ("# niriss-pipe: the build steps' settings, never in the image\n"
            + "".join(line + "\n" for line in lines)).encode()


def uv_installs_into(python_version: str) -> bool:
    """uv installs into CPython 3.8 and newer; an older one (conda's 3.7) gets pip."""
    major, minor = (int(part) for part in python_version.split(".")[:2])
    return (major, minor) >= (3, 8)


def git_requirement(spec: ImageSpec, commit: str | None) -> str | None:
    """What pip installs of a git source, by itself and without dependencies: the locked
    commit (the spec's ref only where nothing is locked, as in a plain ``render``)."""
    if not spec.jwst.git:
        return None
    url = spec.jwst.git if spec.jwst.git.startswith("git+") else f"git+{spec.jwst.git}"
    return f"jwst @ {url}@{commit or spec.jwst.ref}"


def writer_context(spec: ImageSpec, *, imap: str | None = None, ca_bundle: bool = False,
                   commit: str | None = None, wheelhouse: bool = True) -> dict:
    """Everything the template needs, as plain values (``commit``: a git source's locked
    commit; ``wheelhouse``: every locked package has a wheel for the image, so the build
    installs from the verified wheels in its context, not from the index)."""
    return {
        "tool_version": __version__,
        "spec_file": spec.path.name,
        "repository": spec.name,
        "tags": {"pmap": names.pmap_tag(spec), "full": names.full_tag(spec)},
        "base": {"reference": spec.base.reference},
        "apt_packages": names.apt_packages(spec),
        "os_packages": OS_PACKAGES_NAME,
        "debs": in_build(DEBS_NAME),
        "ca_bundle": CA_BUNDLE_NAME if ca_bundle else None,
        "manager": spec.manager,
        "python_version": spec.python_version,
        "micromamba_version": MICROMAMBA_VERSION,
        "env_prefix": contract.ENV_PREFIX,
        "runtime_prefix": contract.RUNTIME_PREFIX,
        "lock_file": LOCK_NAME,
        "build_only": BUILD_ONLY_NAME,
        "build_dir": contract.BUILD_DIR,
        "build_env": in_build(BUILD_ENV_NAME),
        "wheelhouse": wheelhouse,
        "wheels": in_build(WHEELS_NAME),
        "overlaps": in_build(OVERLAPS_NAME),
        "uv_python": uv_installs_into(spec.python_version),
        "uv": {"version": UV_VERSION, "wheel": UV_WHEEL, "sha256": UV_SHA256,
               "path": in_build(f"uv-{UV_VERSION}.data/scripts/uv")},
        "lock_in_image": contract.LOCK_IN_IMAGE,
        "jwst_git": git_requirement(spec, commit),
        "crds_path": contract.CRDS_PATH,
        "data_path": contract.DATA_PATH,
        "entrypoint": contract.ENTRYPOINT,
        "crds_server_url": contract.SERVERLESS_URL,
        "scope_env": contract.SCOPE_ENV,
        "context": spec.context,
        "user": contract.IMAGE_USER,
        "uid": contract.IMAGE_UID,
        "labels": names.labels(spec, imap, commit),
        "label_ns": contract.LABEL_NS,
        "baked": spec.references == "bake",
        "scope": spec.scope,
    }


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = templates.environment(trim=True)
    env.filters["dockerstring"] = dockerfile_string
    return env.get_template(TEMPLATE)


def dockerfile_string(value: str) -> str:
    """``value`` as one double-quoted Dockerfile word (LABEL, ENV): the builder's lexer takes
    backslash escapes of ``\\``, ``"`` and ``$`` only, and expands ``$NAME`` otherwise. A
    control character would end the instruction's line: values are validated before they get
    here, so one is a bug, not a user error."""
    if any(ord(char) < 0x20 or ord(char) == 0x7f for char in value):
        raise ValueError(f"control character in a Dockerfile string: {value!r}")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def render(spec: ImageSpec, *, imap: str | None = None, ca_bundle: bool = False,
           commit: str | None = None, wheelhouse: bool = True) -> str:
    """The Dockerfile for ``spec``; the same inputs always give the same text."""
    return _template().render(writer_context(spec, imap=imap, ca_bundle=ca_bundle,
                                             commit=commit, wheelhouse=wheelhouse))


def stages(dockerfile: str) -> list[tuple[str, int]]:
    """``[(stage name, number of instructions)]`` in build order, from the stage markers.

    The classic builder numbers every instruction ("Step 7/23"); this lets the
    progress display name the stage a step belongs to.
    """
    result: list[tuple[str, int]] = []
    continued = False
    for line in dockerfile.splitlines():
        text = line.strip()
        if text.startswith("# == stage:"):
            result.append((text.removeprefix("# == stage:").strip(" ="), 0))
        elif text and not text.startswith("#") and not continued and result:
            name, count = result[-1]
            result[-1] = (name, count + 1)
        if not text.startswith("#"):
            continued = text.endswith("\\")
    return result


def stage_ends(dockerfile: str) -> dict[str, int]:
    """``{stage alias: its last step number}`` for ``FROM ... AS alias`` stages: the classic
    builder numbers every instruction of every stage in one sequence."""
    ends: dict[str, int] = {}
    step, current, continued = 0, None, False
    for line in dockerfile.splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not continued:
            step += 1
            words = text.split()
            if words[0].upper() == "FROM":
                current = words[3] if len(words) >= 4 and words[2].upper() == "AS" else None
            if current:
                ends[current] = step
        continued = text.endswith("\\")
    return ends
