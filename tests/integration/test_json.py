"""``--json`` of the commands that need an engine, as scripts call them: one document on
stdout (progress on stderr), also when the check fails. sync --json is in test_sync.py, export
--json in test_export.py, batch submit --json and --parsable in test_batch.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import cli

pytestmark = pytest.mark.engine


def test_build_json_names_the_image_its_tags_and_its_log(default_build, default_image_id):
    proc = cli("build", "images/default.yaml", "--json")
    (image,) = json.loads(proc.stdout)["images"]
    assert image["spec"] == "images/default.yaml" and image["built"] is False  # up to date
    assert image["image_id"].startswith("sha256:")
    assert image["tags"] == ["niriss-pipe:jwst_1584", "niriss-pipe:jwst_1584-jwst3.0.0-py3.11"]
    assert re.fullmatch(r"niriss-pipe:content-[0-9a-f]{16}", image["content_tag"])
    log = Path(image["log"])
    assert log.is_file() and "is up to date" in log.read_text()
    assert "is up to date" in proc.stderr


def test_verify_json_lists_every_check(default_image):
    proc = cli("verify", default_image, "--no-selftest", "--json")
    document = json.loads(proc.stdout)
    assert document["verified"] is True and document["image"] == default_image
    assert [(c["name"], c["ok"]) for c in document["checks"]] == [
        ("lock", True), ("environment", True), ("context", True)]
    context = document["checks"][-1]  # run when the cache holds the image's context
    assert context["ran"] or context["summary"].startswith("not run for jwst_1584.pmap")
    assert "verifying" in proc.stderr


def test_verify_json_when_the_image_does_not_match(engine, default_image):
    from tests.helpers import derived_image

    dockerfile = (f"FROM {default_image}\nUSER root\nRUN sed -i 's/^six==1.17.0/six==1.16.0/' "
                  "/opt/niriss-pipe/requirements.lock\nUSER jwst\n")
    with derived_image(engine, "niriss-pipe-json-test:tampered", dockerfile) as tag:
        proc = cli("verify", tag, "--no-selftest", "--json", check=False)
    assert proc.returncode == 1
    document = json.loads(proc.stdout)  # one document: the checks, then the error
    assert document["verified"] is False
    assert {c["name"]: c["ok"] for c in document["checks"]} == {"lock": False,
                                                                "environment": False,
                                                                "context": True}
    assert "does not match what it was built from" in document["error"]
    assert proc.stderr.startswith("verifying") and "error: " in proc.stderr
