"""Build an image from a spec: resolve, render, build, self-test, and only then tag.

The order matters for users: an image gets its user-facing tags
(``:jwst_1584``, ``:jwst_1584-jwst3.0.0-py3.11``) only after its self-test
passed, and the content tag last, so "content tag exists" means "done".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import lock as locking
from . import render as rendering
from . import syncrecord
from .base import resolve as resolve_base
from .buildcontext import BuildContext, DiskFile, make_context
from .crdscache import DEFAULT_CACHE, resolve_imap
from .engine import Engine
from .errors import EngineError
from .network import find_ca_bundle, proxy_buildargs
from .spec import ImageSpec
from .sync import DEFAULT_SERVER, SyncRequest, sync

REPO_DIR = Path(__file__).resolve().parent.parent


@dataclass
class BuildOptions:
    ca_bundle: str | None = None  # path, "none", or None for auto-detection
    cache: Path = DEFAULT_CACHE
    crds_server: str = DEFAULT_SERVER  # where a bake syncs from
    sync_jobs: int = 8
    selftest: bool = True
    force: bool = False
    no_cache: bool = False  # rebuild every layer (implies force)


@dataclass
class BuildResult:
    image_id: str
    tags: list[str]
    content_tag: str
    built: bool  # False when the content tag already existed
    seconds: float
    selftest_output: str = ""
    notes: list[str] = field(default_factory=list)


def content_tag(context: BuildContext, base_id: str) -> str:
    return f"content-{context.digest(base_id)[:16]}"


def user_tags(spec: ImageSpec) -> list[str]:
    return [rendering.pmap_tag(spec), rendering.full_tag(spec)]


def render_dockerfile(spec: ImageSpec, options: BuildOptions) -> str:
    """The Dockerfile ``build`` would use (reads the host cache for the imap, nothing else)."""
    return _render(spec, options, find_ca_bundle(options.ca_bundle))


def _render(spec: ImageSpec, options: BuildOptions, ca) -> str:
    return rendering.render(spec, imap=resolve_imap(spec, options.cache),
                            ca_bundle=ca is not None)


def prepare(spec: ImageSpec, options: BuildOptions, baked: BakedCache | None = None,
            lock_path: Path | None = None) -> BuildContext:
    """Render the Dockerfile and collect the build context (no engine). ``lock_path`` is the
    lock ``build`` already checked; without it the lock is checked here."""
    lock = (lock_path or locking.check(spec)).read_bytes()
    ca = find_ca_bundle(options.ca_bundle)
    dockerfile = _render(spec, options, ca)
    if baked is None:
        return make_context(dockerfile, lock, ca)
    return make_context(dockerfile, lock, ca, crds_files=baked.files, crds_disk=baked.disk)


@dataclass
class BakedCache:
    """The CRDS files a baked image carries, as build-context entries under ``crds/``."""

    files: dict[str, bytes]
    disk: dict[str, DiskFile]
    buildargs: dict[str, str]


def bake_cache(spec: ImageSpec, options: BuildOptions, reporter) -> BakedCache:
    """Sync the spec's context into the host cache (a no-op when it is already verified
    there), then list exactly its closure, references and record for the image."""
    request = SyncRequest(context=spec.context, cache=options.cache, scope=spec.scope,
                          datasets=spec.datasets, server=options.crds_server,
                          jobs=options.sync_jobs, assume_yes=True)
    result = sync(request, reporter)
    cache = options.cache.resolve()
    disk = {f"crds/{w.dest.relative_to(cache)}": DiskFile(w.dest, w.sha1)
            for w in result.mapping_files + result.reference_files}
    config = cache / "config" / "jwst"
    files = {f"crds/config/jwst/{name}": (config / name).read_bytes()
             for name in ("server_config", "ref_cache_subdir_mode", "bad_files.txt")
             if (config / name).is_file()}
    # The context's record, so the image's check-cache knows its references (for scope
    # datasets the only source); only this context, no host paths or times.
    record = syncrecord.entry(spec.scope, request.instrument,
                              [w.dest.name for w in result.reference_files], True)
    files[f"crds/{syncrecord.RECORD_PATH}"] = syncrecord.text({spec.context: record})
    lines = "".join(f"{name} {item.sha1}\n" for name, item in sorted(disk.items()))
    refs = result.reference_files
    return BakedCache(files, disk, {
        "NIRISS_PIPE_REFERENCES_COUNT": str(len(refs)),
        "NIRISS_PIPE_REFERENCES_BYTES": str(sum(w.size for w in refs)),
        "NIRISS_PIPE_REFERENCES_MANIFEST": "sha256:" + hashlib.sha256(lines.encode()).hexdigest(),
    })


def build(spec: ImageSpec, engine: Engine, options: BuildOptions) -> BuildResult:
    """Build ``spec`` unless an image with the same content exists; tag it after its self-test."""
    say = engine.reporter.say
    started = time.monotonic()
    for warning in spec.warnings:
        engine.reporter.warn(f"{spec.path}: {warning}")
    lock = locking.check(spec)  # before any download or build: a stale lock is a user error
    baked = bake_cache(spec, options, engine.reporter) if spec.references == "bake" else None
    context = prepare(spec, options, baked, lock)
    base = resolve_base(engine, spec.base)
    ctag = content_tag(context, base.image_id)
    existing = engine.image_id(f"{spec.name}:{ctag}")
    if existing and not (options.force or options.no_cache):
        moved = _apply_tags(engine, existing, spec.name, user_tags(spec))
        note = f" (re-pointed {', '.join(moved)})" if moved else ""
        say(f"{spec.name}:{rendering.pmap_tag(spec)} is up to date ({ctag}); nothing to build"
            f"{note}.")
        return BuildResult(existing, user_tags(spec), ctag, False, time.monotonic() - started)

    say(f"building {spec.name}:{rendering.full_tag(spec)} from {spec.path} "
        f"(base {base.reference} {base.image_id[7:19]})")
    buildargs = {**proxy_buildargs(), **_provenance_args(base.digest),
                 "NIRISS_PIPE_LOCK_DIGEST": locking.digest(lock),
                 **(baked.buildargs if baked else {})}
    image_id = engine.build(context, buildargs, no_cache=options.no_cache)
    output = ""
    if options.selftest:
        output = run_selftest(engine, image_id, cleanup_on_failure=True)
    _apply_tags(engine, image_id, spec.name, [*user_tags(spec), ctag])
    took = time.monotonic() - started
    tags = ", ".join(f"{spec.name}:{t}" for t in user_tags(spec))
    say(f"built {image_id[7:19]} in {took:.0f} s, tagged {tags}")
    result = BuildResult(image_id, user_tags(spec), ctag, True, took, output)
    from .provenance import write_build_record  # build/records/<repository>/<full tag>.json

    write_build_record(spec, engine, result, base, no_cache=options.no_cache)
    return result


def run_selftest(engine: Engine, image: str, *, cleanup_on_failure: bool = False) -> str:
    """Run the image's baked-in self-test with no network; raise EngineError when it fails."""
    clock = time.monotonic()
    result = engine.run(image, ["selftest"], network=False)
    verdict = next((line for line in reversed(result.output.splitlines())
                    if line.startswith("selftest:")), "selftest: no verdict printed")
    if result.exit_code != 0:
        if cleanup_on_failure:
            engine.remove_untagged(image)
        tail = "\n".join(f"    {line}" for line in result.output.splitlines()[-30:])
        raise EngineError(f"the image's self-test failed (exit {result.exit_code}): {verdict}",
                          "the image was not tagged; run with -v for the whole log.\n"
                          f"  self-test output:\n{tail}")
    engine.reporter.say(f"  {'selftest':<14} {time.monotonic() - clock:6.1f} s  {verdict}")
    return result.output


def _apply_tags(engine: Engine, image_id: str, repository: str, tags: list[str]) -> list[str]:
    """Point ``repository:tag`` at ``image_id`` for each tag; return those that moved."""
    moved = []
    for tag in tags:
        if engine.image_id(f"{repository}:{tag}") != image_id:
            engine.tag(image_id, repository, tag)
            moved.append(tag)
    return moved


def _provenance_args(base_digest: str) -> dict[str, str]:
    """Build-time label values: creation time (SOURCE_DATE_EPOCH wins), git revision, base."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch and epoch.isdigit() \
        else dt.datetime.now(dt.timezone.utc)
    return {
        "NIRISS_PIPE_CREATED": when.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "NIRISS_PIPE_REVISION": _git("rev-parse", "HEAD"),
        "NIRISS_PIPE_SOURCE": _git("config", "--get", "remote.origin.url")
        or "https://github.com/niriss-pipe/niriss-pipe",
        "NIRISS_PIPE_BASE_DIGEST": base_digest,
    }


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
