"""Render layer: spec in, Dockerfile text out. Pure and deterministic.

Like spack's container writers, the spec is first turned into a flat *writer
context* (a dict the tests can check field by field), then fed to
``Dockerfile.j2``. Nothing here touches the engine, the network or the clock:
values only known at build time (creation date, revision, base digest) are
``ARG``s filled by the engine layer.
"""

from __future__ import annotations

import functools
import shlex

import jinja2

from niriss_pipe import __version__
from niriss_pipe.core import templates
from niriss_pipe.spec.load import ImageSpec

TEMPLATE = "Dockerfile.j2"  # niriss_pipe/templates/ (the top-level Dockerfile.j2 links to it)
ENV_PREFIX = "/opt/env"
CRDS_PATH = "/crds"
SERVERLESS_URL = "https://jwst-serverless-mode.stsci.edu"
IMAGE_USER, IMAGE_UID = "jwst", 1000
MICROMAMBA_VERSION = "2.0.5-0"
CA_BUNDLE_NAME = "ca-bundle.crt"
LOCK_NAME = "requirements.lock"
LOCK_IN_IMAGE = "/opt/niriss-pipe/requirements.lock"
CA_IN_IMAGE = "/etc/niriss-pipe/build-ca.crt"
LABEL_NS = "io.niriss-pipe"
# Every client a build step runs reads its CA bundle from one of these (pip, requests, OpenSSL,
# curl, git, micromamba).
CA_ENV_IN_BUILD = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE",
                   "GIT_SSL_CAINFO", "MAMBA_SSL_VERIFY")


def pmap_tag(spec: ImageSpec) -> str:
    """The short, user-facing tag: the pmap stem (``jwst_1584``)."""
    return spec.pmap_stem


def full_tag(spec: ImageSpec) -> str:
    """The fully qualified tag: pmap, jwst and Python (``jwst_1584-jwst3.0.0-py3.11``)."""
    jwst = "".join(c if c.isalnum() or c in "._" else "-" for c in spec.jwst.label)
    return f"{spec.pmap_stem}-jwst{jwst}-py{spec.python_version}"[:128]


def apt_packages(spec: ImageSpec) -> list[str]:
    """OS packages: the manager's needs, git for git sources, then the spec's own."""
    needed = {"ca-certificates"}
    needed |= {"python3", "python3-venv"} if spec.manager == "venv" else {"bzip2", "curl"}
    if spec.jwst.git:
        needed.add("git")
    return sorted(needed | set(spec.apt_packages))


def labels(spec: ImageSpec, imap: str | None) -> list[tuple[str, str]]:
    """The static label set, sorted; build-time values are added as ARGs by the template."""
    items = {
        "org.opencontainers.image.title": "niriss-pipe",
        "org.opencontainers.image.description":
            f"JWST calibration pipeline (jwst {spec.jwst.label}) for NIRISS, "
            f"offline with CRDS context {spec.context}",
        "org.opencontainers.image.version": full_tag(spec),
        "org.opencontainers.image.base.name": spec.base.reference,
        f"{LABEL_NS}.crds.context": spec.context,
        f"{LABEL_NS}.crds.references": spec.references,
        f"{LABEL_NS}.crds.scope": spec.scope,
        f"{LABEL_NS}.python.version": spec.python_version,
        f"{LABEL_NS}.python.manager": spec.manager,
        f"{LABEL_NS}.base.suite": spec.base.suite,
        f"{LABEL_NS}.spec": spec.path.name,
        f"{LABEL_NS}.tool.version": __version__,
    }
    if imap:
        items[f"{LABEL_NS}.crds.niriss-imap"] = imap
    items[f"{LABEL_NS}.lock.file"] = f"locks/{spec.path.stem}.txt"
    if spec.jwst.version:
        items[f"{LABEL_NS}.jwst.version"] = spec.jwst.version
    else:
        items[f"{LABEL_NS}.jwst.git"] = spec.jwst.git
        items[f"{LABEL_NS}.jwst.ref"] = spec.jwst.ref
    if spec.base.debootstrap:
        items[f"{LABEL_NS}.base.mirror"] = spec.base.mirror
        items[f"{LABEL_NS}.base.variant"] = spec.base.variant
    return sorted(items.items())


def writer_context(spec: ImageSpec, *, imap: str | None = None,
                   ca_bundle: bool = False) -> dict:
    """Everything the template needs, as plain values."""
    return {
        "tool_version": __version__,
        "spec_file": spec.path.name,
        "repository": spec.name,
        "tags": {"pmap": pmap_tag(spec), "full": full_tag(spec)},
        "base": {"reference": spec.base.reference},
        "apt_packages": apt_packages(spec),
        "ca_bundle": CA_BUNDLE_NAME if ca_bundle else None,
        "manager": spec.manager,
        "python_version": spec.python_version,
        "micromamba_version": MICROMAMBA_VERSION,
        "env_prefix": ENV_PREFIX,
        "ca_in_image": CA_IN_IMAGE,
        "ca_env": CA_ENV_IN_BUILD,
        "lock_file": LOCK_NAME,
        "lock_in_image": LOCK_IN_IMAGE,
        "crds_path": CRDS_PATH,
        "crds_server_url": SERVERLESS_URL,
        "context": spec.context,
        "user": IMAGE_USER,
        "uid": IMAGE_UID,
        "labels": labels(spec, imap),
        "label_ns": LABEL_NS,
        "baked": spec.references == "bake",
        "scope": spec.scope,
    }


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    env = templates.environment(trim=True)
    env.filters["shquote"] = shlex.quote
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


def render(spec: ImageSpec, *, imap: str | None = None, ca_bundle: bool = False) -> str:
    """The Dockerfile for ``spec``; the same inputs always give the same text."""
    return _template().render(writer_context(spec, imap=imap, ca_bundle=ca_bundle))


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
