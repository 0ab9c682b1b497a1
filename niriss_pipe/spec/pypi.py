"""What the package index says of a release: its files, upload date and wheels (PEP 691/700)."""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.error
import urllib.request

PYPI_SIMPLE = os.environ.get("UV_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def project_files(name: str, index: str = PYPI_SIMPLE) -> list[dict] | None:
    """Every file of project ``name`` from the index's JSON simple API (PEP 691 and 700, what
    uv reads for --exclude-newer); [] when the index has no such project; None when the index
    cannot be asked."""
    request = urllib.request.Request(f"{index}/{name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response).get("files", [])
    except urllib.error.HTTPError as err:
        return [] if err.code == 404 else None
    except (OSError, ValueError):
        return None


def release_files(name: str, version: str, index: str = PYPI_SIMPLE) -> list[dict] | None:
    """The index's files of ``name==version``; None when the index cannot be asked."""
    files = project_files(name, index)
    if files is None:
        return None
    prefix = f"{name}-{version}"
    return [f for f in files if f["filename"].startswith((prefix + "-", prefix + "."))]


def pypi_upload_date(name: str, version: str) -> dt.date | None:
    """When ``name==version`` was first uploaded (None when the index cannot be asked)."""
    stamps = [f["upload-time"][:10] for f in release_files(name, version) or []
              if f.get("upload-time")]
    return dt.date.fromisoformat(min(stamps)) if stamps else None


def has_linux_wheel(name: str, version: str, python: str) -> bool | None:
    """Whether ``name==version`` has an x86_64 Linux wheel for CPython ``python`` (3.11);
    without one, pip builds it from source in the image and needs compilers."""
    files = release_files(name, version)
    if files is None:
        return None
    tag = "cp" + python.replace(".", "")
    return any(f["filename"].endswith(".whl") and "x86_64" in f["filename"]
               and "linux" in f["filename"] and (f"-{tag}-" in f["filename"]
                                                 or "-py3-none-" in f["filename"]
                                                 or "-abi3-" in f["filename"])
               for f in files)
