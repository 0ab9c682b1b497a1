"""User-facing errors: one paragraph naming what is wrong, where, and the fix.

The library speaks of its options by their own names (``opt("cache")``) and of the command
line as ``prog()``; the CLI installs the ``Words`` that render them as the flag and the
program the user typed, and alone decides exit codes. Anything but a UserError is a bug and
keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import textwrap
from dataclasses import dataclass, field

_OPT = "\ue000"  # private-use marks: never in a user's value, never printed as they are
_END = "\ue001"
_PROG = "\ue002"
_MARKS = re.compile(f"{_OPT}([^{_END}]*){_END}|{_PROG}")


def opt(name: str) -> str:
    """An option in a message, by the library's name for it (``ca_bundle``); rendered as the
    flag the user types (``--ca-bundle``)."""
    return f"{_OPT}{name}{_END}"


def prog() -> str:
    """The command line in a fix ("run: {prog()} lock SPEC"), rendered as the user typed it."""
    return _PROG


@dataclass
class Words:
    """How marks render: ``options`` maps library names to flags (the CLI's parser gives
    them); without one, ``name`` is shown as ``--name``."""

    program: str = "python build.py"
    options: dict[str, str] = field(default_factory=dict)

    def render(self, text: str) -> str:
        def one(match: re.Match) -> str:
            if match.group(0) == _PROG:
                return self.program
            name = match.group(1)
            return self.options.get(name) or "--" + name.replace("_", "-")

        return _MARKS.sub(one, text)


_words = Words()


def render(text: str) -> str:
    """``text`` with its marks rendered in the current words (what a Reporter prints)."""
    return _words.render(text)


@contextlib.contextmanager
def speaking(words: Words):
    """Messages made in the block name options and the program with ``words`` (the CLI's,
    for one command); the previous words are back after it."""
    global _words
    before, _words = _words, words
    try:
        yield
    finally:
        _words = before


def shown(value, limit: int = 80) -> str:
    """A user's value in a message: quoted, as its repr when it holds control or other
    unprintable characters (a newline is seen, not obeyed), shortened when long."""
    text = str(value)
    head = text if len(text) <= limit else text[:limit - 20]
    quoted = f"'{head}'" if head.isprintable() and "'" not in head else repr(head)
    return quoted if head is text else f"{quoted[:-1]}...{quoted[-1]} ({len(text)} characters)"


def shown_path(path) -> str:
    """A path in a message: as it is when it prints as itself (what users read and paste),
    else quoted whole as ``shown`` quotes it (a newline in it is seen, not obeyed, and no part
    of the file name is cut)."""
    text = str(path)
    return text if text.isprintable() else shown(text, limit=max(80, len(text)))


def file_problem(path) -> str | None:
    """Why ``path`` cannot be read as a regular file, as the end of a sentence about it ('does
    not exist', 'is a folder', 'is a FIFO (a named pipe), not a regular file', 'is a symlink
    loop'); None when it is a regular file (or a link to one). ``Path.is_file`` says only
    False for all of these, which a message then calls "does not exist"."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        try:
            return f"is a symlink to {shown_path(os.readlink(path))}, which does not exist"
        except OSError:  # not a link (or no longer one)
            return "does not exist"
    except NotADirectoryError:
        return "does not exist (a part of its path is a file, not a folder)"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop (following its links never reaches a file)"
        return f"cannot be read ({exc.strerror or exc})"
    except ValueError as exc:  # a NUL in the name
        return f"cannot be a file name ({exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder"
    kind = ("a FIFO (a named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a special file")
    return f"is {kind}, not a regular file"


class UserError(Exception):
    """An error caused by input or environment that the user can fix."""

    def __init__(self, what: str, fix: str = "", *, where: str = ""):
        # Marks are rendered now, with the words of the command that raised it.
        self.what, self.fix, self.where = (_words.render(text) for text in (what, fix, where))
        super().__init__(self.paragraph())

    def paragraph(self) -> str:
        """The message as one unwrapped line (what scripts and tests match on); anything after
        a newline in ``fix`` (a log excerpt) follows verbatim."""
        fix, _, detail = self.fix.partition("\n")
        parts = [f"{self.where}: {self.what}" if self.where else self.what]
        if fix:
            parts.append(f"Fix: {fix}")
        text = " ".join(parts)
        return f"{text}\n{detail}" if detail else text

    def naming_log(self, path) -> UserError:
        """The same error, its fix also naming the command's whole log (once)."""
        path = shown_path(path)
        if path not in self.paragraph():
            fix, newline, detail = self.fix.partition("\n")
            self.fix = f"{fix} The whole log: {path}".strip() + newline + detail
            self.args = (self.paragraph(),)
        return self

    def display(self, width: int | None = None) -> str:
        """The paragraph for a reader: wrapped at ``width`` (a terminal's), whole otherwise."""
        text = self.paragraph()
        if not width:
            return text
        head, newline, detail = text.partition("\n")
        wrapped = textwrap.fill(head, width=max(40, width), break_long_words=False,
                                break_on_hyphens=False)
        return wrapped + newline + detail


class SpecError(UserError):
    """An image spec that cannot be built as written."""

    def __init__(self, path: str, field: str, what: str, fix: str):
        self.path, self.field = path, field
        where = f"{path}: field '{field}'" if field else str(path)
        super().__init__(what, fix, where=where)


class EngineError(UserError):
    """The Docker Engine refused a request, or a build or a run in it failed."""


class VerificationError(UserError):
    """A check that ran and failed: files that do not match what was verified, an image that
    does not match its lock."""


def os_error(exc: OSError, option: str, fix: str) -> UserError:
    """An OSError on a path the user gave (``option`` names where: '--cache') as the one
    paragraph: the path, what the system said, the fix."""
    path = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    shown = f"{option} {path}".strip() if option else str(path)
    return UserError(f"{shown}: {reason[0].lower() + reason[1:]}.", fix)
