"""``export``: an image as files for Podman, Charliecloud or Apptainer.

Library modules are imported inside the handler (see cli/images.py).
"""

from __future__ import annotations

from pathlib import Path

from niriss_pipe.cli.output import emit
from niriss_pipe.core.progress import Reporter

# export.formats.FORMATS, named here so that --help needs no jinja2 (a unit test keeps them
# equal).
FORMAT_NAMES = ("docker-archive", "oci", "dir", "squashfs", "sif")


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("export", parents=[parents.common, parents.json],
                       help="write an image as files for Podman, Charliecloud or Apptainer")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--to", required=True, choices=FORMAT_NAMES, dest="format",
                   help="docker-archive, oci, dir (Charliecloud), squashfs (Charliecloud) or "
                   "sif (Apptainer; without it installed: the archive and a build script)")
    p.add_argument("-o", "--output", type=Path, metavar="PATH",
                   help="where to write (default: the image's name, e.g. "
                   "niriss-pipe_jwst_1584.sqfs, in the current folder)")
    p.add_argument("--force", action="store_true",
                   help="replace an existing output once the new one is complete")
    p.set_defaults(handler=export)


def export(args, reporter: Reporter) -> int:
    import time

    from niriss_pipe.engine.client import Engine
    from niriss_pipe.export.formats import check_format
    from niriss_pipe.export.writers import export_image, tree_size

    check_format(args.format)  # before connecting to the engine
    started = time.monotonic()
    written = export_image(Engine(reporter), args.image, args.format, args.output,
                           force=args.force, reporter=reporter)
    if args.json:
        emit({"image": args.image, "format": args.format,
              "seconds": round(time.monotonic() - started, 1),
              "outputs": [{"path": str(path.resolve()), "bytes": tree_size(path)}
                          for path in written]})
    return 0
