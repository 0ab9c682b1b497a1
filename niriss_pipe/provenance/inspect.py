"""``inspect``: what an image holds and how it was built, from its labels and one probe run."""

from __future__ import annotations

import json
from pathlib import Path

from niriss_pipe.build.records import find_record, records_dir
from niriss_pipe.core.errors import UserError, prog
from niriss_pipe.core.progress import human_bytes
from niriss_pipe.provenance.probe import installed_versions, run_probe
from niriss_pipe.runtime.contract import (
    CRDS_PATH,
    LABEL_NS,
    LOCK_IN_IMAGE,
    lock_pins,
)


# -- inspect ----------------------------------------------------------------------------------
def label_value(labels: dict[str, str], key: str) -> str | None:
    value = labels.get(f"{LABEL_NS}.{key}")
    return value or None


def int_value(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def get_image(engine, reference: str):
    """The image's ImageInfo, or a UserError when it is missing or not ours."""
    image = engine.image_info(reference)
    if image is None:
        raise UserError(f"no image '{reference}' in the local engine.",
                        f"build it first ({prog()} build SPEC), or give a name from "
                        "'docker images'.")
    if not (image.labels or {}).get(f"{LABEL_NS}.tool.version"):
        raise UserError(f"'{reference}' has no {LABEL_NS}.tool.version label: it was not built "
                        "by niriss-pipe build (a base image, or another image), so there is "
                        "nothing to inspect or verify against.",
                        "give a niriss-pipe image (docker images --filter "
                        f"label={LABEL_NS}.tool.version).")
    return image


def inspect_image(engine, reference: str, records: Path | None = None) -> dict:
    """Labels and the probe's findings as one JSON-able dict (what ``inspect --json`` prints)."""
    image = get_image(engine, reference)
    labels = dict(image.labels or {})
    probe = run_probe(engine, image.id)
    oci = "org.opencontainers.image"
    lock_label = label_value(labels, "lock.digest")
    in_image = probe.get("lock")
    pins = lock_pins(in_image["text"]) if in_image else {}
    baked = None
    if label_value(labels, "crds.references") == "bake":
        baked = {"count": int_value(label_value(labels, "crds.baked.count")),
                 "bytes": int_value(label_value(labels, "crds.baked.bytes")),
                 "manifest": label_value(labels, "crds.baked.manifest")}
    record = find_record(image.id, records)
    return {
        "image": reference,
        "id": image.id,
        "tags": sorted(image.tags),
        "created": labels.get(f"{oci}.created"),
        "revision": labels.get(f"{oci}.revision"),
        "source": labels.get(f"{oci}.source"),
        "tool_version": label_value(labels, "tool.version"),
        "spec": label_value(labels, "spec"),
        "jwst": {"version": label_value(labels, "jwst.version"),
                 "git": label_value(labels, "jwst.git"), "ref": label_value(labels, "jwst.ref"),
                 "installed": probe.get("jwst"),
                 "commit": probe.get("jwst_commit")},
        "crds": {"version": probe.get("crds"), "context": label_value(labels, "crds.context"),
                 "niriss_imap": label_value(labels, "crds.niriss-imap")},
        "python": {"version": probe.get("python"), "spec": label_value(labels, "python.version"),
                   "manager": label_value(labels, "python.manager"), "prefix": probe.get("prefix")},
        "lock": {"file": label_value(labels, "lock.file"), "digest": lock_label,
                 "in_image": bool(in_image), "path": LOCK_IN_IMAGE if in_image else None,
                 "image_digest": in_image["sha256"] if in_image else None,
                 "matches_label": (in_image["sha256"] == lock_label)
                 if in_image and lock_label else None,
                 "packages": len(pins) if in_image else None},
        "base": {"name": labels.get(f"{oci}.base.name"),
                 "digest": labels.get(f"{oci}.base.digest"),
                 "suite": label_value(labels, "base.suite"),
                 "mirror": label_value(labels, "base.mirror"),
                 "variant": label_value(labels, "base.variant")},
        "references": {"mode": label_value(labels, "crds.references"),
                       "scope": label_value(labels, "crds.scope"), "baked": baked},
        "packages": [f"{name}=={version}" for name, version
                     in sorted(installed_versions(probe).items())],
        "build_record": str(record) if record else None,
        "selftest_at_build": build_selftest(record),
        "labels": labels,
    }


def build_selftest(record: Path | None) -> dict | None:
    """The self-test verdict a build record holds, and whether it ran or was reused."""
    if record is None:
        return None
    try:
        build = json.loads(record.read_text())["build"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not build.get("selftest"):
        return None
    return {"verdict": build["selftest"], "reused_from": build.get("selftest_reused_from")}


def at_build_line(at_build: dict) -> str:
    """``selftest: PASS ... at build (ran)`` or ``... (reused: the verdict of X, the same
    environment)``."""
    reused = at_build.get("reused_from")
    how = (f"reused: the verdict of {reused[7:19]}, the same environment layers"
           if reused else "ran on this image")
    return f"{at_build['verdict']} at build ({how})"


def format_inspection(info: dict) -> str:
    """The text form of ``inspect_image``."""
    rows = [("image", f"{info['image']} ({info['id'][7:19]})"),
            ("tags", ", ".join(info["tags"]) or "(none)"),
            ("created", f"{info['created'] or '?'} by niriss-pipe {info['tool_version'] or '?'} "
             f"from {info['spec'] or '?'} (revision {(info['revision'] or '?')[:12]})")]
    jwst = info["jwst"]
    if jwst["git"]:
        what = f"{jwst['installed'] or '?'} from {jwst['git']} @ {jwst['ref']}"
        what += f" (commit {jwst['commit']})" if jwst["commit"] else ""
    else:
        what = f"{jwst['installed'] or '?'} (PyPI release {jwst['version'] or '?'})"
    rows.append(("jwst", what))
    rows.append(("crds", info["crds"]["version"] or "not installed"))
    py = info["python"]
    rows.append(("python", f"{py['version']} ({py['manager'] or '?'}, {py['prefix']})"))
    imap = info["crds"]["niriss_imap"]
    rows.append(("context", info["crds"]["context"] + (f", NIRISS {imap}" if imap else "")))
    lock = info["lock"]
    if not lock["in_image"]:
        lock_text = (f"none in the image ({LOCK_IN_IMAGE} is absent: built before hash-locked "
                     "environments)")
    else:
        state = {True: "the image's copy matches", False: "the image's copy DIFFERS "
                 f"({lock['image_digest']})", None: "no lock.digest label"}[lock["matches_label"]]
        lock_text = (f"{lock['file']} {lock['digest'] or lock['image_digest']}, "
                     f"{lock['packages']} packages ({state})")
    rows.append(("lock", lock_text))
    base = info["base"]
    origin = (f"Debian {base['suite']} {base['variant']} from {base['mirror']}"
              if base["mirror"] else f"Debian {base['suite']}")
    rows.append(("base", f"{base['name']} {base['digest']} ({origin})"))
    refs = info["references"]
    if refs["baked"]:
        baked = refs["baked"]
        size = human_bytes(baked["bytes"]) if baked["bytes"] is not None else "?"
        rows.append(("references", f"baked ({refs['scope']}): {baked['count']} files, {size}, "
                     f"manifest {baked['manifest']}"))
    else:
        rows.append(("references", f"{refs['mode'] or '?'}: run with -v CACHE:{CRDS_PATH}:ro "
                     f"(scope {refs['scope'] or '?'})"))
    rows.append(("build record", info["build_record"] or
                 f"none for this image id in {records_dir()}"))
    at_build = info.get("selftest_at_build")
    if at_build:
        rows.append(("self-test", at_build_line(at_build)))
    rows.append(("packages", f"{len(info['packages'])} installed"))
    lines = [f"{key:<14} {value}" for key, value in rows]
    lines += [f"  {pin}" for pin in info["packages"]]
    return "\n".join(lines)
