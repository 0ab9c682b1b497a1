"""Build records: one JSON file per successful build under ``build/records/`` (or
``$NIRISS_PIPE_RECORDS``), written atomically, to archive with results."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import re
import socket
from pathlib import Path

from niriss_pipe import __version__
from niriss_pipe.core.atomic import write_text
from niriss_pipe.render.names import full_tag
from niriss_pipe.runtime.contract import (
    LOCK_IN_IMAGE,
    lock_pins,
)
from niriss_pipe.spec import lock as locking

RECORDS_ENV = "NIRISS_PIPE_RECORDS"
RECORD_VERSION = 1
DATED_RE = re.compile(r"\.\d{8}T\d{6}Z(?:-\d+)?$")  # a record's timestamp suffix


# -- build records ----------------------------------------------------------------------------
def records_dir() -> Path:
    """``$NIRISS_PIPE_RECORDS``, else ``build/records`` under the working directory."""
    return Path(os.environ.get(RECORDS_ENV) or "build/records")


def record_paths(repository: str, full_tag: str, when: dt.datetime,
                 root: Path | None = None) -> tuple[Path, Path]:
    """(the latest record, this build's timestamped copy) for ``repository:full_tag``."""
    folder = (root or records_dir()) / repository
    stamp = when.astimezone(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return folder / f"{full_tag}.json", folder / f"{full_tag}.{stamp}.json"


def build_record(spec, engine, result, base, *, no_cache: bool, ended: dt.datetime) -> dict:
    """The JSON-able build record of a successful build (reads the image's labels and the
    engine's version)."""
    lock_file = locking.lock_path(spec)
    lock_text = lock_file.read_text()
    started = ended - dt.timedelta(seconds=result.seconds)
    labels = engine.image_labels(result.image_id)
    version = engine.server_version()
    verdict = next((line for line in reversed(result.selftest_output.splitlines())
                    if line.startswith("selftest:")), None)

    def iso(moment: dt.datetime) -> str:
        return moment.astimezone(dt.timezone.utc).isoformat(timespec="seconds") \
            .replace("+00:00", "Z")

    return {
        "record_version": RECORD_VERSION,
        "tool": {"name": "niriss-pipe", "version": __version__,
                 "revision": labels.get("org.opencontainers.image.revision") or None},
        "spec": {"path": str(spec.path), "absolute": str(Path(spec.path).resolve()),
                 "sha256": "sha256:" + hashlib.sha256(spec.path.read_bytes()).hexdigest(),
                 "content": spec.path.read_text()},
        "lock": {"path": str(lock_file), "digest": locking.digest(lock_file),
                 "packages": len(lock_pins(lock_text)), "in_image": LOCK_IN_IMAGE},
        "image": {"id": result.image_id, "repository": spec.name,
                  "tags": [f"{spec.name}:{tag}" for tag in result.tags],
                  "content_tag": f"{spec.name}:{result.content_tag}",
                  "full_tag": f"{spec.name}:{full_tag(spec)}", "labels": labels},
        "base": {"reference": base.reference, "id": base.image_id, "digest": base.digest},
        "build": {"started": iso(started), "ended": iso(ended),
                  "seconds": round(result.seconds, 1), "no_cache": no_cache,
                  "selftest": verdict,
                  "selftest_reused_from": result.selftest_reused_from},
        "host": {"hostname": socket.gethostname(), "platform": platform.platform(),
                 "python": platform.python_version(),
                 "docker_engine": version.get("Version"),
                 "docker_api": version.get("ApiVersion")},
    }


def write_build_record(spec, engine, result, base, *, no_cache: bool = False,
                       root: Path | None = None) -> Path | None:
    """Write the record of a successful build, atomically: ``<repository>/<full tag>.json``
    (the latest) and a timestamped copy that later builds never overwrite. Return the copy's
    path. A record that cannot be written is a warning, never a failed build: the image was
    built, self-tested and tagged."""
    ended = dt.datetime.now(dt.timezone.utc)
    try:
        record = build_record(spec, engine, result, base, no_cache=no_cache, ended=ended)
        latest, dated = record_paths(spec.name, full_tag(spec), ended, root)
        counter = 1
        while dated.exists():  # two builds of one tag within a second
            counter += 1
            dated = dated.with_name(f"{latest.stem}.{ended:%Y%m%dT%H%M%SZ}-{counter}.json")
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        write_text(dated, text)
        write_text(latest, text)
    except Exception as exc:  # noqa: BLE001 - the build itself succeeded; say why, go on
        engine.reporter.warn(f"no build record written ({type(exc).__name__}: {exc})")
        return None
    engine.reporter.say(f"build record: {dated}")
    return dated


def find_records(image_id: str, root: Path | None = None) -> list[Path]:
    """Every record of ``image_id`` under the records folder, sorted by path."""
    folder = root or records_dir()
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*.json")):
        try:
            if json.loads(path.read_text())["image"]["id"] == image_id:
                found.append(path)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def find_record(image_id: str, root: Path | None = None) -> Path | None:
    """The timestamped (never overwritten) record of ``image_id``, else its latest record."""
    found = find_records(image_id, root)
    dated = [p for p in found if DATED_RE.search(p.stem)]
    return (dated or found or [None])[-1]
