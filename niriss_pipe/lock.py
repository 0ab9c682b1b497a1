"""Hash-locked Python environments, resolved as of the jwst release's date.

Pinning jwst is not enough: old releases break with newer numpy, astropy or gwcs,
and crds has only a lower bound. ``uv pip compile --exclude-newer`` resolves the
whole dependency set as the package index stood the day after the release, with
hashes, for the image's Python and glibc; builds then install exactly that with
``pip --require-hashes --no-deps`` and never run a resolver.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from . import catalog
from .errors import SpecError, UserError
from .spec import ImageSpec

# The newest manylinux tag each Debian suite's glibc satisfies (2.31, 2.36, 2.41).
SUITE_PLATFORM = {"bullseye": "x86_64-manylinux_2_31", "bookworm": "x86_64-manylinux_2_36",
                  "trixie": "x86_64-manylinux_2_40"}
HEADER = "# niriss-pipe lock"
PYPI_SIMPLE = os.environ.get("UV_INDEX_URL", "https://pypi.org/simple").rstrip("/")
INPUTS_RE = re.compile(r"^# inputs: (\{.*\})$", re.MULTILINE)


@dataclass(frozen=True)
class LockInputs:
    """Everything that decides a lock's content; recorded in the lock to detect staleness."""

    requirements: tuple[str, ...]
    python: str
    platform: str
    exclude_newer: str  # YYYY-MM-DD: nothing uploaded on or after this day

    def as_json(self) -> str:
        return json.dumps({"requirements": list(self.requirements), "python": self.python,
                           "platform": self.platform, "exclude_newer": self.exclude_newer},
                          sort_keys=True)


def lock_path(spec: ImageSpec) -> Path:
    """``images/locks/<spec name>.txt``, beside the spec."""
    return spec.path.parent / "locks" / f"{spec.path.stem}.txt"


def cutoff(spec: ImageSpec) -> str:
    """The day after jwst became installable: the index as users of that release saw it.

    That is the later of the release (tag) date in the catalog and the day the version
    reached PyPI, which can trail the tag by weeks (3.0.0: tagged 2026-06-23, uploaded
    2026-07-14, needing an stcal uploaded in between)."""
    release = catalog.release(spec.jwst.version or spec.jwst.ref or "")
    if release is None:
        raise SpecError(str(spec.path), "jwst", f"jwst {spec.jwst.label} is not in the release "
                        "catalog, so the date to resolve its dependencies at is unknown.",
                        "use a catalogued release, or lock it with an explicit date: "
                        "python build.py lock SPEC --exclude-newer YYYY-MM-DD.")
    day = dt.date.fromisoformat(release.released)
    if spec.jwst.version:
        day = max(day, pypi_upload_date("jwst", spec.jwst.version) or day)
    return (day + dt.timedelta(days=1)).isoformat()


def release_files(name: str, version: str, index: str = PYPI_SIMPLE) -> list[dict] | None:
    """The index's files of ``name==version`` from its JSON simple API (PEP 691 and 700, what
    uv reads for --exclude-newer); None when the index cannot be asked."""
    request = urllib.request.Request(f"{index}/{name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            files = json.load(response).get("files", [])
    except (OSError, ValueError):
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


def inputs(spec: ImageSpec, exclude_newer: str | None = None) -> LockInputs:
    python = ".".join(spec.python_version.split(".")[:2])
    platform = SUITE_PLATFORM.get(spec.base.suite, "x86_64-manylinux_2_28")
    return LockInputs((spec.jwst.requirement, *spec.pip_packages), python, platform,
                      exclude_newer or cutoff(spec))


def recorded_inputs(text: str) -> str | None:
    match = INPUTS_RE.search(text)
    return match.group(1) if match else None


def check(spec: ImageSpec) -> Path:
    """The spec's lock, or a SpecError saying it is missing or made for other inputs."""
    path = lock_path(spec)
    fix = f"run: python build.py lock {spec.path}"
    if not path.is_file():
        raise SpecError(str(spec.path), "", f"has no lock file ({path}); builds install "
                        "only from a hash-locked environment.", fix)
    recorded = recorded_inputs(path.read_text())
    try:
        current = inputs(spec, json.loads(recorded)["exclude_newer"] if recorded else None)
    except (ValueError, KeyError):
        current = None
    if recorded is None or current is None or recorded != current.as_json():
        raise SpecError(str(spec.path), "", f"its lock {path} was made for other inputs "
                        f"(recorded {recorded or 'nothing'}); it is stale.",
                        f"{fix} (re-resolves as of the release date), then commit the lock.")
    return path


def digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def make_lock(spec: ImageSpec, *, upgrade: bool = False, exclude_newer: str | None = None,
              reporter=None) -> tuple[Path, bool]:
    """Resolve and write the spec's lock; return (path, whether it was written)."""
    path = lock_path(spec)
    want = inputs(spec, exclude_newer)
    if path.is_file() and not upgrade and recorded_inputs(path.read_text()) == want.as_json():
        return path, False
    body = _compile(want)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No spec name in the text: the same inputs give the same bytes, so specs that differ
    # only in name or pmap share the image's environment layers.
    header = (f"{HEADER}: do not edit; `python build.py lock SPEC --upgrade` re-resolves.\n"
              f"# {len(_pins(body))} packages resolved as of {want.exclude_newer} for Python "
              f"{want.python} on {want.platform}, with hashes.\n"
              f"# inputs: {want.as_json()}\n")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + body)
    os.replace(tmp, path)
    return path, True


def _pins(body: str) -> list[str]:
    return re.findall(r"^([A-Za-z0-9_.\-\[\]]+==\S+)", body, re.MULTILINE)


def pinned(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a lock file."""
    pins = {}
    for pin in _pins(path.read_text()):
        name, version = pin.split("==", 1)
        pins[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version
    return pins


def _compile(want: LockInputs) -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        raise UserError("locking needs uv, which is not installed.",
                        "pip install uv (it is a dependency of niriss-pipe).") from None
    cmd = [find_uv_bin(), "pip", "compile", "-", "--python-version", want.python,
           "--python-platform", want.platform, "--exclude-newer", want.exclude_newer,
           "--generate-hashes", "--no-header", "--quiet", "--no-annotate"]
    proc = subprocess.run(cmd, input="\n".join(want.requirements) + "\n", capture_output=True,
                          text=True)
    if proc.returncode != 0:
        tail = "\n".join(f"    {line}" for line in proc.stderr.strip().splitlines()[-15:])
        raise UserError(f"resolving {', '.join(want.requirements)} for Python {want.python} as "
                        f"of {want.exclude_newer} failed.",
                        "read the resolver's message below; pin a dependency in packages.pip "
                        f"if an old release needs one.\n{tail}")
    return proc.stdout
