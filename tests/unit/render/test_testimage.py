"""The verify --upstream test image's Dockerfile and build context (golden-tested)."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from niriss_pipe.render import dockerfile, testimage
from niriss_pipe.render.context import runtime_files
from niriss_pipe.runtime import contract
from tests.helpers import GOLDEN

IMAGE_ID = "sha256:" + "0b32af7e1a04" * 5 + "0b32"
LOCK = b"pytest==9.1.1 \\\n    --hash=sha256:" + b"4" * 64 + b"\n"


@pytest.mark.parametrize("ca", [False, True])
def test_golden(ca):
    """Reviewed in tests/golden; UPDATE_GOLDEN=1 rewrites it."""
    text = testimage.render_tests_dockerfile(IMAGE_ID, testimage.lock_digest(LOCK),
                                             ca_bundle=ca)
    golden = GOLDEN / f"tests{'-ca' if ca else ''}.Dockerfile"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_it_is_from_the_image_id_and_changes_nothing_of_the_image():
    text = testimage.render_tests_dockerfile(IMAGE_ID, testimage.lock_digest(LOCK))
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert froms == [f"FROM {IMAGE_ID} AS tests", f"FROM {IMAGE_ID}"]
    final = text.split(f"FROM {IMAGE_ID}\n", 1)[1]
    targets = [line.split()[-1] for line in final.splitlines() if line.startswith("COPY")]
    assert all(t.startswith((contract.TEST_SITE, contract.TEST_RUNTIME,
                             contract.TEST_LOCK_IN_IMAGE)) for t in targets), targets
    assert "ca-bundle" not in final and "ARG" not in final  # the CA stays in the first stage
    assert [name for name, _ in dockerfile.stages(text)] == ["test-deps", "test-image"]


def test_values_that_are_not_ids_or_digests_never_reach_the_text():
    with pytest.raises(ValueError, match="not an image id"):
        testimage.render_tests_dockerfile("niriss-pipe:jwst_1584\nRUN evil",
                                          testimage.lock_digest(LOCK))
    with pytest.raises(ValueError, match="not a sha256 digest"):
        testimage.render_tests_dockerfile(IMAGE_ID, "sha256:abc")


def test_the_context_holds_the_lock_the_runner_and_the_ca_when_asked():
    context = testimage.tests_context(IMAGE_ID, LOCK, b"PEM")
    names = set(tarfile.open(fileobj=io.BytesIO(context.tar())).getnames())
    assert {"Dockerfile", testimage.TEST_LOCK_NAME, dockerfile.CA_BUNDLE_NAME,
            "niriss_pipe/runtime/upstream.py", "niriss_pipe/runtime/upstream_plugin.py"} <= names
    assert {f"niriss_pipe/runtime/{n}" for n in runtime_files()} <= names
    without = testimage.tests_context(IMAGE_ID, LOCK)
    assert dockerfile.CA_BUNDLE_NAME not in without.files
    assert context.digest(IMAGE_ID) != without.digest(IMAGE_ID)
