"""``reproduce``: make a calibrated product again from its input and compare the two.

Exit 0 when the new product is identical or within the tolerances, 1 when it differs, 2 for
bad input (a user error). Library modules are imported inside the handler (see cli/images.py).
"""

from __future__ import annotations

from pathlib import Path

from niriss_pipe.cli.defaults import CACHE_HELP, default_cache
from niriss_pipe.cli.output import emit
from niriss_pipe.core.progress import Reporter

EXIT_CODES = {"identical": 0, "within tolerance": 0, "different": 1}


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("reproduce", parents=[parents.common, parents.json],
                       help="run a product's pipeline again in the image of its CAL_VER and "
                       "compare the result with it")
    p.add_argument("product", type=Path, metavar="PRODUCT.fits",
                   help="a calibrated product (*_rate.fits, *_cal.fits ...)")
    p.add_argument("--input", type=Path, required=True, metavar="UNCAL.fits",
                   help="the exposure it was made from")
    p.add_argument("--image", metavar="IMAGE",
                   help="the image to run (default: a local one whose jwst is the product's "
                   "CAL_VER)")
    p.add_argument("--cache", type=Path, default=default_cache(),
                   help="the CRDS cache holding the product's context and references (fill it "
                   f"with sync --for PRODUCT.fits) {CACHE_HELP}")
    p.add_argument("--rtol", type=float, default=0.0, metavar="X",
                   help="relative tolerance for float arrays (default 0: bit for bit)")
    p.add_argument("--atol", type=float, default=0.0, metavar="Y",
                   help="absolute tolerance for float arrays (default 0)")
    p.add_argument("-o", "--output", type=Path, metavar="DIR",
                   help="the report folder: report.md, pictures, the new product (default: "
                   "reproduce_<product>/)")
    p.set_defaults(handler=reproduce)


def reproduce(args, reporter: Reporter) -> int:
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.provenance.reproduce import ReproduceRequest, check, reproduce

    request = ReproduceRequest(product=args.product, input=args.input, image=args.image,
                               cache=args.cache, rtol=args.rtol, atol=args.atol,
                               output=args.output)
    checked = check(request)  # the product, the input and the cache before the engine
    result = reproduce(Engine(reporter), request, checked)
    if args.json:
        emit({"product": str(args.product), "image": result.image, "verdict": result.verdict,
              "report": str(result.report), "seconds": round(result.seconds, 1),
              "comparison": result.answer.get("comparison", {})})
    return EXIT_CODES[result.verdict]
