"""The argument parser: the top-level options, the options commands share, and one
subcommand group per module (images, crds, provenance, export, batch).

Each group module adds its subcommands with ``set_defaults(handler=...)``; a handler takes the
parsed arguments and a Reporter, and returns an exit code (0 when it returns normally).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe import __version__
from niriss_pipe.cli import batch, crds, export, images, provenance, reproduce


@dataclass
class Parents:
    """Option groups shared by several subcommands."""

    common: argparse.ArgumentParser    # -v
    building: argparse.ArgumentParser  # --ca-bundle, --cache, --server


class Parser(argparse.ArgumentParser):
    @property
    def option_flags(self) -> dict[str, str]:
        """``{dest: the flag a user types}`` over every subcommand (``ca_bundle``:
        ``--ca-bundle``): how errors name the library's options."""
        flags: dict[str, str] = {}

        def walk(parser: argparse.ArgumentParser) -> None:
            for action in parser._actions:
                if isinstance(action, argparse._SubParsersAction):
                    for sub in action.choices.values():
                        walk(sub)
                elif action.option_strings:
                    long = [o for o in action.option_strings if o.startswith("--")]
                    flags.setdefault(action.dest, (long or action.option_strings)[0])

        walk(self)
        return flags


def default_cache() -> Path:
    """crds_cache/ beside the images: what every host command uses unless told."""
    return Path("crds_cache")


def build_parser(prog: str = "python build.py") -> Parser:
    parser = Parser(prog=prog, description="Build pinned, offline JWST/NIRISS pipeline images "
                    "from image specs (images/*.yaml), tagged by CRDS context.")
    parser.add_argument("--version", action="version", version=f"niriss-pipe {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="show the full log")
    building = argparse.ArgumentParser(add_help=False)
    building.add_argument("--ca-bundle", metavar="PEM|none",
                          help="CA bundle to install for the build's downloads (default: from "
                          "PIP_CERT, REQUESTS_CA_BUNDLE or SSL_CERT_FILE when set)")
    building.add_argument("--cache", type=Path, default=default_cache(),
                          help="host CRDS cache (default: crds_cache/)")
    building.add_argument("--server", default=None, metavar="URL",
                          help="CRDS server a 'references: bake' spec syncs from (default: "
                          "$CRDS_SERVER_URL or https://jwst-crds.stsci.edu)")
    parents = Parents(common, building)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (images, crds, provenance, reproduce, export, batch):
        group.add_parsers(sub, parents)
    return parser
