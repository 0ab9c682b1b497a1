"""Build an image from a spec: resolve, render, build, self-test, and only then tag.

The order matters for users: an image gets its user-facing tags
(``:jwst_1584``, ``:jwst_1584-jwst3.0.0-py3.11``) only after its self-test
passed, and the content tag last, so "content tag exists" means "done".
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.build import debs
from niriss_pipe.build.bake import BakedCache, bake_cache
from niriss_pipe.build.base import ResolvedBase
from niriss_pipe.build.base import resolve as resolve_base
from niriss_pipe.build.contextwarn import warn_missing_types
from niriss_pipe.build.network import find_ca_bundle, proxy_buildargs
from niriss_pipe.build.normalize import LayerMap, normalize_config_only, normalize_image
from niriss_pipe.build.options import BuildOptions, BuildResult
from niriss_pipe.build.records import write_build_record
from niriss_pipe.build.selftest import run_selftest, verdict_line
from niriss_pipe.build.shortcut import RuntimeStages, last_stage_context, runtime_key, split
from niriss_pipe.build.stamps import build_epoch, label_args
from niriss_pipe.build.verdicts import Verdicts, environment_key
from niriss_pipe.build.wheels import SourcesInLock, sources_in
from niriss_pipe.build.wheels import cache_dir as wheel_cache_dir
from niriss_pipe.build.wheels import resolve as resolve_wheels
from niriss_pipe.core.errors import EngineError, UserError, opt, prog
from niriss_pipe.core.signals import stoppable
from niriss_pipe.crds.hostcache import resolve_imap
from niriss_pipe.engine.client import Engine
from niriss_pipe.render import dockerfile as rendering
from niriss_pipe.render import names
from niriss_pipe.render.context import BuildContext, DiskFile, make_context
from niriss_pipe.spec import lock as locking
from niriss_pipe.spec.model import ImageSpec

ENVIRONMENT_STAGE = "environment"  # the build stage that makes the Python environment
RUNTIME_STAGE = "runtime"  # the image up to its runtime: what a new pmap builds on
CACHED_STAGES = (ENVIRONMENT_STAGE, RUNTIME_STAGE)


def content_tag(context: BuildContext, base_id: str,
                image_args: dict[str, str] | None = None) -> str:
    """``content-<16 hex>``: the build context, the base image and the build arguments that
    reach the image (SOURCE_DATE_EPOCH and the labels: creation time, the tool's revision),
    so an image made by another revision or under another epoch is another image, and
    "a content tag exists" means "a build now would give this image"."""
    extra = "\0".join(f"{key}={value}" for key, value in sorted((image_args or {}).items()))
    return f"content-{context.digest(base_id, extra)[:16]}"


def user_tags(spec: ImageSpec) -> list[str]:
    return [names.pmap_tag(spec), names.full_tag(spec)]


def render_dockerfile(spec: ImageSpec, options: BuildOptions) -> str:
    """The Dockerfile ``build`` would use: it reads the host cache for the imap, and the
    wheel cache (the index, for wheels it lacks: nothing is downloaded) for whether the
    lock installs from wheels."""
    try:  # a missing or stale lock renders all the same (build refuses it)
        lock_text = locking.lock_path(spec).read_text()
    except OSError:
        lock_text = ""
    sources = sources_in(lock_text, options.wheels or wheel_cache_dir()) \
        if lock_text and not options.offline else []
    return _render(spec, options, find_ca_bundle(options.ca_bundle), wheelhouse=not sources)


def _render(spec: ImageSpec, options: BuildOptions, ca, wheelhouse: bool = True) -> str:
    return rendering.render(spec, imap=resolve_imap(spec, options.cache),
                            ca_bundle=ca is not None, commit=locking.locked_commit(spec),
                            wheelhouse=wheelhouse)


@dataclass(frozen=True)
class EnvironmentInputs:
    """What the environment is made from, found once per build (hashing the wheels and the
    .deb files costs seconds): the verified wheels (``context_wheels``; None: the lock holds
    source releases), the base, and the verified OS packages for it (``os_packages``)."""

    wheels: dict[str, DiskFile] | None
    base: ResolvedBase
    packages: dict[str, DiskFile]


def prepare(spec: ImageSpec, options: BuildOptions, lock: Path, inputs: EnvironmentInputs,
            baked: BakedCache | None = None) -> BuildContext:
    """Render the Dockerfile and collect the build context: the checked ``lock``, its
    wheels and the OS packages (``inputs``), and the baked references."""
    ca = find_ca_bundle(options.ca_bundle)
    dockerfile = _render(spec, options, ca, wheelhouse=inputs.wheels is not None)
    if baked is None:
        return make_context(dockerfile, lock.read_bytes(), ca, wheels=inputs.wheels,
                            debs=inputs.packages)
    return make_context(dockerfile, lock.read_bytes(), ca, crds_files=baked.files,
                        crds_disk=baked.disk, wheels=inputs.wheels, debs=inputs.packages)


def os_packages(engine: Engine, spec: ImageSpec, options: BuildOptions,
                base: ResolvedBase) -> debs.OsPackages:
    """The verified .deb files for the os-packages stage (build/debs.py), from the
    fetched folder (``--wheels DIR``: its ``os-packages/``) or the host's cache; downloaded
    by apt in a container of the base when missing, unless offline."""
    root = options.wheels / debs.FOLDER if options.wheels else debs.cache_dir()
    found = debs.resolve(engine, base.image_id, base.reference, names.apt_packages(spec), root,
                         download=not options.offline,
                         fetch_hint=f"{prog()} fetch {spec.path}"
                         + (f" {opt('to')} {options.wheels}" if options.wheels else ""),
                         environment=proxy_buildargs())
    return found


def _disk_files(found: dict) -> dict[str, DiskFile]:
    """Verified wheels (build/wheels.py) as build-context files, checked by their sha256."""
    return {name: DiskFile(item.path, item.sha256, "sha256") for name, item in found.items()}


def context_wheels(spec: ImageSpec, options: BuildOptions, lock_text: str,
                   reporter=None) -> dict[str, DiskFile] | None:
    """``{file name: verified wheel}`` for the build context (build/wheels.py); None when
    the lock holds source releases, which pip builds from the index in the build."""
    folder = options.wheels or wheel_cache_dir()
    if options.offline and spec.jwst.git:
        raise UserError(f"{spec.path}: field 'jwst.git': an {opt('offline')} build cannot "
                        "install a git source yet (pip fetches and builds it in the build).",
                        "build it with the network, or use a jwst release from PyPI.")
    try:
        found = resolve_wheels(lock_text, folder, reporter, download=not options.offline,
                               fetch_hint=f"{prog()} fetch {spec.path}"
                               + (f" {opt('to')} {folder}" if options.wheels else ""))
    except SourcesInLock as err:
        if reporter:
            reporter.detail(f"{spec.path}: {len(err.sources)} locked package(s) have no wheel "
                            "for this image: pip installs the lock from the index in the build")
        return None
    return _disk_files(found)


def fetch(spec: ImageSpec, engine: Engine, options: BuildOptions, progress: bool = False
          ) -> tuple[dict[str, DiskFile], debs.OsPackages]:
    """Everything an ``--offline`` build of ``spec`` needs on this host but the base: the
    verified wheels its lock names and the OS packages for its base (made here when
    missing), into ``options.wheels`` (its ``os-packages/``) or the host's caches."""
    lock = locking.check(spec)
    found = resolve_wheels(lock.read_text(), options.wheels or wheel_cache_dir(),
                           engine.reporter if progress else None)
    packages = os_packages(engine, spec, options, resolve_base(engine, spec.base))
    return _disk_files(found), packages


def build(spec: ImageSpec, engine: Engine, options: BuildOptions) -> BuildResult:
    """Build ``spec`` unless an image with the same content exists; tag it after its self-test.
    Ctrl-C and SIGTERM stop it as a failure does (``stoppable``): no tag moves, and the
    engine keeps only the completed build stages (engine/build.py ``discard_partial``)."""
    with stoppable():
        return _build(spec, engine, options)


def _build(spec: ImageSpec, engine: Engine, options: BuildOptions) -> BuildResult:
    say = engine.reporter.say
    started = time.monotonic()
    for warning in spec.warnings:
        engine.reporter.warn(f"{spec.path}: {warning}")
    lock = locking.check(spec)  # before any download or build: a stale lock is a user error
    require_classic_store(engine)
    lock_text = lock.read_text()
    baked = inputs = None
    if spec.references == "bake":  # scope datasets: the image's own jwst chooses them
        chooser = None
        if spec.scope == "datasets":
            inputs = environment_inputs(engine, spec, options, lock_text)
            chooser = environment_image(engine, spec, options, lock, inputs)
        baked = bake_cache(spec, options, engine.reporter, image=chooser)
    inputs = inputs or environment_inputs(engine, spec, options, lock_text)
    base = inputs.base
    context = prepare(spec, options, lock, inputs, baked)
    epoch = options.source_date_epoch or build_epoch(lock_text)
    image_args = {**label_args(base.digest, epoch, revision_label=options.revision_label,
                               source_label=options.source_label), "SOURCE_DATE_EPOCH": epoch}
    ctag = content_tag(context, base.image_id, image_args)
    existing = engine.image_id(f"{spec.name}:{ctag}")
    if existing and not (options.force or options.no_cache):
        moved = _apply_tags(engine, existing, spec.name, user_tags(spec))
        note = f" (re-pointed {', '.join(moved)})" if moved else ""
        say(f"{spec.name}:{names.pmap_tag(spec)} is up to date ({ctag}); nothing to build"
            f"{note}.")
        return BuildResult(existing, user_tags(spec), ctag, False, time.monotonic() - started)

    say(f"building {spec.name}:{names.full_tag(spec)} from {spec.path} "
        f"(base {base.reference} {base.image_id[7:19]})")
    buildargs = {**proxy_buildargs(), **image_args,
                 "NIRISS_PIPE_LOCK_DIGEST": locking.digest(lock),
                 **(baked.buildargs if baked else {})}
    known = RuntimeStages()
    key = runtime_key(context, base.image_id, epoch)
    runtime = known.get(key) if key and not options.no_cache else None
    try:
        if runtime and engine.image_id(runtime) == runtime:  # a pmap-only change, most often
            for name, _ in rendering.stages(split(context.dockerfile)[0]):
                say(f"  {name:<14} cached")
            outcome = engine.build(last_stage_context(context, runtime), buildargs,
                                   offline=options.offline, keep=CACHED_STAGES)
            outcome.stage_images = {**outcome.stage_images, RUNTIME_STAGE: runtime}
        else:
            outcome = engine.build(context, buildargs, no_cache=options.no_cache,
                                   offline=options.offline, keep=CACHED_STAGES)
    except EngineError as err:  # completed build stages stay as the next try's cache
        _name_stages(engine, spec, getattr(err, "stage_images", {}))
        raise
    except KeyboardInterrupt as stop:  # ... also when stopped; an engine gone by then is
        with contextlib.suppress(EngineError):  # no reason to say more than "interrupted"
            _name_stages(engine, spec, getattr(stop, "stage_images", {}))
        raise
    _name_stages(engine, spec, outcome.stage_images)
    if key and outcome.stage_images.get(RUNTIME_STAGE):
        known.put(key, outcome.stage_images[RUNTIME_STAGE])
    image_id, output, reused = _normalized_and_tested(engine, outcome.image_id, int(epoch),
                                                      options)
    _apply_tags(engine, image_id, spec.name, [*user_tags(spec), ctag])
    warn_missing_types(engine, image_id, spec, options.cache)
    took = time.monotonic() - started
    tags = ", ".join(f"{spec.name}:{t}" for t in user_tags(spec))
    say(f"built {image_id[7:19]} in {took:.0f} s, tagged {tags}")
    result = BuildResult(image_id, user_tags(spec), ctag, True, took, output,
                         stage_images={name: image for name, image in
                                       outcome.stage_images.items()
                                       if name in CACHED_STAGES},
                         selftest_reused_from=reused)
    write_build_record(spec, engine, result, base, no_cache=options.no_cache)
    return result


def require_classic_store(engine: Engine) -> None:
    """Refuse, before any work, an engine that keeps images in containerd's image store:
    there an image is named by its manifest's digest, and a loaded image gets an id of the
    engine's making, so the rewrite's id (the sha256 of the image config, the same on any
    classic engine) cannot be the image's, and no build would end in a checked image."""
    if engine.image_store() == "containerd":
        raise UserError("this Docker Engine keeps images in containerd's image store "
                        "('docker info' shows driver-type io.containerd.snapshotter.v1; Docker "
                        "29 does on a new install), which names an image by its manifest's "
                        "digest: a bit-identical image, named by the sha256 of its config, "
                        "cannot be built or checked there.",
                        "switch the engine to its classic store: in /etc/docker/daemon.json set "
                        "\"features\": {\"containerd-snapshotter\": false}, restart dockerd "
                        "(images made in the containerd store are not seen by the classic one), "
                        "then build again; or point DOCKER_HOST at an engine with the classic "
                        "store.")


def _selftest(engine: Engine, image_id: str, options: BuildOptions) -> tuple[str, str | None]:
    """The self-test's output, and the image whose verdict it is when it was reused: the
    verdict of the same environment (build/verdicts.py), unless --no-cache asks for
    everything anew."""
    key = _environment_key(engine, image_id)
    verdicts = Verdicts()
    known = verdicts.passed(key) if key and not options.no_cache else None
    if known:
        engine.reporter.say(f"  {'selftest':<14} reused  {known['verdict']} (the verdict of "
                            f"{known['image'][7:19]}, the same environment)")
        return known["output"], known["image"]
    output = run_selftest(engine, image_id, cleanup_on_failure=True)
    if key:
        verdicts.remember(key, image_id, output)
    return output, None


def environment_inputs(engine: Engine, spec: ImageSpec, options: BuildOptions,
                       lock_text: str) -> EnvironmentInputs:
    """The wheels, the base and its OS packages the environment is made from."""
    wheels = context_wheels(spec, options, lock_text, engine.reporter)
    base = resolve_base(engine, spec.base)
    return EnvironmentInputs(wheels, base, os_packages(engine, spec, options, base).files)


def environment_image(engine: Engine, spec: ImageSpec, options: BuildOptions, lock: Path,
                      inputs: EnvironmentInputs) -> str:
    """The spec's environment build stage (its jwst, crds and datamodels), built or found in
    the layer cache: what chooses a ``scope: datasets`` bake's references before the image
    exists."""
    outcome = engine.build(prepare(spec, options, lock, inputs),
                           proxy_buildargs(), target=ENVIRONMENT_STAGE, offline=options.offline,
                           keep=(ENVIRONMENT_STAGE,))
    _name_stages(engine, spec, {ENVIRONMENT_STAGE: outcome.image_id})
    return outcome.image_id


def _apply_tags(engine: Engine, image_id: str, repository: str, tags: list[str]) -> list[str]:
    """Point ``repository:tag`` at ``image_id`` for each tag; return those that moved."""
    moved = []
    for tag in tags:
        if engine.image_id(f"{repository}:{tag}") != image_id:
            engine.tag(image_id, repository, tag)
            moved.append(tag)
    return moved


def _name_stages(engine: Engine, spec: ImageSpec, stage_images: dict[str, str]) -> None:
    """Tag the build stages ``NAME:environment-<id>`` and ``NAME:runtime-<id>``: they are the
    layer cache of the next build (a new pmap rebuilds only what follows the runtime stage),
    no part of the image the user runs (that is the rewritten one); untagged they would show
    as dangling ``<none>`` images. ``clean`` removes them."""
    for stage in CACHED_STAGES:
        image_id = stage_images.get(stage)
        if image_id:
            _apply_tags(engine, image_id, spec.name, [f"{stage}-{image_id[7:19]}"])


def _normalized_and_tested(engine: Engine, built: str, epoch: int, options: BuildOptions
                           ) -> tuple[str, str, str | None]:
    """The built image rewritten bit for bit from its content (build/normalize.py), and its
    self-test's output and reused verdict (``_selftest``). The built one is then removed (its
    stages before the last stay, tagged, as the cache).

    From its config alone when only its run settings changed; then the self-test follows (its
    verdict is most likely known). Else from a save, and the self-test runs meanwhile on the
    built image: the same files and the same run settings, for the rewrite changes only the
    times and owner names in the layer tars and the build's clock and containers in the config.
    """
    clock = time.monotonic()
    layer_map = LayerMap()
    image_id = normalize_config_only(engine, built, epoch, layer_map)
    if image_id is not None:
        _report_normalize(engine, clock, image_id, "config only: every layer as rewritten before")
        _remove_built(engine, built, image_id)
        if not options.selftest:
            return image_id, "", None
        return (image_id, *_selftest(engine, image_id, options))
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="selftest") as pool:
        test = pool.submit(_timed_selftest, engine, built) if options.selftest else None
        try:
            image_id = normalize_image(engine, built, epoch, layer_map)
        except BaseException:
            if test:
                concurrent.futures.wait([test])
            engine.remove_untagged(built)
            raise
        _report_normalize(engine, clock, image_id, "the same inputs give this id on any engine")
        try:
            output, took = test.result() if test else ("", 0.0)
        except EngineError:
            engine.remove_untagged(image_id)
            engine.remove_untagged(built)
            raise
    _remove_built(engine, built, image_id)
    if test:
        engine.reporter.say(f"  {'selftest':<14} {took:6.1f} s  {verdict_line(output)} "
                            "(beside normalize)")
        key = _environment_key(engine, image_id)
        if key:
            Verdicts().remember(key, image_id, output)
    return image_id, output, None


def _environment_key(engine: Engine, image_id: str) -> str | None:
    """What a self-test's verdict is remembered and found by (build/verdicts.py); None when
    the engine no longer shows the image."""
    info = engine.image_info(image_id)
    return environment_key(info) if info else None


def _timed_selftest(engine: Engine, image: str) -> tuple[str, float]:
    clock = time.monotonic()
    return run_selftest(engine, image, report=False), time.monotonic() - clock


def _report_normalize(engine: Engine, clock: float, image_id: str, how: str) -> None:
    engine.reporter.say(f"  {'normalize':<14} {time.monotonic() - clock:6.1f} s  "
                        f"{image_id[7:19]} ({how})")


def _remove_built(engine: Engine, built: str, image_id: str) -> None:
    if image_id != built:
        engine.remove_untagged(built)
