"""Commands on provenance: inspect, verify, compare, repro.

Library modules are imported inside each handler (see cli/images.py).
"""

from __future__ import annotations

from pathlib import Path

from niriss_pipe.cli.buildlog import build_log
from niriss_pipe.cli.defaults import CACHE_HELP, default_cache
from niriss_pipe.cli.images import DEFAULT_SPEC, crds_server
from niriss_pipe.cli.output import emit, emit_refused
from niriss_pipe.core.errors import UserError, VerificationError, opt
from niriss_pipe.core.progress import Reporter


def add_parsers(sub, parents) -> None:
    common, building, as_json = parents.common, parents.building, parents.json
    p = sub.add_parser("inspect", parents=[common, as_json],
                       help="what an image holds and how it was built (labels + one offline run)")
    p.add_argument("image", metavar="IMAGE")
    p.set_defaults(handler=inspect)

    p = sub.add_parser("verify", parents=[common, building, as_json],  # --rebuild builds
                       help="check an image against its lock, its labels, its self-test, its "
                       "context and (--upstream) its packages' own unit tests")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--no-selftest", action="store_true",
                   help="only the environment and reference checks")
    p.add_argument("--upstream", action="store_true",
                   help="also run the unit tests jwst (stcal, stdatamodels, stpipe) ship, in a "
                   "derived test image, offline")
    p.add_argument("--suite", choices=("quick", "full"), default="quick",
                   help="quick: detector1 steps and NIRISS modes (AMI, SOSS, WFSS, imaging); "
                   "full: every shipped test")
    p.add_argument("--only", nargs="+", default=[], metavar="MODULE",
                   help="instead of a suite, the tests of these modules (e.g. jwst.linearity)")
    p.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="pytest-xdist workers (default: every CPU the container gets)")
    p.add_argument("--junit", type=Path, metavar="FILE",
                   help="also write the tests' JUnit XML here (it is kept beside the build "
                   "record anyway)")
    p.add_argument("--rebuild-test-image", action="store_true",
                   help="build the test image again even when it exists")
    p.add_argument("--rebuild", action="store_true",
                   help="also rebuild its spec from its lock with no layer cache and check that "
                   "the result is the same image, bit for bit")
    p.add_argument("--spec", type=Path, metavar="SPEC",
                   help="the spec it was built from, for --rebuild and the test lock (default: "
                   "images/ and the image's spec label)")
    p.set_defaults(handler=verify)

    p = sub.add_parser("check", parents=[common, as_json],
                       help="check a context against an image's jwst: the reference types its "
                       "steps declare, and the cached references opened with its datamodels")
    p.add_argument("target", metavar="IMAGE|SPEC")
    p.add_argument("--context", metavar="PMAP", help="the context (default: the image's own)")
    p.add_argument("--cache", type=Path, default=default_cache(),
                   help=f"host CRDS cache holding the context {CACHE_HELP}")
    p.set_defaults(handler=check)

    p = sub.add_parser("compare", parents=[common, as_json],
                       help="two images: the same id, or which config fields, layers and files "
                       "differ")
    p.add_argument("first", metavar="IMAGE")
    p.add_argument("second", metavar="IMAGE")
    p.set_defaults(handler=compare)

    p = sub.add_parser("repro", parents=[common, building],
                       help="build a spec twice with no layer cache and compare the results")
    p.add_argument("spec", type=Path, nargs="?", default=DEFAULT_SPEC, metavar="SPEC")
    p.add_argument("--keep", type=Path, metavar="DIR",
                   help="work in DIR (spec copy, self-test products) and keep it")
    p.set_defaults(handler=repro)



def inspect(args, reporter: Reporter) -> int:
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.inspect import format_inspection, inspect_image

    info = inspect_image(Engine(reporter), args.image)
    if args.json:
        emit(info)
    else:
        reporter.say(format_inspection(info))
    return 0


def verify(args, reporter: Reporter) -> int:
    from niriss_pipe.build.options import BuildOptions
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.rebuild import rebuild_image
    from niriss_pipe.provenance.upstream import UpstreamOptions, check_options
    from niriss_pipe.provenance.verify import (
        VerifyOptions,
        raise_for,
        verified_line,
        verify_image,
    )

    upstream = None
    if args.upstream or args.only:
        upstream = UpstreamOptions(suite=args.suite, only=tuple(args.only), jobs=args.jobs,
                                   spec=args.spec, ca_bundle=args.ca_bundle, junit=args.junit,
                                   rebuild=args.rebuild_test_image)
        check_options(upstream)  # before the engine: the self-test and the run take minutes
    elif args.junit is not None:
        raise UserError(f"{opt('junit')} writes the JUnit XML of the packages' own tests, "
                        f"and none run without {opt('upstream')} (or {opt('only')}).",
                        f"add {opt('upstream')}, or leave out {opt('junit')}.")
    engine = Engine(reporter)
    report = verify_image(engine, args.image,
                          VerifyOptions(selftest=not args.no_selftest, cache=args.cache,
                                        upstream=upstream))
    document = report.as_json()
    try:
        raise_for(report)
        if args.rebuild:
            options = BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache,
                                   crds_server=crds_server(args.server), wheels=args.wheels)
            rebuild_image(engine, args.image, options, args.spec)
            document["rebuild"] = "identical"
    except VerificationError as err:
        if args.json:  # the checks as they came out, and the error paragraph
            emit_refused({**document, "verified": False}, err)
        raise
    if args.json:
        emit(document)
    reporter.say(verified_line(report))
    return 0


def check(args, reporter: Reporter) -> int:
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.contextcheck import check_target

    result = check_target(Engine(reporter), args.target, args.context, args.cache)
    try:
        result.raise_for()
    except VerificationError as err:
        if args.json:  # one document: the result and the error paragraph
            emit_refused(result.as_json(), err)
        raise
    if args.json:
        emit(result.as_json())
    return 0


def _check(check) -> dict:
    return {"name": check.name, "ok": check.ok, "summary": check.summary}


def compare(args, reporter: Reporter) -> int:
    from dataclasses import asdict

    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.imagediff import compare_images
    from niriss_pipe.provenance.inspect import get_image

    engine = Engine(reporter)
    first, second = (get_image(engine, name).id for name in (args.first, args.second))
    diff = compare_images(engine, first, second)
    if args.json:
        emit({**asdict(diff), "same": diff.same})
    else:
        reporter.say(f"{args.first} and {args.second}:")
        for line in diff.lines():
            reporter.say(line)
    return 0 if diff.same else 1


def repro(args, reporter: Reporter) -> int:
    from niriss_pipe.build.options import BuildOptions
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.repro import check_spec, repro

    spec = check_spec(args.spec)  # the spec and its lock, before the engine and the log
    options = BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache,
                           crds_server=crds_server(args.server), wheels=args.wheels)
    engine = Engine(reporter)  # as build: no log for a command refused before any work
    with build_log(reporter, f"repro-{spec.path.stem}"):
        repro(args.spec, engine, options, keep=args.keep)
    return 0
