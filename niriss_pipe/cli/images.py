"""Commands that make and run images: validate, new, lock, render, build, base, selftest,
demo, clean.

Library modules are imported inside each handler: a command loads only what it uses (the
docker SDK and crds take a second to import), so ``validate`` or ``--help`` stay instant.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from niriss_pipe.cli.buildlog import build_log
from niriss_pipe.cli.defaults import CACHE_HELP, default_cache
from niriss_pipe.cli.output import emit
from niriss_pipe.core.errors import UserError, prog, shown_path
from niriss_pipe.core.progress import Reporter, short_path

DEFAULT_SPEC = Path("images/default.yaml")


def add_parsers(sub, parents) -> None:
    common, building, as_json = parents.common, parents.building, parents.json
    p = sub.add_parser("validate", parents=[common, as_json],
                       help="check specs; print tags and labels")
    p.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    p.set_defaults(handler=validate)

    p = sub.add_parser("new", parents=[common],
                       help="write a spec for a pmap or a jwst release from the release catalog")
    p.add_argument("--pmap", help="e.g. jwst_0579 (or jwst_0579.pmap): the newest release "
                   "tested at or below it")
    p.add_argument("--jwst", metavar="VERSION",
                   help="e.g. 1.12.5: with its tested context (or with --pmap, that pair)")
    p.add_argument("--from", type=Path, dest="product", metavar="PRODUCT.fits",
                   help="the jwst release and context a calibrated product was made with "
                   "(its CAL_VER and CRDS_CTX)")
    p.add_argument("--list", action="store_true",
                   help="print the release catalog: release, date, context, Python")
    p.add_argument("-o", "--output", type=Path,
                   help="write the spec here (default: images/<pmap stem>.yaml); - for stdout")
    p.add_argument("--force", action="store_true", help="overwrite an existing spec")
    p.set_defaults(handler=new)

    p = sub.add_parser("lock", parents=[common],
                       help="resolve a spec's environment with hashes, as of its jwst release "
                       "(and its test lock: the test-only dependencies, for verify --upstream)")
    p.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    p.add_argument("--upgrade", action="store_true",
                   help="re-resolve even when the lock is up to date")
    p.add_argument("--exclude-newer", metavar="YYYY-MM-DD",
                   help="resolve as of this day instead of the day after the jwst release")
    p.set_defaults(handler=lock)

    p = sub.add_parser("render", parents=[common, building], help="print the Dockerfile of a spec")
    p.add_argument("spec", type=Path, metavar="SPEC")
    p.set_defaults(handler=render)

    p = sub.add_parser("build", parents=[common, building, as_json],
                       help="build, self-test and tag images from specs (the whole log goes to "
                       "build/logs/)")
    p.add_argument("specs", nargs="*", type=Path, metavar="SPEC",
                   help=f"image specs (default: {DEFAULT_SPEC})")
    p.add_argument("--force", action="store_true", help="build even if the content tag exists")
    p.add_argument("--all", action="store_true",
                   help="every spec in images/ that has a fresh lock (the others are named)")
    p.add_argument("--no-cache", action="store_true",
                   help="rebuild every layer from the base (implies --force)")
    p.add_argument("--no-selftest", action="store_true",
                   help="tag without running the image's self-test (not recommended)")
    p.add_argument("--offline", action="store_true",
                   help="no network in any build step and no download: only verified files "
                   "already on this host ('fetch' first)")
    p.set_defaults(handler=build)

    p = sub.add_parser("fetch", parents=[common],
                       help="download the verified wheels a spec's lock names (and uv) and "
                       "its OS packages, for builds with no network")
    p.add_argument("spec", type=Path, metavar="SPEC", nargs="?", default=DEFAULT_SPEC)
    p.add_argument("--to", type=Path, default=None, metavar="DIR",
                   help="a folder to carry elsewhere: the wheels, and the OS packages in its "
                   "os-packages/ (default: the host's caches, $XDG_CACHE_HOME/niriss-pipe/"
                   "wheels and .../os-packages)")
    p.set_defaults(handler=fetch)

    p = sub.add_parser("base", parents=[common],
                       help="make a spec's base image from Debian's mirror (debootstrap)")
    p.add_argument("spec", type=Path, metavar="SPEC", nargs="?", default=DEFAULT_SPEC)
    carry = p.add_mutually_exclusive_group()
    carry.add_argument("--save", type=Path, metavar="FILE",
                       help="write the spec's base image (with its labels) to FILE, to carry "
                       "it to a site with no network")
    carry.add_argument("--load", type=Path, metavar="FILE",
                       help="load a base saved with --save, after checking it is the spec's")
    p.set_defaults(handler=base)

    p = sub.add_parser("selftest", parents=[common], help="run an image's self-test offline")
    p.add_argument("image", metavar="IMAGE")
    p.set_defaults(handler=selftest)

    p = sub.add_parser("demo", parents=[common, building],
                       help="build the default image and run detector1 on the bundled "
                       "synthetic exposure")
    p.add_argument("spec", type=Path, nargs="?", default=DEFAULT_SPEC, metavar="SPEC")
    p.set_defaults(handler=demo)

    p = sub.add_parser("clean", parents=[common],
                       help="remove images, demo output, synthetic contexts and the OS packages of "
                       "removed bases this tool made")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument("--cache", type=Path, default=default_cache(),
                   help=f"the cache the demo wrote its synthetic context into {CACHE_HELP}")
    p.set_defaults(handler=clean)


def crds_server(option: str | None) -> str:
    """--server, else $CRDS_SERVER_URL unless it is a serverless placeholder, else STScI's."""
    from niriss_pipe.crds.sync import DEFAULT_SERVER

    env = os.environ.get("CRDS_SERVER_URL", "")
    return option or (env if env and "serverless" not in env else DEFAULT_SERVER)


def validate(args, reporter: Reporter) -> int:
    from niriss_pipe.render import names
    from niriss_pipe.spec.load import load_spec

    if args.json:
        return _validate_json(args.specs, reporter)
    for path in args.specs:
        spec = load_spec(path)
        for warning in spec.warnings:
            reporter.warn(f"{path}: {warning}")
        reporter.say(f"{path}: ok -> {spec.name}:{names.pmap_tag(spec)}, "
                     f"{spec.name}:{names.full_tag(spec)}")
        if args.verbose:
            for key, value in names.labels(spec, spec.niriss_imap):
                reporter.say(f"  {key}={value}")
    return 0


def _validate_json(paths: list[Path], reporter: Reporter) -> int:
    """Every spec, valid or not (exit 2 when any is not), as one document."""
    from niriss_pipe.render import names
    from niriss_pipe.spec.load import load_spec

    results = []
    for path in paths:
        try:
            spec = load_spec(path)
        except UserError as err:
            reporter.say(f"error: {err.paragraph()}")
            results.append({"path": str(path), "ok": False, "error": err.paragraph()})
            continue
        results.append({
            "path": str(path), "ok": True, "name": spec.name, "context": spec.context,
            "tags": [f"{spec.name}:{names.pmap_tag(spec)}", f"{spec.name}:{names.full_tag(spec)}"],
            "jwst": spec.jwst.version or f"{spec.jwst.git}@{spec.jwst.ref}",
            "python": spec.python_version, "manager": spec.manager,
            "references": spec.references, "scope": spec.scope,
            "labels": dict(names.labels(spec, spec.niriss_imap)),
            "warnings": list(spec.warnings)})
    emit({"specs": results})
    return 0 if all(r["ok"] for r in results) else 2


def new(args, reporter: Reporter) -> int:
    from niriss_pipe.spec.propose import catalog_lines, for_jwst, for_pmap

    if args.list:
        reporter.say("\n".join(catalog_lines()))
        return 0
    if args.product:
        if args.pmap or args.jwst:
            raise UserError("new --from takes the release and context from the product.",
                            "give --from alone, or --pmap/--jwst without it.")
        return _new_from(args, reporter)
    if not (args.pmap or args.jwst):
        raise UserError("new needs --pmap, --jwst, --from, or --list.",
                        f"e.g. {prog()} new --pmap jwst_0579")
    proposal = for_pmap(args.pmap) if args.pmap and not args.jwst else for_jwst(args.jwst,
                                                                                args.pmap)
    _write_spec(proposal, args, reporter)
    return 0


def _new_from(args, reporter: Reporter) -> int:
    from niriss_pipe.crds.product import read_product
    from niriss_pipe.spec.propose import for_product

    product = read_product(args.product)
    proposal = for_product(product.cal_ver, product.crds_ctx)
    note = (f"From {args.product.name}: CAL_VER {product.cal_ver}, CRDS_CTX {product.crds_ctx}"
            + (f", CRDS_VER {product.crds_ver}" if product.crds_ver else "") + ".")
    reporter.say(f"{args.product}: made with jwst {product.cal_ver} and {product.crds_ctx}"
                 + (f" (crds {product.crds_ver})" if product.crds_ver else ""))
    out = _write_spec(proposal, args, reporter, note)
    if out is None:
        return 0
    reporter.say("next:\n"
                 f"  {prog()} lock {out}\n"
                 f"  {prog()} sync --for {args.product}       # its references and mappings\n"
                 f"  {prog()} build {out}\n"
                 f"  {prog()} reproduce {args.product} --input UNCAL.fits")
    return 0


def _write_spec(proposal, args, reporter: Reporter, note: str = "") -> Path | None:
    """Write (or print, for -o -) the proposal's spec; the path written, or None."""
    import yaml

    from niriss_pipe.core.atomic import write_text
    from niriss_pipe.spec.load import SPEC_FILE_RE, validate
    from niriss_pipe.spec.propose import needs_compilers, render_yaml

    proposal.compilers = needs_compilers(proposal)
    text = render_yaml(proposal, note)
    for warning in proposal.warnings:
        reporter.warn(warning)
    if str(args.output) == "-":
        sys.stdout.write(text)
        return None
    out = args.output or Path("images") / f"{proposal.context.removesuffix('.pmap')}.yaml"
    if out.exists() and not args.force:
        raise UserError(f"{shown_path(out)} exists.",
                        "give --output elsewhere, or --force to replace it.")
    if not SPEC_FILE_RE.fullmatch(out.name):
        raise UserError(f"--output {shown_path(out)}: a spec's file name names its lock and "
                        "labels.",
                        "give a name of letters, digits and . _ + - ending in .yaml.")
    validate(yaml.safe_load(text), str(out), out)  # what we write must be a valid spec
    write_text(out, text)
    reporter.say(f"wrote {out}: jwst {proposal.release.tag}, Python {proposal.python} "
                 f"({proposal.manager}), {proposal.context}")
    return out


def lock(args, reporter: Reporter) -> int:
    from niriss_pipe.runtime.contract import lock_pins
    from niriss_pipe.spec.load import load_spec
    from niriss_pipe.spec.lock import check_day, locked_commit, make_lock
    from niriss_pipe.spec.testlock import make_test_lock

    if args.exclude_newer is not None:  # before any spec is read or any resolver runs
        check_day(args.exclude_newer)
    for spec in [load_spec(path) for path in args.specs]:
        path, written = make_lock(spec, upgrade=args.upgrade, exclude_newer=args.exclude_newer,
                                  reporter=reporter)
        pins = lock_pins(path.read_text())
        what = "wrote" if written else "up to date:"
        commit = locked_commit(spec)
        jwst = f"jwst commit {commit[:12]}" if commit else f"jwst {pins.get('jwst', '?')}"
        reporter.say(f"{what} {path} ({len(pins)} packages; {jwst}, "
                     f"crds {pins.get('crds', '?')}, numpy {pins.get('numpy', '?')})")
        path, written = make_test_lock(spec, upgrade=args.upgrade)
        pins = lock_pins(path.read_text())
        what = "wrote" if written else "up to date:"
        reporter.say(f"{what} {path} ({len(pins)} test-only packages; pytest "
                     f"{pins.get('pytest', '?')})")
    return 0


def render(args, reporter: Reporter) -> int:
    from niriss_pipe.build.builder import render_dockerfile
    from niriss_pipe.build.options import BuildOptions
    from niriss_pipe.spec.load import load_spec

    sys.stdout.write(render_dockerfile(load_spec(args.spec),
                                       BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache)))
    return 0


def build(args, reporter: Reporter) -> int:
    from niriss_pipe.build.builder import build
    from niriss_pipe.build.options import BuildOptions
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.spec.load import load_spec

    if args.all:
        specs = _buildable(sorted(Path("images").glob("*.yaml")), reporter)
    else:
        specs = [load_spec(path) for path in (args.specs or [DEFAULT_SPEC])]  # all valid first
    engine = Engine(reporter)
    options = BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache,
                           crds_server=crds_server(args.server),
                           selftest=not args.no_selftest, force=args.force,
                           no_cache=args.no_cache, wheels=args.wheels,
                           offline=args.offline)
    built = []
    for spec in specs:
        with build_log(reporter, spec.path.stem) as log:
            result = build(spec, engine, options)
        built.append({"spec": str(spec.path), "image_id": result.image_id,
                      "tags": [f"{spec.name}:{tag}" for tag in result.tags],
                      "content_tag": f"{spec.name}:{result.content_tag}",
                      "built": result.built, "seconds": round(result.seconds, 1),
                      "selftest": _selftest_line(result.selftest_output),
                      "log": short_path(log)})
    if args.json:
        emit({"images": built})
    return 0


def fetch(args, reporter: Reporter) -> int:
    import time

    from niriss_pipe.build.builder import fetch as fetch_files
    from niriss_pipe.build.options import BuildOptions
    from niriss_pipe.build.wheels import cache_dir
    from niriss_pipe.core.progress import human_bytes
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.spec.load import load_spec

    spec = load_spec(args.spec)
    started = time.monotonic()
    wheels, debs = fetch_files(spec, Engine(reporter), BuildOptions(wheels=args.to),
                               progress=reporter.tty or args.verbose)  # quiet in a log
    size = sum(item.path.stat().st_size for item in wheels.values())
    where = args.to or cache_dir()
    reporter.say(f"{len(wheels)} verified wheels ({human_bytes(size)}) in {where} and "
                 f"{len(debs.files)} OS packages ({human_bytes(debs.size)}) in {debs.folder} for "
                 f"{args.spec} ({time.monotonic() - started:.1f} s); build with no network: "
                 f"{prog()} build {args.spec} --offline"
                 + (f" --wheels {args.to}" if args.to else ""))
    return 0


def _selftest_line(output: str) -> str | None:
    """``selftest: PASS (jwst 3.0.0, 12 steps, 12.5 s)`` from the self-test's output."""
    lines = [line.strip() for line in output.splitlines() if line.strip().startswith("selftest:")]
    return lines[-1] if lines else None


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


def base(args, reporter: Reporter) -> int:
    from niriss_pipe.build.base import make_debootstrap_base
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.spec.load import load_spec

    spec = load_spec(args.spec)
    if args.save or args.load:
        from niriss_pipe.build.basefile import load_base, save_base

        engine = Engine(reporter)
        if args.save:
            save_base(engine, spec.base, args.save)
        else:
            load_base(engine, spec.base, args.load)
        return 0
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
    with build_log(reporter, f"base-{spec.base.suite}"):
        make_debootstrap_base(engine, spec.base)
    return 0


def selftest(args, reporter: Reporter) -> int:
    from niriss_pipe.build.selftest import run_selftest
    from niriss_pipe.engine.client import Engine

    engine = Engine(reporter)
    if engine.image_id(args.image) is None:
        raise UserError(f"no image '{args.image}' in the local engine.",
                        f"build it first: {prog()} build SPEC")
    run_selftest(engine, args.image)
    return 0


def demo(args, reporter: Reporter) -> int:
    from niriss_pipe.build.demo import run_demo
    from niriss_pipe.build.options import BuildOptions
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.spec.load import load_spec

    spec = load_spec(args.spec)
    with build_log(reporter, f"demo-{spec.path.stem}"):
        run_demo(spec, Engine(reporter), BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache,
                                                      wheels=args.wheels))
    return 0


def clean(args, reporter: Reporter) -> int:
    from niriss_pipe.build.clean import clean
    from niriss_pipe.engine.client import Engine

    clean(Engine(reporter), cache=args.cache, dry_run=args.dry_run)
    return 0
