"""Commands on provenance: inspect, verify, repro.

Library modules are imported inside each handler (see cli/images.py).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from niriss_pipe.cli.images import DEFAULT_SPEC, crds_server
from niriss_pipe.core.progress import Reporter


def add_parsers(sub, parents) -> None:
    common, building = parents.common, parents.building
    p = sub.add_parser("inspect", parents=[common],
                       help="what an image holds and how it was built (labels + one offline run)")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(handler=inspect)

    p = sub.add_parser("verify", parents=[common],
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
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON (progress goes to stderr)")
    p.add_argument("--junit", type=Path, metavar="FILE",
                   help="also write the tests' JUnit XML here (it is kept beside the build "
                   "record anyway)")
    p.add_argument("--spec", type=Path, metavar="SPEC",
                   help="the spec the image was built from, for its test lock (default: "
                   "images/<its spec label>)")
    p.add_argument("--cache", type=Path, default=Path("crds_cache"),
                   help="host CRDS cache to check the image's context against (default: "
                   "crds_cache/)")
    p.add_argument("--ca-bundle", metavar="PEM|none",
                   help="CA bundle for the test image's downloads (as for build)")
    p.add_argument("--rebuild-test-image", action="store_true",
                   help="build the test image again even when it exists")
    p.set_defaults(handler=verify)

    p = sub.add_parser("check", parents=[common],
                       help="check a context against an image's jwst: the reference types its "
                       "steps declare, and the cached references opened with its datamodels")
    p.add_argument("target", metavar="IMAGE|SPEC")
    p.add_argument("--context", metavar="PMAP", help="the context (default: the image's own)")
    p.add_argument("--cache", type=Path, default=Path("crds_cache"),
                   help="host CRDS cache holding the context (default: crds_cache/)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=check)

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
    reporter.say(json.dumps(info, indent=2, sort_keys=True) if args.json
                 else format_inspection(info))
    return 0


def verify(args, reporter: Reporter) -> int:
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.upstream import UpstreamOptions, os_paths_ok
    from niriss_pipe.provenance.verify import (
        VerifyOptions,
        raise_for,
        verified_line,
        verify_image,
    )

    if args.json:  # stdout is the JSON's alone
        reporter = Reporter(verbose=args.verbose, out=sys.stderr)
    upstream = None
    if args.upstream or args.only:
        os_paths_ok(args.junit)
        upstream = UpstreamOptions(suite=args.suite, only=tuple(args.only), jobs=args.jobs,
                                   spec=args.spec, ca_bundle=args.ca_bundle, junit=args.junit,
                                   rebuild=args.rebuild_test_image)
    report = verify_image(Engine(reporter), args.image,
                          VerifyOptions(selftest=not args.no_selftest, cache=args.cache,
                                        upstream=upstream))
    if args.json:
        print(json.dumps(report.as_json(), indent=2, sort_keys=True))
    raise_for(report)
    reporter.say(verified_line(report))
    return 0


def check(args, reporter: Reporter) -> int:
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.contextcheck import check_target

    if args.json:
        reporter = Reporter(verbose=args.verbose, out=sys.stderr)
    result = check_target(Engine(reporter), args.target, args.context, args.cache)
    if args.json:
        print(json.dumps(result.as_json(), indent=2, sort_keys=True))
    result.raise_for()
    return 0


def repro(args, reporter: Reporter) -> int:
    from niriss_pipe.build.options import BuildOptions
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.repro import repro

    options = BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache,
                           crds_server=crds_server(args.server))
    repro(args.spec, Engine(reporter), options, keep=args.keep)
    return 0
