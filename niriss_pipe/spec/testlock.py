"""The test lock: the test-only dependencies of an image's packages, hash-locked beside the
spec's lock (``images/locks/<spec>.test.txt``).

``verify --upstream`` runs the unit tests that jwst, stcal, stdatamodels and stpipe ship. Their
``test`` extras (pytest, ci-watson, pysiaf, requests-mock, ...) are resolved as of the same day
as the image's lock, with every pin of that lock as a constraint, so the tests run against
exactly the image's environment; only the packages the image lacks are kept, and they are
installed into a derived test image, never into the image. The header records the inputs
(the lock's digest among them) and the body's sha256, checked like the lock's.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.core.atomic import write_text
from niriss_pipe.core.errors import SpecError, UserError, prog
from niriss_pipe.runtime.contract import canonical_name, lock_pins
from niriss_pipe.spec import lock as locking
from niriss_pipe.spec.model import ImageSpec

TESTED = ("jwst", "stcal", "stdatamodels", "stpipe")  # whose test extras are locked
RUNNER = ("pytest-xdist",)  # the runner's own: the tests use every core
SEEDED = frozenset({"pip", "setuptools", "wheel"})  # the environment's own, never replaced
HEADER = "# niriss-pipe test lock"
PIN_START = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)(?:\[[^\]]*\])?==", re.MULTILINE)


@dataclass(frozen=True)
class LockedTestInputs:
    """What decides a test lock's content; recorded in its header to detect staleness."""

    requirements: tuple[str, ...]
    python: str
    platform: str
    exclude_newer: str
    runtime_lock: str  # sha256:... of the image's lock file (its io.niriss-pipe.lock.digest)

    def as_json(self) -> str:
        return json.dumps({"requirements": list(self.requirements), "python": self.python,
                           "platform": self.platform, "exclude_newer": self.exclude_newer,
                           "runtime_lock": self.runtime_lock}, sort_keys=True)


def path_for(spec: ImageSpec) -> Path:
    """``images/locks/<spec name>.test.txt``, beside the spec's lock."""
    return locking.lock_path(spec).with_suffix(".test.txt")


def requirements_for(spec: ImageSpec, lock_text: str) -> tuple[str, ...]:
    """``name[test]==version`` for each tested package the lock pins (a git jwst as its
    locked commit), then the runner's own."""
    pins = lock_pins(lock_text)
    found = []
    for name in TESTED:
        if name == "jwst" and spec.jwst.git:
            data = json.loads(locking.recorded_inputs(lock_text) or "{}")
            commit = (data.get("git") or {}).get("commit") or spec.jwst.ref
            url = spec.jwst.git if spec.jwst.git.startswith("git+") else f"git+{spec.jwst.git}"
            found.append(f"jwst[test] @ {url}@{commit}")
        elif name in pins:
            found.append(f"{name}[test]=={pins[name]}")
    return (*found, *RUNNER)


def inputs_for(spec: ImageSpec) -> LockedTestInputs:
    """The inputs from the spec's (checked) lock: its day, Python, platform and digest."""
    path = locking.check(spec)
    text = path.read_text()
    recorded = json.loads(locking.recorded_inputs(text))
    return LockedTestInputs(requirements_for(spec, text), recorded["python"],
                          recorded["platform"], recorded["exclude_newer"], locking.digest(path))


def recorded(path: Path) -> dict:
    """The inputs a test lock records ({} when it records none)."""
    found = locking.recorded_inputs(path.read_text())
    try:
        return json.loads(found) if found else {}
    except ValueError:
        return {}


def check(spec: ImageSpec) -> Path:
    """The spec's test lock, or a SpecError saying it is missing, made for other inputs (a
    new lock among them) or edited by hand since it was resolved."""
    path = path_for(spec)
    fix = f"run: {prog()} lock {spec.path} (it writes the lock and its test lock)"
    if not path.is_file():
        raise SpecError(str(spec.path), "", f"has no test lock ({path}); the derived test image "
                        "installs only hash-locked test dependencies.", fix)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(spec.path), "", f"its test lock {path} cannot be read ({exc}).",
                        fix) from None
    want = inputs_for(spec)
    found = locking.recorded_inputs(text)
    if found != want.as_json():
        raise SpecError(str(spec.path), "", f"its test lock {path} was made for other inputs "
                        f"(recorded {found or 'nothing'}, now {want.as_json()}); it is stale.",
                        f"{fix}, then commit both.")
    _, body, digest = locking.split_lock(text)
    if digest is None or digest != locking.body_digest(body):
        raise SpecError(str(spec.path), "", f"its test lock {path} was changed after it was "
                        "resolved: its body no longer matches the digest in its header.",
                        f"{fix} (re-resolves the same inputs), then review and commit it.")
    return path


def make_test_lock(spec: ImageSpec, *, upgrade: bool = False) -> tuple[Path, bool]:
    """Resolve and write the spec's test lock (after its lock); return (path, written). An
    up-to-date test lock is kept unless ``upgrade``."""
    path = path_for(spec)
    want = inputs_for(spec)
    if path.is_file() and not upgrade:
        try:
            check(spec)
            return path, False
        except SpecError:
            pass  # stale or edited: resolve again
    runtime = lock_pins(locking.check(spec).read_text())
    body = absent_from(_compile(want, runtime), runtime)
    pins = lock_pins(body)
    header = (f"{HEADER}: do not edit; `python build.py lock SPEC` re-resolves it with the "
              "lock.\n"
              f"# {len(pins)} test-only packages for {', '.join(want.requirements)}, resolved "
              f"as of {want.exclude_newer} for Python {want.python} on {want.platform} with "
              "the lock's pins as constraints, with hashes.\n"
              f"# inputs: {want.as_json()}\n"
              f"# body: sha256:{locking.body_digest(body)}\n")
    write_text(path, header + body)
    return path, True


def absent_from(resolved: str, runtime: dict[str, str]) -> str:
    """The requirement blocks of ``resolved`` (uv's output) that the image does not have."""
    blocks, current = [], []
    for line in resolved.splitlines(keepends=True):
        if line.strip() and not line[0].isspace():
            current = [line]
            blocks.append(current)
        elif current:
            current.append(line)
    kept = []
    for block in blocks:
        match = PIN_START.match(block[0])
        name = canonical_name(match.group(1)) if match else None
        if name and name not in runtime and name not in SEEDED:
            kept.append("".join(block))
    return "".join(kept)


def _compile(want: LockedTestInputs, runtime: dict[str, str]) -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        raise UserError("locking needs uv, which is not installed.",
                        "pip install uv (it is a dependency of niriss-pipe).") from None
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="constraints-") as constraints:
        constraints.write("".join(f"{name}=={version}\n"
                                  for name, version in sorted(runtime.items())))
        constraints.flush()
        cmd = [find_uv_bin(), "pip", "compile", "-", "--constraint", constraints.name,
               "--python-version", want.python, "--python-platform", want.platform,
               "--exclude-newer", want.exclude_newer, "--generate-hashes", "--no-header",
               "--quiet", "--no-annotate"]
        proc = subprocess.run(cmd, input="\n".join(want.requirements) + "\n",
                              capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(f"    {line}" for line in proc.stderr.strip().splitlines()[-15:])
        raise UserError(f"resolving the test dependencies {', '.join(want.requirements)} with "
                        f"the lock's pins as constraints, as of {want.exclude_newer}, failed.",
                        "read the resolver's message below: a test extra that needs another "
                        f"version of a locked package cannot be installed beside it.\n{tail}")
    return proc.stdout
