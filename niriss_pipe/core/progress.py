"""Progress output: quiet by default (one line per stage), the full log with ``-v``.

Everything the tool says goes through a Reporter so tests can capture it and
so quiet/verbose is decided in one place.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections import deque
from typing import TextIO

from niriss_pipe.core.errors import render

ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def failure_excerpt(lines: list[str], at_most: int = 25) -> list[str]:
    """The lines that explain a failure: from the last line that starts an error report
    (pip's "ERROR: ..." header is often followed by dozens of hash lines), else the tail."""
    starts = [i for i, line in enumerate(lines) if line.lstrip().startswith(("ERROR", "error:"))]
    if not starts:
        return lines[-at_most:]
    # All error reports when they fit, else the last one from its first line.
    first = starts[0] if len(lines) - starts[0] <= at_most else starts[-1]
    return lines[first:first + at_most] + (["..."] if first + at_most < len(lines) else [])


def short_path(path) -> str:
    """``path`` relative to the current folder when it lies below it, else absolute."""
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else str(path)


class Reporter:
    """Prints stage lines always, detail lines only when verbose, warnings to stderr."""

    def __init__(self, verbose: bool = False, out: TextIO | None = None,
                 err: TextIO | None = None):
        self.verbose = verbose
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.tail: deque[str] = deque(maxlen=300)  # last detail lines, shown on failure

    def say(self, message: str) -> None:
        print(render(message), file=self.out, flush=True)

    def detail(self, message: str) -> None:
        message = ANSI_RE.sub("", message)  # the classic builder colours a step's stderr
        self.tail.append(message)
        if self.verbose:
            print(message, file=self.out, flush=True)

    def warn(self, message: str) -> None:
        print(f"warning: {render(message)}", file=self.err, flush=True)


class StageClock:
    """Times named stages and reports each as it ends: ``  jwst ........ 24.1 s``."""

    def __init__(self, reporter: Reporter, prefix: str = "  "):
        self.reporter, self.prefix = reporter, prefix
        self.current: str | None = None
        self.started = 0.0
        self.cached = True

    def enter(self, name: str) -> None:
        if name == self.current:
            return
        self.finish()
        self.current, self.started, self.cached = name, time.monotonic(), True

    def step_ran(self) -> None:
        self.cached = False

    def finish(self) -> None:
        if self.current is None:
            return
        took = time.monotonic() - self.started
        how = "cached" if self.cached else f"{took:6.1f} s"
        self.reporter.say(f"{self.prefix}{self.current:<14} {how}")
        self.current = None

    def fail(self) -> None:
        """End the current stage as failed: never 'cached', whatever its steps reported."""
        if self.current is None:
            return
        took = time.monotonic() - self.started
        self.reporter.say(f"{self.prefix}{self.current:<14} FAILED after {took:.1f} s")
        self.current = None


def human_bytes(size: float) -> str:
    """``123456789`` -> ``117.7 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
