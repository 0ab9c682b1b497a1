"""Provenance layer: run the probe (``runtime/probe.py``) in one offline container of an image
and read its answer."""

from __future__ import annotations

import json
from importlib import resources

from niriss_pipe.core.errors import EngineError
from niriss_pipe.runtime.contract import (
    CRDS_PATH,
    ENV_PREFIX,
    LOCK_IN_IMAGE,
    TEST_LOCK_IN_IMAGE,
    manifest_digest,
)
from niriss_pipe.runtime.probe import MARK as PROBE_MARK


def probe_source() -> str:
    """The probe's text, sent with ``python -c`` (old images have no copy of it)."""
    return resources.files("niriss_pipe.runtime").joinpath("probe.py").read_text()


def run_probe(engine, image: str, *, crds: bool = False, env: bool = False) -> dict:
    """Run the probe in one ``--network none`` container of ``image``; return what it found.

    Uses ``Engine.run_split`` (not ``Engine.run``) to keep the probe's stdout, which can be
    megabytes with ``env``, apart from stderr and out of the verbose log.
    """
    opts = {"lock": LOCK_IN_IMAGE, "test_lock": TEST_LOCK_IN_IMAGE,
            "crds": CRDS_PATH if crds else None,
            "env": ENV_PREFIX if env else None}
    code, stdout, stderr = engine.run_split(image, ["python", "-c", probe_source(),
                                                    json.dumps(opts)])
    found = read_answer(stdout)
    if code != 0 or found is None:
        tail = "\n".join(f"    {t}" for t in (stderr or stdout).strip().splitlines()[-15:])
        raise EngineError(f"the provenance probe failed in {image} (exit {code}).",
                          "the image's Python could not run the standard-library probe; is it "
                          f"a niriss-pipe image?\n{tail}")
    return found


def read_answer(stdout: str) -> dict | None:
    """The probe's answer line, with the baked manifest's digest computed here from the
    file sha1s it lists (by the contract's one formula); None when there is none."""
    line = next((text for text in reversed(stdout.splitlines()) if text.startswith(PROBE_MARK)),
                None)
    if line is None:
        return None
    found = json.loads(line[len(PROBE_MARK):])
    manifest = found.get("crds_manifest")
    if manifest:
        manifest["manifest"] = manifest_digest(manifest.pop("sha1s"))
    return found


def installed_versions(probe: dict) -> dict[str, str]:
    return {name: info["version"] for name, info in probe["packages"].items()}
