"""Command line: ``python build.py <command>`` or ``niriss-pipe <command>``.

User errors print one paragraph and exit 2 (engine and build failures exit 1);
only bugs show a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import __version__
from .errors import UserError
from .progress import Reporter

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
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", parents=[common], help="check specs; print tags and labels")
    p.add_argument("specs", nargs="+", type=Path, metavar="SPEC")
    p = sub.add_parser("render", parents=[common, building], help="print the Dockerfile of a spec")
    p.add_argument("spec", type=Path, metavar="SPEC")
    p = sub.add_parser("build", parents=[common, building],
                       help="build, self-test and tag images from specs")
    p.add_argument("specs", nargs="*", type=Path, metavar="SPEC",
                   help=f"image specs (default: {DEFAULT_SPEC})")
    p.add_argument("--force", action="store_true", help="build even if the content tag exists")
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
    p = sub.add_parser("clean", parents=[common],
                       help="remove images, demo output and synthetic contexts this tool made")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument("--cache", type=Path, default=Path("crds_cache"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    reporter = Reporter(verbose=args.verbose)
    try:
        return COMMANDS[args.command](args, reporter) or 0
    except UserError as err:
        print(f"error: {err.paragraph()}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted: no tag was changed", file=sys.stderr)
        return 130


def _validate(args, reporter: Reporter) -> int:
    from . import render
    from .spec import load_spec

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


def _render(args, reporter: Reporter) -> int:
    from .builder import BuildOptions, prepare
    from .spec import load_spec

    context = prepare(load_spec(args.spec), BuildOptions(ca_bundle=args.ca_bundle,
                                                          cache=args.cache))
    sys.stdout.write(context.dockerfile)
    return 0


def _build(args, reporter: Reporter) -> int:
    from .builder import BuildOptions, build
    from .engine import Engine
    from .spec import load_spec

    specs = [load_spec(path) for path in (args.specs or [DEFAULT_SPEC])]  # all valid first
    engine = Engine(reporter)
    options = BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache,
                           selftest=not args.no_selftest, force=args.force,
                           no_cache=args.no_cache)
    for spec in specs:
        build(spec, engine, options)
    return 0


def _base(args, reporter: Reporter) -> int:
    from .base import make_debootstrap_base
    from .engine import Engine
    from .spec import load_spec

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
    from .builder import run_selftest
    from .engine import Engine

    engine = Engine(reporter)
    if engine.image_id(args.image) is None:
        raise UserError(f"no image '{args.image}' in the local engine.",
                        "build it first: python build.py build SPEC")
    run_selftest(engine, args.image)
    return 0


def _demo(args, reporter: Reporter) -> int:
    from .builder import BuildOptions
    from .demo import run_demo
    from .engine import Engine
    from .spec import load_spec

    spec = load_spec(args.spec)
    run_demo(spec, Engine(reporter), BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache))
    return 0


def _clean(args, reporter: Reporter) -> int:
    from .clean import clean
    from .engine import Engine

    clean(Engine(reporter), cache=args.cache, dry_run=args.dry_run)
    return 0


COMMANDS = {
    "validate": _validate,
    "render": _render,
    "build": _build,
    "base": _base,
    "selftest": _selftest,
    "demo": _demo,
    "clean": _clean,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
