"""What ``--json`` prints: one JSON document on stdout (progress and warnings go to stderr,
so ``| jq`` reads only the result)."""

from __future__ import annotations

import json
import sys


def emit(data) -> None:
    print(json.dumps(data, indent=2, default=str), file=sys.stdout, flush=True)


def wants_json(args) -> bool:
    return bool(getattr(args, "json", False))


def emit_refused(document: dict, err) -> None:
    """With --json, a check that ran and failed: its document with the error paragraph in it,
    as the one document (main does not print another)."""
    emit({**document, "error": err.paragraph()})
    err.emitted = True
