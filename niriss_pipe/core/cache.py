"""The tool's caches on the host: where they live and how one is read back."""

from __future__ import annotations

import json
import os
from pathlib import Path


def cache_path(name: str, environ=os.environ) -> Path:
    """``$XDG_CACHE_HOME/niriss-pipe/NAME``, else ``~/.cache/niriss-pipe/NAME``."""
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "niriss-pipe" / name


def read_json_object(path: Path) -> dict:
    """A JSON object from ``path``; {} when it is missing, broken or not an object (a cache)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
