"""Commands on host CRDS caches: sync, verify-cache, cache.

Library modules are imported inside each handler (see cli/images.py).
"""

from __future__ import annotations

from pathlib import Path

from niriss_pipe.cli.defaults import CACHE_HELP, default_cache
from niriss_pipe.cli.images import crds_server
from niriss_pipe.cli.output import emit
from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError, opt, prog
from niriss_pipe.core.progress import Reporter, human_bytes

SCOPES = ("none", "instrument", "datasets")  # the spec's crds.scope words


def add_parsers(sub, parents) -> None:
    common, as_json = parents.common, parents.json
    p = sub.add_parser("sync", parents=[common, as_json],
                       help="fill a CRDS cache for a context with the real crds client")
    p.add_argument("spec", type=Path, nargs="?", metavar="SPEC",
                   help="take the context from this spec (or give --context)")
    p.add_argument("--context", metavar="PMAP",
                   help="the pipeline context, e.g. jwst_1584 or jwst_1584.pmap")
    p.add_argument("--cache", type=Path, default=default_cache(),
                   help=f"the CRDS cache to fill {CACHE_HELP}")
    p.add_argument("--scope", "--references", choices=SCOPES, default=None,
                   help="what to fetch, as the spec's crds.scope: none: mappings only; "
                   "instrument: all NIRISS references of the context (the default); datasets: "
                   "only those the --datasets select (the default when --datasets is given)")
    p.add_argument("--datasets", type=Path, nargs="+", default=[], metavar="FITS|DIR",
                   help="exposures (or folders of *_uncal.fits) whose references to fetch; "
                   "implies --scope datasets")
    p.add_argument("--for", type=Path, dest="product", metavar="PRODUCT.fits",
                   help="exactly the references a calibrated product names (its R_* keywords) "
                   "and its context's mappings (its CRDS_CTX)")
    p.add_argument("--image", metavar="IMAGE",
                   help="for --scope datasets: the image whose jwst chooses the references "
                   "(default: the SPEC's image)")
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
    p.add_argument("--cache", type=Path, default=default_cache(), help=f"the cache {CACHE_HELP}")
    p.set_defaults(handler=verify_cache)

    p = sub.add_parser("cache", parents=[common, as_json],
                       help="list what a CRDS cache holds; prune what no kept context needs")
    p.add_argument("--cache", type=Path, default=default_cache(), help=f"the cache {CACHE_HELP}")
    p.add_argument("--prune", action="store_true",
                   help="remove mappings and references that no --keep context uses")
    p.add_argument("--keep", nargs="+", default=[], metavar="SPEC|PMAP",
                   help="contexts to keep, as specs or pmap names (jwst_1584 or "
                   "jwst_1584.pmap; default: every spec in images/)")
    p.add_argument("--dry-run", action="store_true", help="with --prune: only list")
    p.set_defaults(handler=cache)


def pmap_name(value: str) -> str:
    """A pmap as the user may write it (``jwst_1584`` or ``jwst_1584.pmap``), with its suffix;
    anything else is passed on as given, for the check that names it."""
    return grammar.normalise_pmap(value) or value


def sync_scope(args) -> str:
    """--scope, else datasets when --datasets is given (it implies it), else instrument."""
    if args.datasets and args.scope not in (None, "datasets"):
        raise UserError(f"{opt('datasets')} selects references by exposure, but "
                        f"{opt('scope')} is {args.scope}.",
                        f"leave out {opt('scope')} (or give {opt('scope')} datasets), or leave "
                        f"out {opt('datasets')} to fetch the scope '{args.scope}'.")
    return args.scope or ("datasets" if args.datasets else "instrument")


def sync(args, reporter: Reporter) -> int:
    from niriss_pipe.crds.sync import SyncRequest, sync
    from niriss_pipe.spec.load import load_spec

    if args.product:
        return _sync_for(args, reporter)
    scope = sync_scope(args)
    spec = load_spec(args.spec) if args.spec else None
    context = pmap_name(args.context) if args.context else (spec.context if spec else None)
    if context is None:
        raise UserError("no context to sync.", f"give a spec ({prog()} sync "
                        "images/default.yaml), --context jwst_NNNN.pmap or --for PRODUCT.fits.")
    image = _chooser(args.image, spec, reporter) if scope == "datasets" else args.image
    result = sync(SyncRequest(context=context, cache=args.cache, scope=scope,
                              datasets=tuple(args.datasets), server=crds_server(args.server),
                              jobs=args.jobs, assume_yes=args.yes, verify=args.verify,
                              image=image),
                  reporter)
    mount = f"-v {args.cache.resolve()}:/crds:ro"
    if args.json:
        fetched = [result.mappings, result.references]
        emit({"cache": str(args.cache.resolve()), "context": context, "scope": scope,
              "mappings": len(result.mapping_files), "references": len(result.reference_names),
              "fetched": {"files": sum(len(r.fetched) for r in fetched),
                          "bytes": sum(r.bytes for r in fetched),
                          "seconds": round(sum(r.seconds for r in fetched), 3)},
              "already_present": sum(len(r.skipped) for r in fetched),
              "repaired": [name for r in fetched for name in r.repaired],
              "mount": mount})
        return 0
    reporter.say(f"{args.cache}: {context} ready offline ({len(result.reference_names)} "
                 f"references); mount it with {mount}")
    return 0


def _sync_for(args, reporter: Reporter) -> int:
    from niriss_pipe.crds.product import read_product
    from niriss_pipe.crds.sync import SyncRequest, sync

    given = [name for name, value in (("SPEC", args.spec), (opt("context"), args.context),
                                      (opt("datasets"), args.datasets),
                                      (opt("scope"), args.scope is not None),
                                      (opt("image"), args.image)) if value]
    if given:
        raise UserError(f"sync --for takes the context and the references from the "
                        f"product, so it takes no {' or '.join(given)}.",
                        f"give --for PRODUCT.fits alone (with {opt('cache')}, "
                        f"{opt('server')}).")
    product = read_product(args.product)
    unfit = product.not_crds()
    if unfit:
        keys = ", ".join(f"{k}={v.strip()}" for k, v in sorted(unfit.items())[:3])
        reporter.warn(f"{args.product} names references that are not CRDS files ({keys}); "
                      "no sync can fetch them.")
    reporter.say(f"{args.product}: {product.crds_ctx}, {len(product.reference_names)} "
                 "references named by its R_* keywords"
                 + ("" if product.reference_names else  # all N/A, or the user's own files
                    f" (none from CRDS: only the mappings of {product.crds_ctx} are needed)"))
    result = sync(SyncRequest(context=product.crds_ctx, cache=args.cache, scope="datasets",
                              datasets=(args.product,), named=tuple(product.reference_names),
                              server=crds_server(args.server), jobs=args.jobs,
                              assume_yes=args.yes, verify=args.verify), reporter)
    ready = (f"{product.crds_ctx} and the {len(result.reference_names)} references of "
             f"{args.product.name} ready offline" if result.reference_names else
             f"{product.crds_ctx} ready offline for {args.product.name} (its mappings only: "
             "the product names no CRDS reference)")
    reporter.say(f"{args.cache}: {ready}; next: {prog()} reproduce {args.product} --input "
                 f"UNCAL.fits --cache {args.cache}")
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
        if not args.json:
            reporter.say(report.listing(args.cache))
            return 0
        summary = report.summary_of(args.cache)
        emit({"cache": str(args.cache.resolve()), "bytes": summary.total,
              "contexts": {name: summary.states.get(name, "not checked")
                           for name in summary.contexts},
              "references": [{"instrument": instrument, "reftype": reftype, "files": files,
                              "bytes": nbytes}
                             for (instrument, reftype), (files, nbytes)
                             in summary.sizes.items()]})
        return 0
    if args.keep:
        keep = [grammar.normalise_pmap(item) or load_spec(item).context for item in args.keep]
    else:  # every shipped spec's context that this cache holds
        held = {p.name for p in (args.cache / "mappings" / "jwst").glob("*.pmap")}
        keep = sorted({load_spec(p).context for p in Path("images").glob("*.yaml")} & held)
    pruned = report.prune(args.cache, keep, dry_run=args.dry_run, reporter=reporter)
    if args.json:
        emit({"cache": str(args.cache.resolve()), "dry_run": args.dry_run, "kept": keep,
              "removed": [str(p) for p in pruned.removed], "bytes": pruned.bytes})
        return 0
    reporter.say(f"{'would remove' if args.dry_run else 'removed'} {len(pruned.removed)} files "
                 f"({human_bytes(pruned.bytes)}) not used by "
                 f"{', '.join(keep) or 'any kept context'}")
    return 0
