"""Release catalog lookups, CA bundle detection and proxy pass-through."""

from __future__ import annotations

import pytest

from niriss_pipe.build.network import find_ca_bundle, proxy_buildargs
from niriss_pipe.core.errors import UserError
from niriss_pipe.spec import catalog

pytestmark = pytest.mark.network


def test_newest_release_is_default_spec_jwst():
    newest = catalog.newest()
    assert newest.tag == "3.0.0" and newest.crds_context == "jwst_1584.pmap"


@pytest.mark.parametrize("tag, python, ok", [
    ("3.0.0", "3.11", True), ("3.0.0", "3.10", False), ("3.0.0", "3.14", True),
    ("3.0.0", "3.15", False), ("1.20.2", "3.13", True), ("1.20.2", "3.14", False),
    ("1.12.5", "3.11.5", True), ("0.14.2", "3.7", True), ("0.14.2", "3.5", False),
    ("0.9.3", "2.7", True),  # no python_requires recorded: nothing to refuse on
])
def test_python_support(tag, python, ok):
    assert catalog.release(tag).supports_python(python) is ok


def test_release_lookup_ignores_v_prefix_and_unknown():
    assert catalog.release("v1.12.5").crds_context == "jwst_1166.pmap"
    assert catalog.release("9.9.9") is None


def test_ca_bundle_option_wins_and_none_disables(tmp_path):
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt"}
    assert find_ca_bundle(str(pem), env) == pem
    assert find_ca_bundle("none", env) is None


def test_ca_bundle_from_environment_in_pip_order(tmp_path):
    a, b = tmp_path / "a.pem", tmp_path / "b.pem"
    a.write_text("a")
    b.write_text("b")
    assert find_ca_bundle(None, {"SSL_CERT_FILE": str(b), "PIP_CERT": str(a)}) == a
    assert find_ca_bundle(None, {"PIP_CERT": str(tmp_path / "gone"), "SSL_CERT_FILE": str(b)}) == b
    assert find_ca_bundle(None, {}) is None


def test_missing_ca_bundle_option_is_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        find_ca_bundle(str(tmp_path / "nope.pem"), {})


def test_proxy_variables_pass_through_both_cases():
    env = {"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost", "HOME": "/root"}
    assert proxy_buildargs(env) == {"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost"}
