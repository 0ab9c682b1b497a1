"""Provenance: what an image holds, how it was built, and whether it still matches.

- ``inspect``: the image's labels plus one offline run of a small probe script inside it
  (installed packages, jwst/crds/Python versions, the lock it was installed from);
- ``verify``: the installed environment against the image's own lock, that lock against its
  ``lock.digest`` label, baked references against their manifest label, and the self-test;
- build records: one JSON file per successful build under ``build/records/`` (or
  ``$NIRISS_PIPE_RECORDS``), written atomically, to archive with results.

The comparison functions (``lock_pins``, ``compare_environment``, ``manifest_digest``,
``compare_manifests``) are pure; only ``run_probe`` and the record writer touch the engine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from niriss_pipe import __version__
from niriss_pipe.core.errors import EngineError, UserError, VerificationError
from niriss_pipe.core.progress import human_bytes
from niriss_pipe.render.dockerfile import CRDS_PATH, ENV_PREFIX, LABEL_NS, LOCK_IN_IMAGE

# Installed by ``python -m venv`` (and conda's pip), not by the lock: never "extra".
SEEDED = frozenset({"pip", "setuptools", "wheel"})
RECORDS_ENV = "NIRISS_PIPE_RECORDS"
RECORD_VERSION = 1
PROBE_MARK = "NIRISS-PIPE-PROBE "
DATED_RE = re.compile(r"\.\d{8}T\d{6}Z(?:-\d+)?$")  # a record's timestamp suffix
_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*(?:\[[^\]]*\])?)==([^\s;\\]+)", re.MULTILINE)


# -- pure comparisons ------------------------------------------------------------------------
def canonical_name(name: str) -> str:
    """PEP 503 normalisation: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name.split("[", 1)[0].strip()).lower()


def lock_pins(text: str) -> dict[str, str]:
    """``{canonical name: version}`` of a hash-locked requirements file's ``name==version``
    lines (hash continuation lines and comments are ignored)."""
    return {canonical_name(name): version for name, version in _PIN_RE.findall(text)}


def same_version(a: str, b: str) -> bool:
    """Equal as versions (``1.0`` == ``1.0.0``), else as text."""
    if a == b:
        return True
    try:
        from packaging.version import InvalidVersion, Version
    except ImportError:  # pragma: no cover - packaging comes with pip's vendored world
        return False
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return False


@dataclass
class EnvDiff:
    """How an installed environment differs from its lock."""

    missing: dict[str, str] = field(default_factory=dict)  # name -> locked version
    extra: dict[str, str] = field(default_factory=dict)  # name -> installed version
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (lock, inst)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def problems(self) -> list[str]:
        """One phrase per difference, by package name."""
        return ([f"{n} missing (locked {v})" for n, v in sorted(self.missing.items())]
                + [f"{n} {i} installed, locked {lk}" for n, (lk, i) in sorted(self.changed.items())]
                + [f"{n} {v} installed but not in the lock" for n, v in sorted(self.extra.items())])


def compare_environment(locked: dict[str, str], installed: dict[str, str],
                        ignore: frozenset[str] = SEEDED) -> EnvDiff:
    """Compare ``{name: version}`` maps (any spelling of names); ``ignore`` names are never
    counted as extra (they may still be locked, and are then compared)."""
    lock = {canonical_name(k): v for k, v in locked.items()}
    have = {canonical_name(k): v for k, v in installed.items()}
    diff = EnvDiff()
    for name, version in lock.items():
        if name not in have:
            diff.missing[name] = version
        elif not same_version(version, have[name]):
            diff.changed[name] = (version, have[name])
    for name, version in have.items():
        if name not in lock and name not in ignore:
            diff.extra[name] = version
    return diff


def manifest_digest(sha1s: dict[str, str]) -> str:
    """The ``crds.baked.manifest`` label value for ``{path relative to /crds: sha1}``:
    sha256 over ``crds/<path> <sha1>\\n`` lines sorted by that path, as ``bake_cache`` makes it
    (files under ``config/`` are not part of it)."""
    lines = "".join(f"crds/{path} {sha1}\n" for path, sha1 in
                    sorted(sha1s.items(), key=lambda item: f"crds/{item[0]}")
                    if not path.startswith("config/"))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


@dataclass
class ManifestDiff:
    """Two ``{path: content id}`` manifests compared."""

    only_first: list[str]
    only_second: list[str]
    differing: list[str]
    total: int  # paths in either

    @property
    def count(self) -> int:
        return len(self.only_first) + len(self.only_second) + len(self.differing)

    @property
    def ok(self) -> bool:
        return self.count == 0

    def paths(self, limit: int = 20) -> list[str]:
        """The first ``limit`` differing paths, each marked with how it differs."""
        marked = sorted([(p, "differs") for p in self.differing]
                        + [(p, "only in build 1") for p in self.only_first]
                        + [(p, "only in build 2") for p in self.only_second])
        return [f"{path} ({how})" for path, how in marked[:limit]]


def compare_manifests(first: dict[str, str], second: dict[str, str]) -> ManifestDiff:
    return ManifestDiff(
        only_first=sorted(set(first) - set(second)),
        only_second=sorted(set(second) - set(first)),
        differing=sorted(p for p in set(first) & set(second) if first[p] != second[p]),
        total=len(set(first) | set(second)))


def shorten(items: list[str], limit: int = 8) -> str:
    """``a, b, c and 12 more``."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# -- the probe: one offline run inside the image -----------------------------------------------
# Runs with the image's own Python (3.7 and newer, nothing but the standard library), so it
# must not import niriss_pipe. Its only argument is a JSON object of what to collect.
PROBE = r'''
import hashlib, json, os, re, sys

opts = json.loads(sys.argv[1])


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions():
    try:
        from importlib import metadata
    except ImportError:
        try:
            import importlib_metadata as metadata
        except ImportError:
            metadata = None
    found = {}
    if metadata is not None:
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if not name or canonical(name) in found:
                continue  # the first on sys.path is the one imported
            direct = None
            try:
                text = dist.read_text("direct_url.json")
                direct = json.loads(text) if text else None
            except (OSError, ValueError):
                pass
            found[canonical(name)] = {"version": dist.version, "direct_url": direct}
    else:
        import pkg_resources
        for dist in pkg_resources.working_set:
            found.setdefault(canonical(dist.project_name), {"version": dist.version,
                                                            "direct_url": None})
    return found


def hash_file(path, algorithm):
    h = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def crds_manifest(root):
    sha1s, count, size = {}, 0, 0
    for dirpath, dirnames, filenames in os.walk(root):
        if os.path.samefile(dirpath, root):
            dirnames[:] = [d for d in dirnames if d != "config"]
        for name in filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            sha1s[rel] = hash_file(path, "sha1")
            if rel.startswith("references" + os.sep):
                count += 1
                size += os.path.getsize(path)
    lines = "".join("crds/%s %s\n" % (rel, sha1s[rel])
                    for rel in sorted(sha1s, key=lambda r: "crds/" + r))
    return {"files": len(sha1s), "count": count, "bytes": size,
            "manifest": "sha256:" + hashlib.sha256(lines.encode()).hexdigest()}


def env_manifest(root):
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        keep = []
        for name in sorted(dirnames):
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                entries[os.path.relpath(path, root)] = "link:" + os.readlink(path)
            elif name != "__pycache__":
                keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            if name.endswith(".pyc"):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                entries[rel] = "link:" + os.readlink(path)
            elif os.path.isfile(path):
                try:
                    entries[rel] = "sha256:" + hash_file(path, "sha256")
                except OSError as exc:
                    entries[rel] = "unreadable:" + type(exc).__name__
    return entries


out = {"python": sys.version.split()[0], "prefix": sys.prefix, "packages": distributions()}
for name in ("jwst", "crds"):
    info = out["packages"].get(name)
    out[name] = info["version"] if info else None
jwst = out["packages"].get("jwst") or {}
vcs = (jwst.get("direct_url") or {}).get("vcs_info") or {}
out["jwst_commit"] = vcs.get("commit_id")
out["jwst_url"] = (jwst.get("direct_url") or {}).get("url")
lock = opts.get("lock")
if lock and os.path.isfile(lock):
    with open(lock, "rb") as stream:
        data = stream.read()
    out["lock"] = {"sha256": "sha256:" + hashlib.sha256(data).hexdigest(),
                   "text": data.decode("utf-8", "replace")}
else:
    out["lock"] = None
if opts.get("crds"):
    out["crds_manifest"] = crds_manifest(opts["crds"]) if os.path.isdir(opts["crds"]) else None
if opts.get("env"):
    out["env_manifest"] = env_manifest(opts["env"])
sys.stdout.write("NIRISS-PIPE-PROBE " + json.dumps(out, sort_keys=True) + "\n")
'''


def run_probe(engine, image: str, *, crds: bool = False, env: bool = False) -> dict:
    """Run the probe in one ``--network none`` container of ``image``; return what it found.

    Uses ``Engine.run_split`` (not ``Engine.run``) to keep the probe's stdout, which can be
    megabytes with ``env``, apart from stderr and out of the verbose log.
    """
    opts = {"lock": LOCK_IN_IMAGE, "crds": CRDS_PATH if crds else None,
            "env": ENV_PREFIX if env else None}
    code, stdout, stderr = engine.run_split(image, ["python", "-c", PROBE, json.dumps(opts)])
    line = next((text for text in reversed(stdout.splitlines()) if text.startswith(PROBE_MARK)),
                None)
    if code != 0 or line is None:
        tail = "\n".join(f"    {t}" for t in (stderr or stdout).strip().splitlines()[-15:])
        raise EngineError(f"the provenance probe failed in {image} (exit {code}).",
                          "the image's Python could not run the standard-library probe; is it "
                          f"a niriss-pipe image?\n{tail}")
    return json.loads(line[len(PROBE_MARK):])


def installed_versions(probe: dict) -> dict[str, str]:
    return {name: info["version"] for name, info in probe["packages"].items()}


# -- inspect ----------------------------------------------------------------------------------
def _label(labels: dict[str, str], key: str) -> str | None:
    value = labels.get(f"{LABEL_NS}.{key}")
    return value or None


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def get_image(engine, reference: str):
    """The image's ImageInfo, or a UserError when it is missing or not ours."""
    image = engine.image_info(reference)
    if image is None:
        raise UserError(f"no image '{reference}' in the local engine.",
                        "build it first (python build.py build SPEC), or give a name from "
                        "'docker images'.")
    if not (image.labels or {}).get(f"{LABEL_NS}.tool.version"):
        raise UserError(f"'{reference}' has no {LABEL_NS}.tool.version label: it was not built "
                        "by niriss-pipe build (a base image, or another image), so there is "
                        "nothing to inspect or verify against.",
                        "give a niriss-pipe image (docker images --filter "
                        f"label={LABEL_NS}.tool.version).")
    return image


def inspect_image(engine, reference: str, records: Path | None = None) -> dict:
    """Labels and the probe's findings as one JSON-able dict (what ``inspect --json`` prints)."""
    image = get_image(engine, reference)
    labels = dict(image.labels or {})
    probe = run_probe(engine, image.id)
    oci = "org.opencontainers.image"
    lock_label = _label(labels, "lock.digest")
    in_image = probe.get("lock")
    pins = lock_pins(in_image["text"]) if in_image else {}
    baked = None
    if _label(labels, "crds.references") == "bake":
        baked = {"count": _int(_label(labels, "crds.baked.count")),
                 "bytes": _int(_label(labels, "crds.baked.bytes")),
                 "manifest": _label(labels, "crds.baked.manifest")}
    record = find_record(image.id, records)
    return {
        "image": reference,
        "id": image.id,
        "tags": sorted(image.tags),
        "created": labels.get(f"{oci}.created"),
        "revision": labels.get(f"{oci}.revision"),
        "source": labels.get(f"{oci}.source"),
        "tool_version": _label(labels, "tool.version"),
        "spec": _label(labels, "spec"),
        "jwst": {"version": _label(labels, "jwst.version"), "git": _label(labels, "jwst.git"),
                 "ref": _label(labels, "jwst.ref"), "installed": probe.get("jwst"),
                 "commit": probe.get("jwst_commit")},
        "crds": {"version": probe.get("crds"), "context": _label(labels, "crds.context"),
                 "niriss_imap": _label(labels, "crds.niriss-imap")},
        "python": {"version": probe.get("python"), "spec": _label(labels, "python.version"),
                   "manager": _label(labels, "python.manager"), "prefix": probe.get("prefix")},
        "lock": {"file": _label(labels, "lock.file"), "digest": lock_label,
                 "in_image": bool(in_image), "path": LOCK_IN_IMAGE if in_image else None,
                 "image_digest": in_image["sha256"] if in_image else None,
                 "matches_label": (in_image["sha256"] == lock_label)
                 if in_image and lock_label else None,
                 "packages": len(pins) if in_image else None},
        "base": {"name": labels.get(f"{oci}.base.name"),
                 "digest": labels.get(f"{oci}.base.digest"),
                 "suite": _label(labels, "base.suite"), "mirror": _label(labels, "base.mirror"),
                 "variant": _label(labels, "base.variant")},
        "references": {"mode": _label(labels, "crds.references"),
                       "scope": _label(labels, "crds.scope"), "baked": baked},
        "packages": [f"{name}=={version}" for name, version
                     in sorted(installed_versions(probe).items())],
        "build_record": str(record) if record else None,
        "labels": labels,
    }


def format_inspection(info: dict) -> str:
    """The text form of ``inspect_image``."""
    rows = [("image", f"{info['image']} ({info['id'][7:19]})"),
            ("tags", ", ".join(info["tags"]) or "(none)"),
            ("created", f"{info['created'] or '?'} by niriss-pipe {info['tool_version'] or '?'} "
             f"from {info['spec'] or '?'} (revision {(info['revision'] or '?')[:12]})")]
    jwst = info["jwst"]
    if jwst["git"]:
        what = f"{jwst['installed'] or '?'} from {jwst['git']} @ {jwst['ref']}"
        what += f" (commit {jwst['commit']})" if jwst["commit"] else ""
    else:
        what = f"{jwst['installed'] or '?'} (PyPI release {jwst['version'] or '?'})"
    rows.append(("jwst", what))
    rows.append(("crds", info["crds"]["version"] or "not installed"))
    py = info["python"]
    rows.append(("python", f"{py['version']} ({py['manager'] or '?'}, {py['prefix']})"))
    imap = info["crds"]["niriss_imap"]
    rows.append(("context", info["crds"]["context"] + (f", NIRISS {imap}" if imap else "")))
    lock = info["lock"]
    if not lock["in_image"]:
        lock_text = (f"none in the image ({LOCK_IN_IMAGE} is absent: built before hash-locked "
                     "environments)")
    else:
        state = {True: "the image's copy matches", False: "the image's copy DIFFERS "
                 f"({lock['image_digest']})", None: "no lock.digest label"}[lock["matches_label"]]
        lock_text = (f"{lock['file']} {lock['digest'] or lock['image_digest']}, "
                     f"{lock['packages']} packages ({state})")
    rows.append(("lock", lock_text))
    base = info["base"]
    origin = (f"Debian {base['suite']} {base['variant']} from {base['mirror']}"
              if base["mirror"] else f"Debian {base['suite']}")
    rows.append(("base", f"{base['name']} {base['digest']} ({origin})"))
    refs = info["references"]
    if refs["baked"]:
        baked = refs["baked"]
        size = human_bytes(baked["bytes"]) if baked["bytes"] is not None else "?"
        rows.append(("references", f"baked ({refs['scope']}): {baked['count']} files, {size}, "
                     f"manifest {baked['manifest']}"))
    else:
        rows.append(("references", f"{refs['mode'] or '?'}: run with -v CACHE:{CRDS_PATH}:ro "
                     f"(scope {refs['scope'] or '?'})"))
    rows.append(("build record", info["build_record"] or
                 f"none for this image id in {records_dir()}"))
    rows.append(("packages", f"{len(info['packages'])} installed"))
    lines = [f"{key:<14} {value}" for key, value in rows]
    lines += [f"  {pin}" for pin in info["packages"]]
    return "\n".join(lines)


# -- verify -----------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    ok: bool
    summary: str  # one line for the report
    problem: str = ""  # the phrase for the error paragraph when not ok


def check_environment(labels: dict[str, str], probe: dict) -> list[Check]:
    """The lock inside the image against its label, and the installed set against that lock."""
    in_image = probe.get("lock")
    label = _label(labels, "lock.digest")
    if not in_image:
        return [Check("lock", False, f"no lock in the image ({LOCK_IN_IMAGE} is absent)",
                      f"the image has no lock ({LOCK_IN_IMAGE} is absent: it was built before "
                      "hash-locked environments), so its environment cannot be verified "
                      "against one")]
    checks = []
    if not label:
        checks.append(Check("lock", False, "no io.niriss-pipe.lock.digest label",
                            f"the image carries a lock ({in_image['sha256']}) but no "
                            f"{LABEL_NS}.lock.digest label to check it against"))
    elif in_image["sha256"] != label:
        checks.append(Check("lock", False, f"{LOCK_IN_IMAGE} is {in_image['sha256']}, the "
                            f"label says {label}",
                            f"the lock inside the image ({in_image['sha256']}) is not the one "
                            f"its label records ({label})"))
    else:
        checks.append(Check("lock", True, f"{LOCK_IN_IMAGE} matches its label {label}"))
    pins = lock_pins(in_image["text"])
    diff = compare_environment(pins, installed_versions(probe))
    if diff.ok:
        checks.append(Check("environment", True, f"{len(pins)} packages installed exactly as "
                            "locked"))
    else:
        problems = diff.problems()
        plural = "s" if len(problems) != 1 else ""
        checks.append(Check("environment", False, f"{len(problems)} difference{plural} from "
                            f"the lock: {shorten(problems, 4)}",
                            "the installed environment differs from the image's lock: "
                            + shorten(problems)))
    return checks


def check_baked(labels: dict[str, str], probe: dict) -> list[Check]:
    if _label(labels, "crds.references") != "bake":
        return []
    found = probe.get("crds_manifest")
    want = _label(labels, "crds.baked.manifest")
    if not found:
        return [Check("references", False, f"no {CRDS_PATH} in the image",
                      f"the image is labelled as baked but has no {CRDS_PATH}")]
    problems = []
    if found["manifest"] != want:
        problems.append(f"the manifest of {CRDS_PATH} is {found['manifest']}, the label says "
                        f"{want}")
    for key in ("count", "bytes"):
        label = _int(_label(labels, f"crds.baked.{key}"))
        if label is not None and label != found[key]:
            problems.append(f"{CRDS_PATH} holds {found[key]} reference {key}, "
                            f"the label says {label}")
    if problems:
        return [Check("references", False, "; ".join(problems),
                      "the baked references differ: " + "; ".join(problems))]
    return [Check("references", True, f"{found['count']} files, "
                  f"{human_bytes(found['bytes'])}, manifest {want} recomputed and equal")]


def verify_image(engine, reference: str, *, selftest: bool = True) -> list[Check]:
    """Run every check, report each as it completes, and raise VerificationError naming all
    that failed."""
    from niriss_pipe.build.builder import run_selftest

    say = engine.reporter.say
    image = get_image(engine, reference)
    labels = dict(image.labels or {})
    baked = _label(labels, "crds.references") == "bake"
    say(f"verifying {reference} ({image.id[7:19]})")
    probe = run_probe(engine, image.id, crds=baked)
    checks = check_environment(labels, probe) + check_baked(labels, probe)
    for check in checks:
        say(f"  {check.name:<14} {'ok' if check.ok else 'FAIL'}: {check.summary}")
    if selftest:
        try:
            run_selftest(engine, image.id)  # prints its own '  selftest ... PASS' line
            checks.append(Check("selftest", True, "PASS"))
        except EngineError as err:
            say(f"  {'selftest':<14} FAIL: {err.what}")
            checks.append(Check("selftest", False, err.what, err.what))
    failed = [c for c in checks if not c.ok]
    if failed:
        spec = _label(labels, "spec") or "SPEC.yaml"
        unlocked = [c for c in failed if c.name == "lock" and not probe.get("lock")]
        if unlocked and len(failed) == len(unlocked):
            raise VerificationError(
                f"{reference} cannot be verified: " + unlocked[0].problem + ".",
                "rebuild it from its spec with this niriss-pipe (python build.py build "
                f"--no-cache images/{spec}) to get an image that carries its lock.")
        raise VerificationError(
            f"{reference} does not match what it was built from: "
            + "; ".join(c.problem for c in failed) + ".",
            f"rebuild it from its spec (python build.py build --no-cache images/{spec}) and "
            "use the new image; keep results made with this one apart.")
    say(f"{reference}: verified ({', '.join(c.name for c in checks)})")
    return checks


# -- build records ----------------------------------------------------------------------------
def records_dir() -> Path:
    """``$NIRISS_PIPE_RECORDS``, else ``build/records`` under the working directory."""
    return Path(os.environ.get(RECORDS_ENV) or "build/records")


def record_paths(repository: str, full_tag: str, when: dt.datetime,
                 root: Path | None = None) -> tuple[Path, Path]:
    """(the latest record, this build's timestamped copy) for ``repository:full_tag``."""
    folder = (root or records_dir()) / repository
    stamp = when.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"{full_tag}.json", folder / f"{full_tag}.{stamp}.json"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_record(spec, engine, result, base, *, no_cache: bool, ended: dt.datetime) -> dict:
    """The JSON-able build record of a successful build (reads the image's labels and the
    engine's version)."""
    from niriss_pipe.render import dockerfile as rendering
    from niriss_pipe.spec import lock as locking

    lock_file = locking.lock_path(spec)
    lock_text = lock_file.read_text()
    started = ended - dt.timedelta(seconds=result.seconds)
    labels = engine.image_labels(result.image_id)
    version = engine.server_version()
    verdict = next((line for line in reversed(result.selftest_output.splitlines())
                    if line.startswith("selftest:")), None)

    def iso(moment: dt.datetime) -> str:
        return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds") \
            .replace("+00:00", "Z")

    return {
        "record_version": RECORD_VERSION,
        "tool": {"name": "niriss-pipe", "version": __version__,
                 "revision": labels.get("org.opencontainers.image.revision") or None},
        "spec": {"path": str(spec.path), "absolute": str(Path(spec.path).resolve()),
                 "sha256": "sha256:" + hashlib.sha256(spec.path.read_bytes()).hexdigest(),
                 "content": spec.path.read_text()},
        "lock": {"path": str(lock_file), "digest": locking.digest(lock_file),
                 "packages": len(lock_pins(lock_text)), "in_image": LOCK_IN_IMAGE},
        "image": {"id": result.image_id, "repository": spec.name,
                  "tags": [f"{spec.name}:{tag}" for tag in result.tags],
                  "content_tag": f"{spec.name}:{result.content_tag}",
                  "full_tag": f"{spec.name}:{rendering.full_tag(spec)}", "labels": labels},
        "base": {"reference": base.reference, "id": base.image_id, "digest": base.digest},
        "build": {"started": iso(started), "ended": iso(ended),
                  "seconds": round(result.seconds, 1), "no_cache": no_cache,
                  "selftest": verdict},
        "host": {"hostname": socket.gethostname(), "platform": platform.platform(),
                 "python": platform.python_version(),
                 "docker_engine": version.get("Version"),
                 "docker_api": version.get("ApiVersion")},
    }


def write_build_record(spec, engine, result, base, *, no_cache: bool = False,
                       root: Path | None = None) -> Path | None:
    """Write the record of a successful build, atomically: ``<repository>/<full tag>.json``
    (the latest) and a timestamped copy that later builds never overwrite. Return the copy's
    path. A record that cannot be written is a warning, never a failed build: the image was
    built, self-tested and tagged."""
    from niriss_pipe.render import dockerfile as rendering

    ended = dt.datetime.now(dt.timezone.utc)
    try:
        record = build_record(spec, engine, result, base, no_cache=no_cache, ended=ended)
        latest, dated = record_paths(spec.name, rendering.full_tag(spec), ended, root)
        counter = 1
        while dated.exists():  # two builds of one tag within a second
            counter += 1
            dated = dated.with_name(f"{latest.stem}.{ended:%Y%m%dT%H%M%SZ}-{counter}.json")
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        _atomic_write(dated, text)
        _atomic_write(latest, text)
    except Exception as exc:  # noqa: BLE001 - the build itself succeeded; say why, go on
        engine.reporter.warn(f"no build record written ({type(exc).__name__}: {exc})")
        return None
    engine.reporter.say(f"build record: {dated}")
    return dated


def find_records(image_id: str, root: Path | None = None) -> list[Path]:
    """Every record of ``image_id`` under the records folder, sorted by path."""
    folder = root or records_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*.json")):
        try:
            if json.loads(path.read_text())["image"]["id"] == image_id:
                found.append(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def find_record(image_id: str, root: Path | None = None) -> Path | None:
    """The timestamped (never overwritten) record of ``image_id``, else its latest record."""
    found = find_records(image_id, root)
    dated = [p for p in found if DATED_RE.search(p.stem)]
    return (dated or found or [None])[-1]
