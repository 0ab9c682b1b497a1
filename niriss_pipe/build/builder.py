"""Build an image from a spec: resolve, render, build, self-test, and only then tag.

The order matters for users: an image gets its user-facing tags
(``:jwst_1584``, ``:jwst_1584-jwst3.0.0-py3.11``) only after its self-test
passed, and the content tag last, so "content tag exists" means "done".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from niriss_pipe.build.base import resolve as resolve_base
from niriss_pipe.build.network import find_ca_bundle, proxy_buildargs
from niriss_pipe.core import grammar
from niriss_pipe.core.errors import EngineError, UserError
from niriss_pipe.crds import record as syncrecord
from niriss_pipe.crds.hostcache import DEFAULT_CACHE, resolve_imap
from niriss_pipe.crds.sync import DEFAULT_SERVER, SyncRequest, sync
from niriss_pipe.engine.client import Engine
from niriss_pipe.render import dockerfile as rendering
from niriss_pipe.render.context import BuildContext, DiskFile, make_context
from niriss_pipe.spec import lock as locking
from niriss_pipe.spec.load import ImageSpec

REPO_DIR = Path(__file__).resolve().parents[2]  # the checkout, when run from one
PROJECT_URL = "https://github.com/niriss-pipe/niriss-pipe"
ENVIRONMENT_STAGE = "environment"  # the build stage that makes the Python environment


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
    stage_images: dict[str, str] = field(default_factory=dict)  # build stages it made


def content_tag(context: BuildContext, base_id: str, epoch: str | None = None) -> str:
    """``content-<16 hex>``: the build context, the base image and SOURCE_DATE_EPOCH (it sets
    the image's ``created`` label, so an image made under another epoch is another image)."""
    extra = f"SOURCE_DATE_EPOCH={epoch}" if epoch else ""
    return f"content-{context.digest(base_id, extra)[:16]}"


def source_date_epoch(environ=os.environ) -> str | None:
    """SOURCE_DATE_EPOCH when set (whole seconds since 1970, ASCII digits), else None."""
    value = environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    if not grammar.full(grammar.DOTTED_VERSION, value) or "." in value:
        raise UserError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds since "
                        "1970-01-01 (reproducible-builds.org).",
                        "set it to whole seconds, e.g. SOURCE_DATE_EPOCH=$(git log -1 "
                        "--format=%ct), or unset it.")
    return value


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
    epoch = source_date_epoch()
    ctag = content_tag(context, base.image_id, epoch)
    existing = engine.image_id(f"{spec.name}:{ctag}")
    if existing and not (options.force or options.no_cache):
        moved = _apply_tags(engine, existing, spec.name, user_tags(spec))
        note = f" (re-pointed {', '.join(moved)})" if moved else ""
        say(f"{spec.name}:{rendering.pmap_tag(spec)} is up to date ({ctag}); nothing to build"
            f"{note}.")
        return BuildResult(existing, user_tags(spec), ctag, False, time.monotonic() - started)

    say(f"building {spec.name}:{rendering.full_tag(spec)} from {spec.path} "
        f"(base {base.reference} {base.image_id[7:19]})")
    buildargs = {**proxy_buildargs(), **_provenance_args(base.digest, epoch),
                 "NIRISS_PIPE_LOCK_DIGEST": locking.digest(lock),
                 **(baked.buildargs if baked else {})}
    try:
        outcome = engine.build(context, buildargs, no_cache=options.no_cache)
    except EngineError as err:  # a completed environment stage stays as the next try's cache
        _name_stages(engine, spec, getattr(err, "stage_images", {}))
        raise
    _name_stages(engine, spec, outcome.stage_images)
    image_id = outcome.image_id
    output = ""
    if options.selftest:
        output = run_selftest(engine, image_id, cleanup_on_failure=True)
    _apply_tags(engine, image_id, spec.name, [*user_tags(spec), ctag])
    took = time.monotonic() - started
    tags = ", ".join(f"{spec.name}:{t}" for t in user_tags(spec))
    say(f"built {image_id[7:19]} in {took:.0f} s, tagged {tags}")
    result = BuildResult(image_id, user_tags(spec), ctag, True, took, output,
                         stage_images=dict(outcome.stage_images))
    from niriss_pipe.provenance.core import write_build_record

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


def _name_stages(engine: Engine, spec: ImageSpec, stage_images: dict[str, str]) -> None:
    """Tag the environment build stage's image ``NAME:environment-<id>``: it is no part of the
    image (only its /opt/env is copied out), so untagged it would show as a dangling
    ``<none>`` image; named, it is the layer cache of the next build and ``clean`` finds it."""
    image_id = stage_images.get(ENVIRONMENT_STAGE)
    if image_id:
        _apply_tags(engine, image_id, spec.name, [f"{ENVIRONMENT_STAGE}-{image_id[7:19]}"])


def _provenance_args(base_digest: str, epoch: str | None = None) -> dict[str, str]:
    """Build-time label values: creation time (SOURCE_DATE_EPOCH wins), git revision, base."""
    when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch \
        else dt.datetime.now(dt.timezone.utc)
    return {
        "NIRISS_PIPE_CREATED": when.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "NIRISS_PIPE_REVISION": _git("rev-parse", "HEAD"),
        "NIRISS_PIPE_SOURCE": public_source(_git("config", "--get", "remote.origin.url")),
        "NIRISS_PIPE_BASE_DIGEST": base_digest,
    }


def public_source(remote: str) -> str:
    """The checkout's remote as the ``source`` label, when it is a network URL: credentials
    (``https://user:token@host/...``) are dropped, and a local path (a clone of a folder on
    the build host) gives the project's URL instead: no host path goes into an image."""
    match = grammar.URL.fullmatch(remote) if remote else None
    if match and match.group("scheme") in ("https", "http", "ssh", "git"):
        rest = match.group("rest")
        host, slash, path = rest.partition("/")
        host = host.rsplit("@", 1)[-1]
        return f"{match.group('scheme')}://{host}{slash}{path}"
    if re.fullmatch(r"git@[A-Za-z0-9.-]+:[A-Za-z0-9._/-]+", remote or "", re.ASCII):
        return remote
    return PROJECT_URL


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
