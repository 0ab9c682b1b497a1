"""Commands on provenance: inspect, verify, compare, repro.

Library modules are imported inside each handler (see cli/images.py).
"""

from __future__ import annotations

from pathlib import Path

from niriss_pipe.cli.buildlog import build_log
from niriss_pipe.cli.images import DEFAULT_SPEC, crds_server
from niriss_pipe.cli.output import emit
from niriss_pipe.core.errors import VerificationError
from niriss_pipe.core.progress import Reporter


def add_parsers(sub, parents) -> None:
    common, building, as_json = parents.common, parents.building, parents.json
    p = sub.add_parser("inspect", parents=[common, as_json],
                       help="what an image holds and how it was built (labels + one offline run)")
    p.add_argument("image", metavar="IMAGE")
    p.set_defaults(handler=inspect)

    p = sub.add_parser("verify", parents=[common, building, as_json],  # --rebuild builds
                       help="check an image against its lock, its labels and its self-test")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--no-selftest", action="store_true",
                   help="only the environment and reference checks")
    p.add_argument("--rebuild", action="store_true",
                   help="also rebuild its spec from its lock with no layer cache and check that "
                   "the result is the same image, bit for bit")
    p.add_argument("--spec", type=Path, metavar="SPEC",
                   help="with --rebuild: the spec it was built from (default: images/ and the "
                   "image's spec label)")
    p.set_defaults(handler=verify)

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
    from niriss_pipe.provenance.verify import verify_image

    engine = Engine(reporter)
    try:
        checks = verify_image(engine, args.image, selftest=not args.no_selftest)
    except VerificationError as err:
        if args.json:  # the checks as they came out, then the error paragraph on stderr
            emit({"image": args.image, "verified": False,
                  "checks": [_check(c) for c in getattr(err, "checks", [])],
                  "error": err.paragraph()})
            err.emitted = True
        raise
    if args.rebuild:
        options = BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache,
                               crds_server=crds_server(args.server), wheels=args.wheels)
        rebuild_image(engine, args.image, options, args.spec)
    if args.json:
        emit({"image": args.image, "verified": True, "checks": [_check(c) for c in checks],
              **({"rebuild": "identical"} if args.rebuild else {})})
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
    from niriss_pipe.provenance.repro import repro

    options = BuildOptions(ca_bundle=args.ca_bundle, cache=args.cache,
                           crds_server=crds_server(args.server), wheels=args.wheels)
    with build_log(reporter, f"repro-{args.spec.stem}"):
        repro(args.spec, Engine(reporter), options, keep=args.keep)
    return 0
