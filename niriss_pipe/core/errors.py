"""User-facing errors: one paragraph naming what is wrong, where, and the fix.

The CLI prints a UserError as its paragraph and exits with its ``exit_code``;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import textwrap


def shown(value, limit: int = 80) -> str:
    """A user's value in a message: quoted, as its repr when it holds control or other
    unprintable characters (a newline is seen, not obeyed), shortened when long."""
    text = str(value)
    head = text if len(text) <= limit else text[:limit - 20]
    quoted = f"'{head}'" if head.isprintable() and "'" not in head else repr(head)
    return quoted if head is text else f"{quoted[:-1]}...{quoted[-1]} ({len(text)} characters)"


class UserError(Exception):
    """An error caused by input or environment that the user can fix."""

    exit_code = 2

    def __init__(self, what: str, fix: str = "", *, where: str = ""):
        self.what, self.fix, self.where = what, fix, where
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
    """The Docker Engine is missing, refused a request, or a build failed."""

    exit_code = 1


class VerificationError(UserError):
    """Files that do not match what was verified or what the server lists."""

    exit_code = 1


def os_error(exc: OSError, option: str, fix: str) -> UserError:
    """An OSError on a path the user gave (``option`` names where: '--cache') as the one
    paragraph: the path, what the system said, the fix."""
    path = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    shown = f"{option} {path}".strip() if option else str(path)
    return UserError(f"{shown}: {reason[0].lower() + reason[1:]}.", fix)
