"""``completion bash|zsh``: shell completion generated from the parser itself (shtab), so it
knows every command, option and choice this version has.

Completion is registered for the ``niriss-pipe`` console script (``pip install -e .``):
``python build.py`` cannot be completed by bash or zsh as a command of its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from niriss_pipe.core.progress import Reporter

SHELLS = ("bash", "zsh")
PATH_METAVARS = ("INPUT", "PEM|none", "FITS|DIR", "SPEC|PMAP")
COMMAND = "niriss-pipe"
INSTALL = {
    "bash": "niriss-pipe completion bash > ~/.local/share/bash-completion/completions/niriss-pipe",
    "zsh": "niriss-pipe completion zsh > ~/.zfunc/_niriss-pipe  (with fpath+=(~/.zfunc) before "
           "compinit in ~/.zshrc)",
}


def add_parsers(sub, parents) -> None:
    p = sub.add_parser("completion", parents=[parents.common],
                       help="print the bash or zsh completion script of niriss-pipe")
    p.add_argument("shell", choices=SHELLS,
                   help="; ".join(f"{shell}: {how}" for shell, how in INSTALL.items()))
    p.set_defaults(handler=completion)


def completion(args, reporter: Reporter) -> int:
    import shtab

    from niriss_pipe.cli.parser import build_parser

    parser = build_parser(COMMAND)
    _complete_paths(parser, shtab)
    sys.stdout.write(shtab.complete(parser, shell=args.shell))
    return 0


def _complete_paths(parser: argparse.ArgumentParser, shtab) -> None:
    """Arguments that take paths complete file names (folders for DIR)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                _complete_paths(subparser, shtab)
        elif action.metavar in ("DIR",):
            action.complete = shtab.DIRECTORY
        elif action.type is Path or action.metavar in PATH_METAVARS:
            action.complete = shtab.FILE
