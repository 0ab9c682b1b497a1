"""Defaults every command shares, decided when the command line is read: the host CRDS cache
is ``$CRDS_PATH`` when set (as every STScI guide sets it), else crds_cache/ beside the
images."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_HELP = "(default: $CRDS_PATH when set, else crds_cache/)"


def default_cache() -> Path:
    return Path(os.environ.get("CRDS_PATH") or "crds_cache")
