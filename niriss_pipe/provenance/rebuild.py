"""``verify IMAGE --rebuild``: build the image's spec again from its lock, with no layer
cache, and say whether the result is the same image, bit for bit (its id); when it is not,
which config fields, layers and files differ."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from niriss_pipe.build.builder import build
from niriss_pipe.build.options import BuildOptions
from niriss_pipe.build.records import find_records
from niriss_pipe.build.stamps import checked_tool_labels, revision
from niriss_pipe.core.errors import UserError, VerificationError, opt
from niriss_pipe.provenance.imagediff import ImageDiff, compare_images
from niriss_pipe.provenance.inspect import get_image, label_value
from niriss_pipe.provenance.repro import remove_ours, write_copy
from niriss_pipe.spec import lock as locking
from niriss_pipe.spec.load import load_spec

REPOSITORY = "niriss-pipe-rebuild"


def rebuild_image(engine, reference: str, options: BuildOptions, spec_path: Path | None = None
                  ) -> ImageDiff:
    """Rebuild ``reference`` from its spec (``spec_path``, else images/<its spec label>) and
    the lock its label names; raise VerificationError naming what differs."""
    image = get_image(engine, reference)
    labels = dict(image.labels or {})
    spec_path = spec_path or Path("images") / (label_value(labels, "spec") or "default.yaml")
    spec = load_spec(spec_path)
    lock = locking.check(spec)
    wanted = label_value(labels, "lock.digest")
    if wanted and locking.digest(lock) != wanted:
        raise UserError(f"the lock of {spec_path} ({locking.digest(lock)}) is not the one "
                        f"{reference} was built from ({wanted}): rebuilding it would build "
                        "another image.", f"give {opt('spec')} the spec and lock the image was "
                        "built from (its build record holds both).")
    epoch = _epoch(labels.get("org.opencontainers.image.created"))
    built_by, source = checked_tool_labels(labels.get("org.opencontainers.image.revision"),
                                           labels.get("org.opencontainers.image.source"),
                                           reference)
    say = engine.reporter.say
    say(f"rebuilding {reference} ({image.id[7:19]}) from {spec_path} with no layer cache")
    here = revision()  # git rev-parse, once
    other = built_by is not None and built_by != here
    if other:  # the labels are the image's; what the rebuild compares is the rest
        say(f"  built by revision {built_by[:12] or '(none)'}; this checkout is "
            f"{here[:12] or '(no revision)'}: rebuilt with this checkout under the "
            "image's revision and source labels")
    work = Path(tempfile.mkdtemp(prefix="niriss-pipe-rebuild-"))
    built: list[str] = []
    try:
        copy = load_spec(write_copy(spec_path, work, REPOSITORY))
        result = build(copy, engine, replace(options, no_cache=True, force=True, selftest=False,
                                             source_date_epoch=epoch, revision_label=built_by,
                                             source_label=source))
        # the image, then its stages, each before the stage it was built on (its parent)
        built = [result.image_id, *reversed(result.stage_images.values())]
        diff = compare_images(engine, image.id, result.image_id)
        for line in diff.lines():
            say(line)
        if not diff.same:
            raise VerificationError(f"{reference} is not what its spec and lock build: "
                                    + diff.problem() + ".",
                                    (f"this checkout is not the revision that built it: check "
                                     f"out {built_by} (git worktree add DIR {built_by[:12]}) "
                                     "and verify again there; else " if other and built_by
                                     else "")
                                    + "the inputs differ (base, spec, tool version) or a build "
                                    "step is not deterministic: see the layers and files "
                                    "above.")
        say(f"{reference}: rebuilt bit for bit ({image.id})"
            + (f" by revision {here[:12] or '(none)'}" if other else ""))
        return diff
    finally:
        for image_id in built:
            for record in find_records(image_id):
                if f"/{REPOSITORY}/" in str(record):
                    record.unlink(missing_ok=True)
            remove_ours(engine, image_id, REPOSITORY)
        shutil.rmtree(work, ignore_errors=True)


def _epoch(created: str | None) -> str | None:
    """The SOURCE_DATE_EPOCH the image was built with: its ``created`` label."""
    if not created:
        return None
    try:
        when = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return None
    return str(int(when.timestamp()))
