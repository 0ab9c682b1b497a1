"""Progress output: quiet by default (one line per stage), the full log with ``-v``; a stage
or a download that is still going says so (an updating line on a terminal, a line now and
then in a log); and, while a log file is open, every line also goes there.

Everything the tool says goes through a Reporter so tests can capture it and so
quiet/verbose is decided in one place.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import TextIO

from niriss_pipe.core.errors import render

ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")
PLAIN_EVERY = 30.0  # seconds between "still running" lines when not on a terminal
TTY_EVERY = 1.0     # seconds between redraws of a terminal's updating line


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


def is_terminal(stream) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class Reporter:
    """Prints stage lines always, detail lines only when verbose, warnings to stderr; keeps
    one updating line on a terminal (``live``) out of the way of the others."""

    def __init__(self, verbose: bool = False, out: TextIO | None = None,
                 err: TextIO | None = None):
        self.verbose = verbose
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.tail: deque[str] = deque(maxlen=300)  # last detail lines, shown on failure
        self.log_path: Path | None = None  # the log file of the command, while one is open
        self._log: TextIO | None = None
        self._live = 0  # width of the updating line drawn on the terminal, 0 when none
        self.lock = threading.RLock()

    @property
    def tty(self) -> bool:
        return is_terminal(self.out)

    def say(self, message: str) -> None:
        with self.lock:
            self._clear_live()
            print(render(message), file=self.out, flush=True)
            self._to_log(render(message))

    def detail(self, message: str) -> None:
        message = ANSI_RE.sub("", message)  # the classic builder colours a step's stderr
        with self.lock:
            self.tail.append(message)
            self._to_log(message)
            if self.verbose:
                self._clear_live()
                print(message, file=self.out, flush=True)

    def warn(self, message: str) -> None:
        with self.lock:
            self._clear_live()
            print(f"warning: {render(message)}", file=self.err, flush=True)
            self._to_log(f"warning: {render(message)}")

    def live(self, message: str) -> None:
        """Redraw the terminal's updating line (nothing when not on a terminal)."""
        if not self.tty:
            return
        with self.lock:
            print("\r" + message.ljust(self._live), end="", file=self.out, flush=True)
            self._live = len(message)

    def end_live(self) -> None:
        with self.lock:
            self._clear_live()

    def _clear_live(self) -> None:
        if self._live:
            print("\r" + " " * self._live + "\r", end="", file=self.out, flush=True)
            self._live = 0

    def _to_log(self, message: str) -> None:
        if self._log is not None:
            self._log.write(message + "\n")
            self._log.flush()

    @contextlib.contextmanager
    def logging_to(self, path: Path):
        """Every line said, detailed or warned in the block also goes to ``path`` (made with
        its folders); ``log_path`` names it meanwhile, for errors to point at."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8", errors="replace") as log:
            with self.lock:
                before = self._log, self.log_path
                self._log, self.log_path = log, path
            try:
                yield path
            finally:
                with self.lock:
                    self._log, self.log_path = before


class StageClock:
    """Times named stages and reports each as it ends: ``  jwst ........ 24.1 s``. While a
    stage runs (and the full log is not shown), its elapsed time updates on a terminal and
    is said every ``plain_every`` seconds elsewhere."""

    def __init__(self, reporter: Reporter, prefix: str = "  ", *,
                 tty_every: float = TTY_EVERY, plain_every: float = PLAIN_EVERY):
        self.reporter, self.prefix = reporter, prefix
        self.current: str | None = None
        self.started = 0.0
        self.cached = True
        self.every = tty_every if reporter.tty else plain_every
        self._stop: threading.Event | None = None

    def enter(self, name: str) -> None:
        if name == self.current:
            return
        self.finish()
        self.current, self.started, self.cached = name, time.monotonic(), True
        if not self.reporter.verbose:  # with -v the log itself shows that it goes on
            self._stop = threading.Event()
            threading.Thread(target=self._tick, args=(name, self.started, self._stop),
                             daemon=True, name=f"stage-{name}").start()

    def step_ran(self) -> None:
        self.cached = False

    def finish(self) -> None:
        if self.current is None:
            return
        took = self._end()
        how = "cached" if self.cached else f"{took:6.1f} s"
        self.reporter.say(f"{self.prefix}{self.current:<14} {how}")
        self.current = None

    def fail(self) -> None:
        """End the current stage as failed: never 'cached', whatever its steps reported."""
        if self.current is None:
            return
        took = self._end()
        self.reporter.say(f"{self.prefix}{self.current:<14} FAILED after {took:.1f} s")
        self.current = None

    def close(self) -> None:
        """Stop the ticking without a final line (the build stopped some other way)."""
        self._end()
        self.reporter.end_live()

    def _end(self) -> float:
        if self._stop is not None:
            self._stop.set()
            self._stop = None
        return time.monotonic() - self.started

    def _tick(self, name: str, started: float, stop: threading.Event) -> None:
        while not stop.wait(self.every):
            with self.reporter.lock:
                if stop.is_set():
                    return
                took = time.monotonic() - started
                if self.reporter.tty:
                    self.reporter.live(f"{self.prefix}{name:<14} {took:6.1f} s ...")
                else:
                    self.reporter.say(f"{self.prefix}{name:<14} still running after "
                                      f"{took:.0f} s")


class TransferProgress:
    """``refs  12/40 files  123.4 MiB/456.7 MiB (27 %)  45.6 MiB/s  7 s left``: an updating
    line on a terminal, a line every ``plain_every`` seconds otherwise. Thread-safe."""

    def __init__(self, reporter: Reporter, label: str, files: int, total: int, *,
                 plain_every: float = 5.0):
        self.reporter, self.label, self.files, self.total = reporter, label, files, total
        self.done_files = self.done_bytes = 0
        self.started = self.last = time.monotonic()
        self.lock = threading.Lock()
        self.tty = reporter.tty
        self.every = 0.2 if self.tty else plain_every

    def add(self, nbytes: int = 0, files: int = 0) -> None:
        with self.lock:
            self.done_bytes += nbytes
            self.done_files += files
            now = time.monotonic()
            if now - self.last >= self.every:
                self.last = now
                line = self.line(now - self.started)
                (self.reporter.live if self.tty else self.reporter.say)(line)

    def line(self, took: float) -> str:
        took = max(took, 1e-6)
        rate = self.done_bytes / took
        percent = 100.0 * self.done_bytes / self.total if self.total else 100.0
        left = (self.total - self.done_bytes) / rate if rate > 0 else None
        return (f"  {self.label} {self.done_files}/{self.files} files  "
                f"{human_bytes(self.done_bytes)}/{human_bytes(self.total)} ({percent:.0f} %)  "
                f"{human_bytes(rate)}/s  "
                + (f"{human_duration(left)} left" if left is not None else "time left unknown"))

    def close(self) -> None:
        self.reporter.end_live()


def human_bytes(size: float) -> str:
    """``123456789`` -> ``117.7 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_duration(seconds: float) -> str:
    """``7`` -> ``7 s``, ``185`` -> ``3 min 05 s``, ``7300`` -> ``2 h 01 min``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
