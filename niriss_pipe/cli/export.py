"""``export``: an image as files for Podman, Charliecloud or Apptainer.

Library modules are imported inside the handler (see cli/images.py).
"""

from __future__ import annotations

from pathlib import Path

from niriss_pipe.core.progress import Reporter


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("export", parents=[parents.common],
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
    p.set_defaults(handler=export)


def export(args, reporter: Reporter) -> int:
    from niriss_pipe.engine.client import Engine
    from niriss_pipe.export.formats import check_format
    from niriss_pipe.export.writers import export_image

    check_format(args.format)  # before connecting to the engine
    export_image(Engine(reporter), args.image, args.format, args.output, force=args.force,
                 reporter=reporter)
    return 0
