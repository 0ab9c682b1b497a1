"""The argument parser: the top-level options, the options commands share, and one
subcommand group per module (images, crds, provenance, export, batch).

Each group module adds its subcommands with ``set_defaults(handler=...)``; a handler takes the
parsed arguments and a Reporter, and returns an exit code (0 when it returns normally).
"""

from __future__ import annotations

import argparse
import difflib
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe import __version__
from niriss_pipe.cli import batch, completion, crds, export, images, provenance, reproduce
from niriss_pipe.cli.defaults import CACHE_HELP, default_cache


@dataclass
class Parents:
    """Option groups shared by several subcommands."""

    common: argparse.ArgumentParser    # -v
    building: argparse.ArgumentParser  # --ca-bundle, --cache, --server
    json: argparse.ArgumentParser      # --json


class Parser(argparse.ArgumentParser):
    def _check_value(self, action, value):
        """A value not among the choices, refused with the closest one named."""
        if action.choices is not None and value not in action.choices:
            choices = [str(choice) for choice in action.choices]
            close = difflib.get_close_matches(str(value), choices, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise argparse.ArgumentError(action, f"invalid choice: {value!r} (choose from "
                                         f"{', '.join(choices)}{hint})")

    def _get_value(self, action, arg_string):
        """An empty path ('' from an unset shell variable) refused: Path('') is '.', so it
        would quietly mean the current folder (a spec, an output, a cache)."""
        if action.type is Path and arg_string == "":
            raise argparse.ArgumentError(action, "an empty path ('') would quietly mean the "
                                         "current folder. Fix: give the path, or . if the "
                                         "current folder is meant")
        return super()._get_value(action, arg_string)

    def error(self, message: str):
        """argparse's refusals (an unknown option, a value not among the choices) as the one
        paragraph every other error is, exit 2; the usage is one --help away (unless the
        message gives its own fix)."""
        fix = "" if " Fix: " in message else f". Fix: see {self.prog} --help"
        self.exit(2, f"error: {self.prog}: {message}{fix}.\n")

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


def build_parser(prog: str = "python build.py") -> Parser:
    parser = Parser(prog=prog, description="Build pinned, offline JWST/NIRISS pipeline images "
                    "from image specs (images/*.yaml), tagged by CRDS context.")
    parser.add_argument("--version", action="version", version=f"niriss-pipe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the full log")
    common = argparse.ArgumentParser(add_help=False)
    # After the command too; SUPPRESS keeps a -v given before the command when it is not.
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show the full log")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true",
                         help="print the result as one JSON document on stdout (progress "
                         "goes to stderr)")
    building = argparse.ArgumentParser(add_help=False)
    building.add_argument("--ca-bundle", metavar="PEM|none",
                          help="CA bundle to install for the build's downloads (default: from "
                          "PIP_CERT, REQUESTS_CA_BUNDLE or SSL_CERT_FILE when set)")
    building.add_argument("--cache", type=Path, default=default_cache(),
                          help=f"host CRDS cache {CACHE_HELP}")
    building.add_argument("--server", default=None, metavar="URL",
                          help="CRDS server a 'references: bake' spec syncs from (default: "
                          "$CRDS_SERVER_URL or https://jwst-crds.stsci.edu)")
    building.add_argument("--wheels", type=Path, default=None, metavar="DIR",
                          help="folder of verified wheels the build installs from (default: "
                          "$XDG_CACHE_HOME/niriss-pipe/wheels); 'fetch --to DIR' fills one")
    parents = Parents(common, building, as_json)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (images, crds, provenance, reproduce, export, batch, completion):
        group.add_parsers(sub, parents)
    return parser
