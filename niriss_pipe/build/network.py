"""Build-time network settings: proxy variables and a CA bundle for TLS-intercepting proxies.

Corporate, HPC and CI networks often re-sign HTTPS; pip inside the build then
fails with CERTIFICATE_VERIFY_FAILED unless it is given the site's CA bundle.
The bundle is found the way pip and requests find it on the host.
"""

from __future__ import annotations

import os
from pathlib import Path

from niriss_pipe.core.errors import UserError, file_problem, opt, shown_path

CA_ENV_VARS = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")


def find_ca_bundle(option: str | None, environ=os.environ) -> Path | None:
    """The CA bundle to install in the build: ``--ca-bundle`` wins, ``none`` disables,
    otherwise the first of PIP_CERT, REQUESTS_CA_BUNDLE, SSL_CERT_FILE that is a file."""
    if option == "none":
        return None
    if option == "":  # an unset shell variable: not a request to look in the environment
        raise UserError(f"{opt('ca_bundle')} '' is empty.",
                        f"give the path of a PEM CA bundle, {opt('ca_bundle')} none for no "
                        f"bundle, or leave {opt('ca_bundle')} out to use PIP_CERT, "
                        "REQUESTS_CA_BUNDLE or SSL_CERT_FILE.")
    if option is not None:
        path = Path(option)
        problem = file_problem(path)
        if problem:
            what = "no such file" if problem == "does not exist" else problem
            raise UserError(f"{opt('ca_bundle')} {shown_path(option)}: {what}.",
                            f"give the path of a PEM CA bundle, or {opt('ca_bundle')} none.")
        return path
    for var in CA_ENV_VARS:
        value = environ.get(var)
        if value and Path(value).is_file():
            return Path(value)
    return None


def proxy_buildargs(environ=os.environ) -> dict[str, str]:
    """Proxy variables to pass through; the classic builder keeps them out of the history."""
    args = {}
    for var in PROXY_VARS:
        for name in (var, var.lower()):
            if environ.get(name):
                args[name] = environ[name]
    return args
