"""Commands on host CRDS caches: sync, verify-cache, cache.

Library modules are imported inside each handler (see cli/images.py).
"""

from __future__ import annotations

from pathlib import Path

from niriss_pipe.cli.images import crds_server
from niriss_pipe.core.errors import UserError, prog
from niriss_pipe.core.progress import Reporter, human_bytes


def add_parsers(sub, parents) -> None:
    common = parents.common
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
    p.add_argument("--image", metavar="IMAGE",
                   help="for --references datasets: the image whose jwst chooses the "
                   "references (default: the SPEC's image)")
    p.add_argument("--server", default=None, metavar="URL",
                   help="CRDS server (default: $CRDS_SERVER_URL or https://jwst-crds.stsci.edu)")
    p.add_argument("-j", "--jobs", type=int, default=8, help="parallel downloads (default 8)")
    p.add_argument("-y", "--yes", action="store_true",
                   help="do not ask before downloading more than 5 GiB")
    p.add_argument("--verify", action="store_true",
                   help="re-check every cached file's sha1 against the server; re-fetch bad ones")
    p.set_defaults(handler=sync)

    p = sub.add_parser("verify-cache", parents=[common],
                       help="offline: every context complete, every verified file unchanged")
    p.add_argument("--cache", type=Path, default=Path("crds_cache"))
    p.set_defaults(handler=verify_cache)

    p = sub.add_parser("cache", parents=[common],
                       help="list what a CRDS cache holds; prune what no kept context needs")
    p.add_argument("--cache", type=Path, default=Path("crds_cache"))
    p.add_argument("--prune", action="store_true",
                   help="remove mappings and references that no --keep context uses")
    p.add_argument("--keep", nargs="+", default=[], metavar="SPEC|PMAP",
                   help="contexts to keep, as specs or pmap names (default: every spec in "
                   "images/)")
    p.add_argument("--dry-run", action="store_true", help="with --prune: only list")
    p.set_defaults(handler=cache)


def sync(args, reporter: Reporter) -> int:
    from niriss_pipe.crds.sync import SyncRequest, sync
    from niriss_pipe.spec.load import load_spec

    spec = load_spec(args.spec) if args.spec else None
    context = args.context or (spec.context if spec else None)
    if context is None:
        raise UserError("no context to sync.", f"give a spec ({prog()} sync "
                        "images/default.yaml) or --context jwst_NNNN.pmap.")
    image = args.image
    if args.references == "datasets":
        image = _chooser(image, spec, reporter)
    result = sync(SyncRequest(context=context, cache=args.cache, scope=args.references,
                              datasets=tuple(args.datasets), server=crds_server(args.server),
                              jobs=args.jobs, assume_yes=args.yes, verify=args.verify,
                              image=image),
                  reporter)
    reporter.say(f"{args.cache}: {context} ready offline ({len(result.reference_names)} "
                 f"references); mount it with -v {args.cache.resolve()}:/crds:ro")
    return 0


def _chooser(image: str | None, spec, reporter: Reporter) -> str | None:
    """The image whose jwst chooses dataset references: --image, else the SPEC's, built."""
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.render.names import full_tag

    if image is None and spec is None:
        return None  # the library names what is missing
    wanted = image or f"{spec.name}:{full_tag(spec)}"
    if Engine(reporter).image_id(wanted) is None:
        raise UserError(f"no image '{wanted}' in the local engine to choose the references "
                        "of the exposures with.",
                        f"build it first ({prog()} build {spec.path if spec else 'SPEC'}), or "
                        "give --image IMAGE.")
    return wanted


def verify_cache(args, reporter: Reporter) -> int:
    from niriss_pipe.crds.verify import verify_cache

    verify_cache(args.cache, reporter)
    return 0


def cache(args, reporter: Reporter) -> int:
    from niriss_pipe.crds import report
    from niriss_pipe.spec.load import load_spec

    if not args.prune:
        reporter.say(report.listing(args.cache))
        return 0
    if args.keep:
        keep = [item if item.endswith(".pmap") else load_spec(item).context for item in args.keep]
    else:  # every shipped spec's context that this cache holds
        held = {p.name for p in (args.cache / "mappings" / "jwst").glob("*.pmap")}
        keep = sorted({load_spec(p).context for p in Path("images").glob("*.yaml")} & held)
    pruned = report.prune(args.cache, keep, dry_run=args.dry_run, reporter=reporter)
    reporter.say(f"{'would remove' if args.dry_run else 'removed'} {len(pruned.removed)} files "
                 f"({human_bytes(pruned.bytes)}) not used by "
                 f"{', '.join(keep) or 'any kept context'}")
    return 0
