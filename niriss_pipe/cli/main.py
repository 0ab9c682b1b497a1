"""Command line: ``python build.py <command>`` or ``niriss-pipe <command>``.

User errors print one paragraph and exit 2 (engine and build failures exit 1);
only bugs show a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from niriss_pipe import __version__
from niriss_pipe.core.errors import UserError
from niriss_pipe.core.progress import Reporter, human_bytes

DEFAULT_SPEC = Path("images/default.yaml")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build.py", description="Build pinned, offline JWST/NIRISS pipeline images from "
        "image specs (images/*.yaml), tagged by CRDS context.")
    parser.add_argument("--version", action="version", version=f"niriss-pipe {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="show the full log")
    building = argparse.ArgumentParser(add_help=False)
    building.add_argument("--ca-bundle", metavar="PEM|none",
                          help="CA bundle to install for the build's downloads (default: from "
                          "PIP_CERT, REQUESTS_CA_BUNDLE or SSL_CERT_FILE when set)")
    building.add_argument("--cache", type=Path, default=Path("crds_cache"),
                          help="host CRDS cache (default: crds_cache/)")
    building.add_argument("--server", default=None, metavar="URL",
                          help="CRDS server a 'references: bake' spec syncs from (default: "
                          "$CRDS_SERVER_URL or https://jwst-crds.stsci.edu)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", parents=[common], help="check specs; print tags and labels")
    p.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    p = sub.add_parser("new", parents=[common],
                       help="write a spec for a pmap or a jwst release from the release catalog")
    p.add_argument("--pmap", help="e.g. jwst_0579: the newest release tested at or below it")
    p.add_argument("--jwst", metavar="VERSION",
                   help="e.g. 1.12.5: with its tested context (or with --pmap, that pair)")
    p.add_argument("-o", "--output", type=Path,
                   help="write the spec here (default: images/<pmap stem>.yaml); - for stdout")
    p.add_argument("--force", action="store_true", help="overwrite an existing spec")
    p = sub.add_parser("lock", parents=[common],
                       help="resolve a spec's environment with hashes, as of its jwst release")
    p.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    p.add_argument("--upgrade", action="store_true",
                   help="re-resolve even when the lock is up to date")
    p.add_argument("--exclude-newer", metavar="YYYY-MM-DD",
                   help="resolve as of this day instead of the day after the jwst release")
    p = sub.add_parser("render", parents=[common, building], help="print the Dockerfile of a spec")
    p.add_argument("spec", type=Path, metavar="SPEC")
    p = sub.add_parser("build", parents=[common, building],
                       help="build, self-test and tag images from specs")
    p.add_argument("specs", nargs="*", type=Path, metavar="SPEC",
                   help=f"image specs (default: {DEFAULT_SPEC})")
    p.add_argument("--force", action="store_true", help="build even if the content tag exists")
    p.add_argument("--all", action="store_true",
                   help="every spec in images/ that has a fresh lock (the others are named)")
    p.add_argument("--no-cache", action="store_true",
                   help="rebuild every layer from the base (implies --force)")
    p.add_argument("--no-selftest", action="store_true",
                   help="tag without running the image's self-test (not recommended)")
    p = sub.add_parser("base", parents=[common],
                       help="make a spec's base image from Debian's mirror (debootstrap)")
    p.add_argument("spec", type=Path, metavar="SPEC", nargs="?", default=DEFAULT_SPEC)
    p = sub.add_parser("selftest", parents=[common], help="run an image's self-test offline")
    p.add_argument("image", metavar="IMAGE")
    p = sub.add_parser("demo", parents=[common, building],
                       help="build the default image and run detector1 on the bundled "
                       "synthetic exposure")
    p.add_argument("spec", type=Path, nargs="?", default=DEFAULT_SPEC, metavar="SPEC")
    p = sub.add_parser("sync", parents=[common],
                       help="fill a CRDS cache for a context with the real crds client")
    p.add_argument("spec", type=Path, nargs="?", metavar="SPEC",
                   help="take the context from this spec (or give --context)")
    p.add_argument("--context", metavar="PMAP", help="the pipeline context, e.g. jwst_1584.pmap")
    p.add_argument("--cache", type=Path, default=Path("crds_cache"),
                   help="the CRDS cache to fill (default: crds_cache/)")
    p.add_argument("--references", choices=("none", "instrument", "datasets"),
                   default="instrument", help="none: mappings only; instrument: all NIRISS "
                   "references of the context (default); datasets: only those --datasets select")
    p.add_argument("--datasets", type=Path, nargs="+", default=[], metavar="FITS|DIR",
                   help="exposures (or folders of *_uncal.fits) for --references datasets")
    p.add_argument("--server", default=None, metavar="URL",
                   help="CRDS server (default: $CRDS_SERVER_URL or https://jwst-crds.stsci.edu)")
    p.add_argument("-j", "--jobs", type=int, default=8, help="parallel downloads (default 8)")
    p.add_argument("-y", "--yes", action="store_true",
                   help="do not ask before downloading more than 5 GiB")
    p.add_argument("--verify", action="store_true",
                   help="re-check every cached file's sha1 against the server; re-fetch bad ones")
    p = sub.add_parser("verify-cache", parents=[common],
                       help="offline: check every file a sync verified against its recorded sha1")
    p.add_argument("--cache", type=Path, default=Path("crds_cache"))
    p = sub.add_parser("cache", parents=[common],
                       help="list what a CRDS cache holds; prune what no kept context needs")
    p.add_argument("--cache", type=Path, default=Path("crds_cache"))
    p.add_argument("--prune", action="store_true",
                   help="remove mappings and references that no --keep context uses")
    p.add_argument("--keep", nargs="+", default=[], metavar="SPEC|PMAP",
                   help="contexts to keep, as specs or pmap names (default: every spec in "
                   "images/)")
    p.add_argument("--dry-run", action="store_true", help="with --prune: only list")
    p = sub.add_parser("inspect", parents=[common],
                       help="what an image holds and how it was built (labels + one offline run)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p = sub.add_parser("verify", parents=[common],
                       help="check an image against its lock, its labels and its self-test")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--no-selftest", action="store_true",
                   help="only the environment and reference checks")
    p = sub.add_parser("repro", parents=[common, building],
                       help="build a spec twice with no layer cache and compare the results")
    p.add_argument("spec", type=Path, nargs="?", default=DEFAULT_SPEC, metavar="SPEC")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="work in DIR (spec copy, self-test products) and keep it")
    p = sub.add_parser("export", parents=[common],
                       help="write an image as files for Podman, Charliecloud or Apptainer")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--to", required=True, metavar="FORMAT", dest="format",
                   help="docker-archive, oci, dir (Charliecloud), squashfs (Charliecloud) or "
                   "sif (Apptainer; without it installed: the archive and a build script)")
    p.add_argument("-o", "--output", type=Path, metavar="PATH",
                   help="where to write (default: the image's name, e.g. "
                   "niriss-pipe_jwst_1584.sqfs, in the current folder)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing output once the new one is complete")
    _batch_parser(sub, common)
    p = sub.add_parser("clean", parents=[common],
                       help="remove images, demo output and synthetic contexts this tool made")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument("--cache", type=Path, default=Path("crds_cache"))
    return parser


def _batch_parser(sub, common) -> None:
    """``batch submit|status|wait|retry|cancel``: SLURM job arrays (or local workers)."""
    batch = sub.add_parser("batch", help="run a pipeline over many exposures: SLURM job array "
                           "or local workers; status, wait, retry, cancel")
    actions = batch.add_subparsers(dest="action", required=True, metavar="ACTION")
    workers = argparse.ArgumentParser(add_help=False)
    workers.add_argument("--local", action="store_true",
                         help="run the tasks on this machine instead of submitting to SLURM")
    workers.add_argument("-j", "--jobs", default=2, metavar="N",
                         help="parallel tasks with --local (default: 2)")
    workers.add_argument("--dry-run", action="store_true",
                         help="print the scripts and the sbatch command; write and run nothing")
    p = actions.add_parser("submit", parents=[common, workers],
                           help="write the batch folder and submit its job array")
    p.add_argument("image", metavar="IMAGE",
                   help="docker: a tag or id; podman: a docker-archive/OCI file or a podman "
                   "image; charliecloud: an exported dir or .sqfs; apptainer: a .sif")
    p.add_argument("pipeline", metavar="PIPELINE",
                   help="strun alias or class: calwebb_detector1, calwebb_image2, ...")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="exposure files, globs (quoted) or @LIST files (one path per line)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="the batch folder (new or empty): scripts, logs/, state/, products/")
    p.add_argument("--cache", type=Path, default=Path("crds_cache"),
                   help="the shared CRDS cache, mounted read-only (default: crds_cache/)")
    p.add_argument("--runtime", default="docker",
                   help="docker (default), podman, charliecloud or apptainer")
    p.add_argument("--context", metavar="PMAP",
                   help="CRDS context other than the image's own (e.g. jwst_9999.pmap, the "
                   "synthetic one)")
    p.add_argument("--strun-arg", action="append", default=[], metavar="ARG",
                   help="extra strun argument, repeatable (e.g. --strun-arg=--steps.jump."
                   "rejection_threshold=5)")
    p.add_argument("--partition", help="#SBATCH --partition (one, or a comma-separated list)")
    p.add_argument("--account", help="#SBATCH --account to charge")
    p.add_argument("--qos", help="#SBATCH --qos")
    p.add_argument("--time", help="#SBATCH --time per task, e.g. 01:00:00")
    p.add_argument("--mem", help="#SBATCH --mem per task, e.g. 8G")
    p.add_argument("--cpus", default=1, metavar="N",
                   help="#SBATCH --cpus-per-task (default: 1)")
    p.add_argument("--throttle", metavar="N", help="at most N tasks at once (--array=...%%N)")
    p.add_argument("--job-name", default="niriss-pipe", help="#SBATCH --job-name")
    p.add_argument("--sbatch", action="append", default=[], metavar="OPTION",
                   help="an extra #SBATCH option, repeatable, its value attached "
                   "(e.g. --sbatch=--constraint=haswell); not those the batch sets")
    p = actions.add_parser("status", parents=[common], help="each task's state and a summary")
    p.add_argument("folder", type=Path, metavar="DIR")
    p.add_argument("--json", action="store_true", help="machine-readable")
    p = actions.add_parser("wait", parents=[common],
                           help="wait until every task has ended, then report as status")
    p.add_argument("folder", type=Path, metavar="DIR")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="give up waiting after this long (the jobs keep running)")
    p = actions.add_parser("retry", parents=[common, workers],
                           help="resubmit only the tasks that failed, were killed or lost")
    p.add_argument("folder", type=Path, metavar="DIR")
    p = actions.add_parser("cancel", parents=[common],
                           help="scancel the batch's jobs; tasks stop their containers")
    p.add_argument("folder", type=Path, metavar="DIR")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    reporter = Reporter(verbose=args.verbose)
    try:
        return COMMANDS[args.command](args, reporter) or 0
    except UserError as err:
        print(f"error: {err.display(_terminal_width(sys.stderr))}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing half-done was kept (tags move and cache files take their "
              "names only when complete)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader left; say nothing more
        _silence_stdout()
        return 141
    except OSError as exc:  # a path the user gave that the system refused (read-only, full...)
        print(f"error: {os_error_paragraph(exc)}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


OS_FIXES = {  # errno name -> what to do
    "EACCES": "check its permissions (ls -ld), or give a path you can write.",
    "EPERM": "check its permissions (ls -ld), or give a path you can write.",
    "EROFS": "it is on a read-only file system: give a path on a writable one.",
    "ENOSPC": "the disk is full: free space there (df -h), or give a path on another disk.",
    "EDQUOT": "your disk quota is used up: free space, or give a path on another disk.",
    "ENOENT": "check that the path (and its folder) exists.",
    "ENOTDIR": "a part of the path is a file, not a folder: fix the path.",
    "EISDIR": "it is a folder where a file is expected: give a file path.",
    "EEXIST": "it exists already: remove it or give another path.",
    "ENOTEMPTY": "the folder is not empty: empty it or give another path.",
    "ENAMETOOLONG": "the name is too long for the file system: use a shorter path.",
}


def os_error_paragraph(exc: OSError) -> str:
    """One paragraph for an OSError on a user's path: what, where, the system's words, a fix."""
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    where = f" {exc.filename}" if exc.filename else ""
    if exc.filename2:
        where += f" -> {exc.filename2}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = OS_FIXES.get(name, "check the path and its permissions, then try again.")
    return f"cannot use{where}: {reason}{f' ({name})' if name else ''}. Fix: {fix}"


def _terminal_width(stream) -> int | None:
    """Wrap messages for a terminal only; pipes and logs get whole lines to grep."""
    import shutil

    return shutil.get_terminal_size().columns - len("error: ") if stream.isatty() else None


def _validate(args, reporter: Reporter) -> int:
    from niriss_pipe.render import dockerfile as render
    from niriss_pipe.spec.load import load_spec

    for path in args.specs:
        spec = load_spec(path)
        for warning in spec.warnings:
            reporter.warn(f"{path}: {warning}")
        reporter.say(f"{path}: ok -> {spec.name}:{render.pmap_tag(spec)}, "
                     f"{spec.name}:{render.full_tag(spec)}")
        if args.verbose:
            for key, value in render.labels(spec, spec.niriss_imap):
                reporter.say(f"  {key}={value}")
    return 0


def _new(args, reporter: Reporter) -> int:
    import yaml

    from niriss_pipe.core.atomic import write_text
    from niriss_pipe.spec.load import SPEC_FILE_RE, validate
    from niriss_pipe.spec.propose import for_jwst, for_pmap, needs_compilers, render_yaml

    if not (args.pmap or args.jwst):
        raise UserError("new needs --pmap, --jwst, or both.",
                        "e.g. python build.py new --pmap jwst_0579")
    proposal = for_pmap(args.pmap) if args.pmap and not args.jwst else for_jwst(args.jwst,
                                                                                args.pmap)
    proposal.compilers = needs_compilers(proposal)
    text = render_yaml(proposal)
    for warning in proposal.warnings:
        reporter.warn(warning)
    if str(args.output) == "-":
        sys.stdout.write(text)
        return 0
    out = args.output or Path("images") / f"{proposal.context.removesuffix('.pmap')}.yaml"
    if out.exists() and not args.force:
        raise UserError(f"{out} exists.", "give --output elsewhere, or --force to replace it.")
    if not SPEC_FILE_RE.fullmatch(out.name):
        raise UserError(f"--output {out}: a spec's file name names its lock and labels.",
                        "give a name of letters, digits and . _ + - ending in .yaml.")
    validate(yaml.safe_load(text), str(out), out)  # what we write must be a valid spec
    write_text(out, text)
    reporter.say(f"wrote {out}: jwst {proposal.release.tag}, Python {proposal.python} "
                 f"({proposal.manager}), {proposal.context}")
    return 0


def _lock(args, reporter: Reporter) -> int:
    from niriss_pipe.spec.load import load_spec
    from niriss_pipe.spec.lock import make_lock, pinned

    for spec in [load_spec(path) for path in args.specs]:
        path, written = make_lock(spec, upgrade=args.upgrade, exclude_newer=args.exclude_newer,
                                  reporter=reporter)
        pins = pinned(path)
        what = "wrote" if written else "up to date:"
        reporter.say(f"{what} {path} ({len(pins)} packages; jwst {pins.get('jwst', '?')}, "
                     f"crds {pins.get('crds', '?')}, numpy {pins.get('numpy', '?')})")
    return 0


def _render(args, reporter: Reporter) -> int:
    from niriss_pipe.build.builder import BuildOptions, render_dockerfile
    from niriss_pipe.spec.load import load_spec

    sys.stdout.write(render_dockerfile(load_spec(args.spec),
                                       BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache)))
    return 0


def _build(args, reporter: Reporter) -> int:
    from niriss_pipe.build.builder import BuildOptions, build
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.spec.load import load_spec

    if args.all:
        specs = _buildable(sorted(Path("images").glob("*.yaml")), reporter)
    else:
        specs = [load_spec(path) for path in (args.specs or [DEFAULT_SPEC])]  # all valid first
    engine = Engine(reporter)
    options = BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache,
                           crds_server=_crds_server(args.server),
                           selftest=not args.no_selftest, force=args.force,
                           no_cache=args.no_cache)
    for spec in specs:
        build(spec, engine, options)
    return 0


def _buildable(paths: list[Path], reporter: Reporter) -> list:
    """The specs among ``paths`` that can be built here: valid, with a fresh lock."""
    from niriss_pipe.core.errors import SpecError
    from niriss_pipe.spec.load import load_spec
    from niriss_pipe.spec.lock import check

    specs = []
    for path in paths:
        spec = load_spec(path)
        try:
            check(spec)
        except SpecError as err:
            reporter.warn(f"skipping {path}: {err.what}")
            continue
        specs.append(spec)
    return specs


def _base(args, reporter: Reporter) -> int:
    from niriss_pipe.build.base import make_debootstrap_base
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.spec.load import load_spec

    spec = load_spec(args.spec)
    if not spec.base.debootstrap:
        raise UserError(f"{args.spec}: field 'base.image': the base {spec.base.image} is pulled "
                        "from a registry, not made locally.",
                        f"run 'docker pull {spec.base.image}', or remove 'base.image' from the "
                        "spec to make the base with debootstrap.")
    engine = Engine(reporter)
    existing = engine.image_id(spec.base.reference)
    if existing:
        reporter.say(f"{spec.base.reference} already exists ({existing[7:19]}); remove it "
                     f"(docker rmi {spec.base.reference}) to make it anew.")
        return 0
    make_debootstrap_base(engine, spec.base)
    return 0


def _selftest(args, reporter: Reporter) -> int:
    from niriss_pipe.build.builder import run_selftest
    from niriss_pipe.engine.client import Engine

    engine = Engine(reporter)
    if engine.image_id(args.image) is None:
        raise UserError(f"no image '{args.image}' in the local engine.",
                        "build it first: python build.py build SPEC")
    run_selftest(engine, args.image)
    return 0


def _demo(args, reporter: Reporter) -> int:
    from niriss_pipe.build.builder import BuildOptions
    from niriss_pipe.build.demo import run_demo
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.spec.load import load_spec

    spec = load_spec(args.spec)
    run_demo(spec, Engine(reporter), BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache))
    return 0


def _crds_server(option: str | None) -> str:
    """--server, else $CRDS_SERVER_URL unless it is a serverless placeholder, else STScI's."""
    import os

    from niriss_pipe.crds.sync import DEFAULT_SERVER

    env = os.environ.get("CRDS_SERVER_URL", "")
    return option or (env if env and "serverless" not in env else DEFAULT_SERVER)


def _sync(args, reporter: Reporter) -> int:
    from niriss_pipe.crds.sync import SyncRequest, sync
    from niriss_pipe.spec.load import load_spec

    context = args.context or (load_spec(args.spec).context if args.spec else None)
    if context is None:
        raise UserError("no context to sync.", "give a spec (python build.py sync "
                        "images/default.yaml) or --context jwst_NNNN.pmap.")
    result = sync(SyncRequest(context=context, cache=args.cache, scope=args.references,
                              datasets=tuple(args.datasets), server=_crds_server(args.server),
                              jobs=args.jobs, assume_yes=args.yes, verify=args.verify),
                  reporter)
    reporter.say(f"{args.cache}: {context} ready offline ({len(result.reference_names)} "
                 f"references); mount it with -v {args.cache.resolve()}:/crds:ro")
    return 0


def _verify_cache(args, reporter: Reporter) -> int:
    from niriss_pipe.core.errors import os_error
    from niriss_pipe.crds.paths import check_readable

    check_readable(args.cache)
    try:
        return _verify_cache_checks(args.cache, reporter)
    except OSError as exc:
        raise os_error(exc, "--cache", "make the cache readable by this user (or run as its "
                       "owner), then check it again.") from None


def _verify_cache_checks(cache: Path, reporter: Reporter) -> int:
    """Every context complete (mappings and the references its scope needs), then every
    recorded file against its verified sha1."""
    from niriss_pipe.core.errors import VerificationError
    from niriss_pipe.crds import hostcache as crdscache
    from niriss_pipe.crds.download import Manifest
    from niriss_pipe.crds.sync import MANIFEST

    incomplete = []
    for pmap in crdscache.contexts(cache):
        state = crdscache.status(cache, pmap)
        reporter.say(f"  {pmap}: {crdscache.describe(state, cache)}")
        if not state.complete:
            incomplete.append(state)
    if incomplete:
        first = incomplete[0]
        raise VerificationError(
            f"{len(incomplete)} context{'s' if len(incomplete) > 1 else ''} in {cache} cannot "
            f"be served offline: {first.context}: {first.missing_text()}.",
            "; ".join(state.sync_command(str(cache)) for state in incomplete)
            + " (a sync fetches only what is missing).")
    manifest = Manifest(cache / MANIFEST, cache)
    if not manifest.entries:
        raise UserError(f"{cache} has no record of verified downloads ({MANIFEST}).",
                        "fill it with python build.py sync, or check it against the server with "
                        "python build.py sync --verify.")
    problems = manifest.problems()
    for key, problem in problems.items():
        reporter.say(f"  {key}: {problem}")
    if problems:
        raise VerificationError(f"{len(problems)} of {len(manifest.entries)} files in {cache} "
                                "fail verification.", "repair them with python build.py sync "
                                "--verify (re-fetches only those).")
    reporter.say(f"{cache}: all {len(manifest.entries)} recorded files verified")
    return 0


def _cache(args, reporter: Reporter) -> int:
    from niriss_pipe.core.errors import os_error
    from niriss_pipe.crds.paths import check_readable

    check_readable(args.cache)
    try:
        return _cache_listing(args, reporter)
    except OSError as exc:
        raise os_error(exc, "--cache", "make the cache readable (and writable to prune) by this "
                       "user, or run as its owner.") from None


def _cache_listing(args, reporter: Reporter) -> int:
    from niriss_pipe.crds import record as syncrecord
    from niriss_pipe.crds.report import format_summary, summarize, unneeded
    from niriss_pipe.spec.load import load_spec

    if not args.prune:
        reporter.say(format_summary(args.cache, summarize(args.cache)))
        return 0
    if args.keep:
        keep = [item if item.endswith(".pmap") else load_spec(item).context for item in args.keep]
    else:  # every shipped spec's context that this cache holds
        held = {p.name for p in (args.cache / "mappings" / "jwst").glob("*.pmap")}
        keep = sorted({load_spec(p).context for p in Path("images").glob("*.yaml")} & held)
    doomed = unneeded(args.cache, keep)
    total = sum(p.stat().st_size for p in doomed)
    for path in doomed:
        if not args.dry_run:
            path.unlink()
        reporter.detail(f"{'would remove' if args.dry_run else 'removed'} {path}")
    if not args.dry_run:
        syncrecord.forget(args.cache, [p.name for p in doomed if p.suffix == ".pmap"])
    reporter.say(f"{'would remove' if args.dry_run else 'removed'} {len(doomed)} files "
                 f"({human_bytes(total)}) not used by {', '.join(keep) or 'any kept context'}")
    return 0


def _clean(args, reporter: Reporter) -> int:
    from niriss_pipe.build.clean import clean
    from niriss_pipe.engine.client import Engine

    clean(Engine(reporter), cache=args.cache, dry_run=args.dry_run)
    return 0


def _inspect(args, reporter: Reporter) -> int:
    import json

    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.core import format_inspection, inspect_image

    info = inspect_image(Engine(reporter), args.image)
    reporter.say(json.dumps(info, indent=2, sort_keys=True) if args.json
                 else format_inspection(info))
    return 0


def _verify(args, reporter: Reporter) -> int:
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.core import verify_image

    verify_image(Engine(reporter), args.image, selftest=not args.no_selftest)
    return 0


def _repro(args, reporter: Reporter) -> int:
    from niriss_pipe.build.builder import BuildOptions
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.repro import repro

    options = BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache,
                           crds_server=_crds_server(args.server))
    repro(args.spec, Engine(reporter), options, keep=args.keep)
    return 0


def _export(args, reporter: Reporter) -> int:
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.export.core import check_format, export_image

    check_format(args.format)  # before connecting to the engine
    export_image(Engine(reporter), args.image, args.format, args.output, force=args.force,
                 reporter=reporter)
    return 0



def _batch(args, reporter: Reporter) -> int:
    from niriss_pipe.batch import service as batch

    if args.action == "submit":
        from niriss_pipe.batch.plan import SlurmOptions

        request = batch.BatchRequest(
            image=args.image, pipeline=args.pipeline, inputs=tuple(args.inputs),
            output=args.output, cache=args.cache, runtime=args.runtime, context=args.context,
            strun_args=tuple(args.strun_arg),
            slurm=SlurmOptions(partition=args.partition, account=args.account, qos=args.qos,
                               time=args.time, mem=args.mem, cpus=args.cpus,
                               throttle=args.throttle, extra=tuple(args.sbatch),
                               job_name=args.job_name))
        return batch.submit(request, reporter, local=args.local, workers=args.jobs,
                            dry_run=args.dry_run)
    if args.action == "status":
        return batch.status(args.folder, reporter, as_json=args.json)
    if args.action == "wait":
        return batch.wait(args.folder, reporter, timeout=args.timeout)
    if args.action == "retry":
        return batch.retry(args.folder, reporter, local=args.local, workers=args.jobs,
                           dry_run=args.dry_run)
    return batch.cancel(args.folder, reporter)


COMMANDS = {
    "validate": _validate,
    "new": _new,
    "lock": _lock,
    "render": _render,
    "build": _build,
    "base": _base,
    "selftest": _selftest,
    "demo": _demo,
    "sync": _sync,
    "cache": _cache,
    "verify-cache": _verify_cache,
    "clean": _clean,
    "batch": _batch,
    "inspect": _inspect,
    "verify": _verify,
    "repro": _repro,
    "export": _export,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

