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
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.core import grammar
from niriss_pipe.core.atomic import write_text
from niriss_pipe.core.errors import SpecError, UserError, opt, prog, shown
from niriss_pipe.runtime.contract import lock_pins
from niriss_pipe.spec import asof, catalog
from niriss_pipe.spec.gitref import resolve_git_ref
from niriss_pipe.spec.gitsource import fetch_commit
from niriss_pipe.spec.model import ImageSpec
from niriss_pipe.spec.pypi import pypi_upload_date

# The newest manylinux tag each Debian suite's glibc satisfies (2.31, 2.36, 2.41).
SUITE_PLATFORM = {"bullseye": "x86_64-manylinux_2_31", "bookworm": "x86_64-manylinux_2_36",
                  "trixie": "x86_64-manylinux_2_40"}
HEADER = "# niriss-pipe lock"
INPUTS_RE = re.compile(r"^# inputs: (\{.*\})$", re.MULTILINE)
BODY_RE = re.compile(r"^# body: sha256:([0-9a-f]{64})\n", re.MULTILINE)


@dataclass(frozen=True)
class LockInputs:
    """Everything that decides a lock's content; recorded in the lock to detect staleness."""

    requirements: tuple[str, ...]
    python: str
    platform: str
    exclude_newer: str  # YYYY-MM-DD: nothing uploaded on or after this day
    git: dict | None = None  # {"url", "ref", "commit"} of a git source, resolved at lock time

    def as_json(self) -> str:
        data = {"requirements": list(self.requirements), "python": self.python,
                "platform": self.platform, "exclude_newer": self.exclude_newer}
        if self.git:
            data["git"] = self.git
        return json.dumps(data, sort_keys=True)


def lock_path(spec: ImageSpec) -> Path:
    """``images/locks/<spec name>.txt``, beside the spec."""
    return spec.path.parent / "locks" / f"{spec.path.stem}.txt"


def check_day(value: str) -> str:
    """``value`` when it is a day a lock can record (``exclude_newer``): YYYY-MM-DD, whole
    string, ASCII digits, a real date. A relative one ('P3D') cannot be resolved again the
    same, and a build refuses a lock whose day is not one (``stamps.build_epoch``)."""
    if not grammar.is_day(value):
        raise UserError(f"{opt('exclude_newer')} {shown(value)} is not a calendar day written "
                        "YYYY-MM-DD.",
                        "give a day like 2024-06-01 (ASCII digits; no time, time zone or "
                        "relative duration): the lock records it, and a build derives the "
                        "image's times from it.")
    return value


def cutoff(spec: ImageSpec, commit: str | None = None, reporter=None) -> str:
    """The day after jwst became installable: the index as users of that release saw it.

    For a PyPI release that is the later of the release (tag) date in the catalog and the day
    the version reached PyPI, which can trail the tag by weeks (3.0.0: tagged 2026-06-23,
    uploaded 2026-07-14, needing an stcal uploaded in between). For a git source it is the
    commit's date, moved later only as far as the commit's own requirements need."""
    if spec.jwst.git:
        return _git_cutoff(spec, commit or spec.jwst.ref or "", reporter)
    release = catalog.release(spec.jwst.version or spec.jwst.ref or "")
    if release is None:
        raise SpecError(str(spec.path), "jwst", f"jwst {spec.jwst.label} is not in the release "
                        "catalog, so the date to resolve its dependencies at is unknown.",
                        "use a catalogued release, or lock it with an explicit date: "
                        f"{prog()} lock SPEC {opt('exclude_newer')} YYYY-MM-DD.")
    day = dt.date.fromisoformat(release.released)
    if spec.jwst.version:
        day = max(day, pypi_upload_date("jwst", spec.jwst.version) or day)
    return (day + dt.timedelta(days=1)).isoformat()


def _git_cutoff(spec: ImageSpec, commit: str, reporter) -> str:
    facts = fetch_commit(spec.jwst.git, commit, spec.jwst.ref)
    python = ".".join(spec.python_version.split(".")[:2])
    day, moved, unknown = asof.resolve_day(facts.date, facts.requirements, python)
    if reporter:
        what = (f"its {len(facts.requirements)} requirements ({facts.source})"
                if facts.source else "no requirements found (no static pyproject.toml "
                "dependencies or setup.cfg install_requires)")
        reporter.say(f"commit {commit[:12]} is of {facts.date}; {what}; resolving as of {day}"
                     + (", later because of:" if moved else ""))
        for need in moved:
            reporter.say(f"  {need.requirement}: first installable {need.day} ({need.version})")
        if unknown:
            reporter.warn(f"the index had no installable release for: {', '.join(unknown)}; "
                          "they did not move the day.")
    return day


def inputs(spec: ImageSpec, exclude_newer: str | None = None,
           git_commit: str | None = None) -> LockInputs:
    """The lock's inputs. A git source is pinned to ``git_commit`` (resolved from the spec's
    ref at lock time, see ``resolve_git_ref``), so the lock names exactly one commit."""
    python = ".".join(spec.python_version.split(".")[:2])
    platform = SUITE_PLATFORM.get(spec.base.suite, "x86_64-manylinux_2_28")
    git = None
    requirement = spec.jwst.requirement
    if spec.jwst.git:
        commit = git_commit or spec.jwst.ref
        git = {"url": spec.jwst.git, "ref": spec.jwst.ref, "commit": commit}
        url = spec.jwst.git if spec.jwst.git.startswith("git+") else f"git+{spec.jwst.git}"
        requirement = f"jwst @ {url}@{commit}"
    return LockInputs((requirement, *spec.pip_packages), python, platform,
                      exclude_newer or cutoff(spec), git)


def recorded_inputs(text: str) -> str | None:
    match = INPUTS_RE.search(text)
    return match.group(1) if match else None


def split_lock(text: str) -> tuple[str, str, str | None]:
    """(header, body, recorded sha256 of the body): the header ends with its ``# body:``
    line; everything after it is what uv resolved."""
    match = BODY_RE.search(text)
    if match is None:
        return text, "", None
    return text[:match.end()], text[match.end():], match.group(1)


def body_digest(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def check(spec: ImageSpec) -> Path:
    """The spec's lock, or a SpecError saying it is missing, made for other inputs, or edited
    by hand since it was resolved."""
    path = lock_path(spec)
    fix = f"run: {prog()} lock {spec.path}"
    if not path.is_file():
        raise SpecError(str(spec.path), "", f"has no lock file ({path}); builds install "
                        "only from a hash-locked environment.", fix)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(str(spec.path), "", f"its lock {path} cannot be read ({exc}).",
                        f"{fix} (writes it anew).") from None
    recorded = recorded_inputs(text)
    try:
        data = json.loads(recorded) if recorded else {}
        current = inputs(spec, data.get("exclude_newer"),
                         (data.get("git") or {}).get("commit")) if recorded else None
    except (ValueError, KeyError, AttributeError):
        current = None
    if recorded is None or current is None or recorded != current.as_json():
        raise SpecError(str(spec.path), "", f"its lock {path} was made for other inputs "
                        f"(recorded {recorded or 'nothing'}); it is stale.",
                        f"{fix} (re-resolves as of the release date), then commit the lock.")
    _, body, recorded_digest = split_lock(text)
    if recorded_digest is None or recorded_digest != body_digest(body):
        what = ("records no digest of its body" if recorded_digest is None else
                "was changed after it was resolved: its body no longer matches the digest "
                "in its header (a version, hash or package edited by hand?)")
        raise SpecError(str(spec.path), "", f"its lock {path} {what}; a build installs only "
                        "a lock exactly as resolved.",
                        f"{fix} (re-resolves the same inputs and rewrites the body and its "
                        "digest), then review and commit the lock.")
    return path


def locked_commit(spec: ImageSpec) -> str | None:
    """The commit a git source's lock pins (None for a PyPI release or no lock)."""
    return (_recorded(spec).get("git") or {}).get("commit")


def git_requirement(text: str) -> str | None:
    """``jwst @ git+URL@COMMIT`` of a lock's text (None for a PyPI release): installed by
    itself, without dependencies, after the hashed rest (pip cannot hash a VCS requirement)."""
    try:
        recorded = recorded_inputs(text)
        git = (json.loads(recorded).get("git") or {}) if recorded else {}
    except (ValueError, AttributeError):
        return None
    if not git.get("commit"):
        return None
    url = git["url"] if git["url"].startswith("git+") else f"git+{git['url']}"
    return f"jwst @ {url}@{git['commit']}"


def _recorded(spec: ImageSpec) -> dict:
    try:
        recorded = recorded_inputs(lock_path(spec).read_text())
        data = json.loads(recorded) if recorded else {}
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def make_lock(spec: ImageSpec, *, upgrade: bool = False, exclude_newer: str | None = None,
              reporter=None) -> tuple[Path, bool]:
    """Resolve and write the spec's lock; return (path, whether it was written). An up-to-date
    lock is kept unless ``upgrade``; one whose body was edited is always re-resolved."""
    if exclude_newer is not None:
        check_day(exclude_newer)
    path = lock_path(spec)
    commit = None
    if spec.jwst.git:
        commit, how = resolve_git_ref(spec.jwst.git, spec.jwst.ref)
        before = locked_commit(spec)
        if reporter and before and before != commit and not upgrade:
            reporter.warn(f"{spec.jwst.ref} of {spec.jwst.git} now names {commit[:12]}, but the "
                          f"lock pins {before[:12]} (the tag moved): the lock keeps "
                          f"{before[:12]}; lock --upgrade takes the new commit.")
        if before and not upgrade:
            commit = before  # and its day, unless asked for another
            exclude_newer = exclude_newer or _recorded(spec).get("exclude_newer")
        elif reporter:
            reporter.say(f"{spec.jwst.ref}: {how} of {spec.jwst.git}, commit {commit}")
        exclude_newer = exclude_newer or cutoff(spec, commit, reporter)
    want = inputs(spec, exclude_newer, commit)
    if path.is_file() and not upgrade:
        try:
            check(spec)
            if recorded_inputs(path.read_text()) == want.as_json():
                return path, False
        except SpecError:
            pass  # stale or edited: resolve again
    body = _compile(want)
    git_line = ""
    if want.git:  # the VCS line has no hash: pip --require-hashes would refuse the whole file
        body = "".join(line for line in body.splitlines(True)
                       if not line.startswith("jwst @ "))
        git_line = (f"# jwst @ {want.requirements[0].split(' @ ', 1)[1]}: installed by itself, "
                    "without dependencies (pip cannot hash a git requirement).\n")
    # No spec name in the text: the same inputs give the same bytes, so specs that differ
    # only in name or pmap share the image's environment layers.
    header = (f"{HEADER}: do not edit; `python build.py lock SPEC --upgrade` re-resolves.\n"
              f"# {len(lock_pins(body))} packages resolved as of {want.exclude_newer} for Python "
              f"{want.python} on {want.platform}, with hashes.\n"
              f"{git_line}# inputs: {want.as_json()}\n"
              f"# body: sha256:{body_digest(body)}\n")
    write_text(path, header + body)
    return path, True


def pinned(path: Path) -> dict[str, str]:
    """``{normalised name: version}`` of a lock file (the contract's one parser)."""
    return lock_pins(path.read_text())


def _compile(want: LockInputs) -> str:
    try:
        from uv import find_uv_bin
    except ImportError:
        raise UserError("locking needs uv, which is not installed.",
                        "pip install uv (it is a dependency of niriss-pipe).") from None
    if not grammar.is_day(want.exclude_newer):  # the last check before uv's argv
        raise UserError(f"the day to resolve as of, {shown(want.exclude_newer)}, is not a "
                        "calendar day written YYYY-MM-DD.",
                        f"give {opt('exclude_newer')} YYYY-MM-DD, or lock with "
                        f"{opt('upgrade')} to resolve as of the jwst release's day again.")
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
