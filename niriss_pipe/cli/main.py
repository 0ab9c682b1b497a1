"""Command line: ``python build.py COMMAND``, ``niriss-pipe COMMAND`` or ``python -m
niriss_pipe COMMAND``.

Only here do library outcomes become exit codes and the library's option names become the
flags the user typed: a user error is one paragraph and exit 2, a failed build or check exit 1,
Ctrl-C 130; only bugs show a traceback.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path

from niriss_pipe.cli.parser import build_parser
from niriss_pipe.core import errors
from niriss_pipe.core.errors import EngineError, UserError, VerificationError
from niriss_pipe.core.progress import Reporter

# Most specific first: a failed build or check is not the user's typo.
EXIT_CODES = ((VerificationError, 1), (EngineError, 1), (UserError, 2))
INTERRUPTED, CLOSED_PIPE = 130, 141


def program_name(argv0: str) -> str:
    """How the user started us, for --help and for the commands fixes name."""
    name = Path(argv0).name
    if name == "__main__.py":
        return "python -m niriss_pipe"
    if name.endswith(".py"):
        return f"python {name}"
    return name or "niriss-pipe"


def exit_code(err: UserError) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(err, kind))


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    program = prog or program_name(sys.argv[0])
    parser = build_parser(program)
    with errors.speaking(errors.Words(program=program, options=parser.option_flags)):
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, or argparse's one-paragraph refusal
            return exc.code if isinstance(exc.code, int) else 2
        return _run(args)


def _run(args) -> int:
    # --json and --parsable: stdout holds only the result, everything else goes to stderr.
    machine = getattr(args, "json", False) or getattr(args, "parsable", False)
    reporter = Reporter(verbose=args.verbose, out=sys.stderr if machine else None)
    try:
        return args.handler(args, reporter) or 0
    except UserError as err:
        print(f"error: {err.display(_terminal_width(sys.stderr))}", file=sys.stderr)
        if getattr(args, "json", False):
            _json_error(err)
        return exit_code(err)
    except KeyboardInterrupt:
        print("interrupted: nothing half-done was kept (tags move and cache files take their "
              "names only when complete)", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # `... | head`: the reader left; say nothing more
        _silence_stdout()
        return CLOSED_PIPE
    except OSError as exc:  # a path the user gave that the system refused (read-only, full...)
        print(f"error: {os_error_paragraph(exc)}", file=sys.stderr)
        if getattr(args, "json", False):
            _json_error(UserError(os_error_paragraph(exc)))
        return 2


def _json_error(err: UserError) -> None:
    """With --json, a refusal is a document too (unless the command already printed one)."""
    from niriss_pipe.cli.output import emit

    if getattr(err, "emitted", False):
        return
    try:
        emit({"error": err.paragraph(), "exit": exit_code(err), "kind": type(err).__name__})
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


OS_FIXES = {  # errno name -> what to do
    "EACCES": "check its permissions (ls -ld), or give a path you can write.",
    "EPERM": "check its permissions (ls -ld), or give a path you can write.",
    "EROFS": "it is on a read-only file system: give a path on a writable one.",
    "ENOSPC": "the disk is full: free space there (df -h), or give a path on another disk.",
    "EDQUOT": "your disk quota is used up: free space, or give a path on another disk.",
    "ENOENT": "check that the path (and its folder) exists.",
    "ENOTDIR": "a part of the path is a file, not a folder: fix the path.",
    "EISDIR": "it is a folder where a file is expected: give a file path.",
    "EEXIST": "it exists already: remove it or give another path.",
    "ENOTEMPTY": "the folder is not empty: empty it or give another path.",
    "ENAMETOOLONG": "the name is too long for the file system: use a shorter path.",
}


def os_error_paragraph(exc: OSError) -> str:
    """One paragraph for an OSError on a user's path: what, where, the system's words, a fix."""
    name = errno.errorcode.get(exc.errno or 0, "")
    where = f" {exc.filename}" if exc.filename else ""
    if exc.filename2:
        where += f" -> {exc.filename2}"
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = OS_FIXES.get(name, "check the path and its permissions, then try again.")
    return f"cannot use{where}: {reason}{f' ({name})' if name else ''}. Fix: {fix}"


def _terminal_width(stream) -> int | None:
    """Wrap messages for a terminal only; pipes and logs get whole lines to grep."""
    return shutil.get_terminal_size().columns - len("error: ") if stream.isatty() else None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
