"""What ``--json`` prints: one JSON document on stdout (progress and warnings go to stderr,
so ``| jq`` reads only the result)."""

from __future__ import annotations

import json
import sys


def emit(data) -> None:
    print(json.dumps(data, indent=2, default=str), file=sys.stdout, flush=True)


def wants_json(args) -> bool:
    return bool(getattr(args, "json", False))
