"""Self-test verdicts, remembered per environment.

The self-test runs the image's own detector1 on its own synthetic context, offline: what it
exercises is the image's layers and run settings, not the context the image names. Two images
with the same layers and the same run settings (a pmap-only change alters only CRDS_CONTEXT
and labels) get the same verdict, so a build reuses the verdict of the identical environment
instead of running it again. Verdicts are kept beside the build records
(``build/records/selftest-verdicts.json``); each build record says whether its verdict ran or
was reused, and from which image (``inspect`` and ``verify`` show it).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

from niriss_pipe.build.records import records_dir
from niriss_pipe.core.atomic import write_text
from niriss_pipe.runtime.contract import SELFTEST_OWN_ENV

VERDICTS_FILE = "selftest-verdicts.json"


def environment_key(info) -> str:
    """sha256 of what a self-test depends on: the layers, and the run settings but for the
    variables the self-test sets itself (``info``: an engine ImageInfo)."""
    env = sorted(item for item in info.env if item.split("=", 1)[0] not in SELFTEST_OWN_ENV)
    settings = {"layers": list(info.layers), "env": env, "entrypoint": list(info.entrypoint),
                "cmd": list(info.cmd), "user": info.user, "workdir": info.workdir}
    return "sha256:" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


class Verdicts:
    """``{environment key: {verdict, image, at, output}}`` of passed self-tests."""

    def __init__(self, root=None):
        self.path = (root or records_dir()) / VERDICTS_FILE
        try:
            self.entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.entries = {}
        if not isinstance(self.entries, dict):
            self.entries = {}

    def passed(self, key: str) -> dict | None:
        entry = self.entries.get(key)
        if isinstance(entry, dict) and str(entry.get("verdict", "")).startswith("selftest: PASS"):
            return entry
        return None

    def remember(self, key: str, image_id: str, output: str) -> None:
        verdict = next((line for line in reversed(output.splitlines())
                        if line.startswith("selftest:")), "")
        self.entries[key] = {"verdict": verdict, "image": image_id, "output": output[-4000:],
                             "at": dt.datetime.now(dt.timezone.utc).isoformat(
                                 timespec="seconds").replace("+00:00", "Z")}
        try:
            write_text(self.path, json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
        except OSError:  # a cache of verdicts: without it the next build runs its self-test
            pass
