"""The whole log of a build, kept as a file: ``build/logs/<spec>-<UTC time>.log`` (or under
``$NIRISS_PIPE_LOGS``), written whatever the screen shows, and named in the build's error."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from niriss_pipe.core.errors import UserError
from niriss_pipe.core.progress import Reporter, short_path

LOGS_ENV = "NIRISS_PIPE_LOGS"


def log_folder() -> Path:
    return Path(os.environ.get(LOGS_ENV) or Path("build") / "logs")


@contextlib.contextmanager
def build_log(reporter: Reporter, name: str):
    """Log the block to a new file named after ``name``; a UserError raised in it names the
    file."""
    path = log_folder() / f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.log"
    with reporter.logging_to(path):
        try:
            yield path
        except UserError as err:
            raise err.naming_log(short_path(path)) from None
