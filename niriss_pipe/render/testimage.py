"""Render layer: the derived test image of ``verify --upstream``: FROM the image's id, plus
the test lock's packages and this tool's test runner. Pure and deterministic.

The image itself is never rebuilt or changed: its id stays the same, and the test image is
another image whose only additions are under ``TEST_SITE`` and ``TEST_RUNTIME``.
"""

from __future__ import annotations

import functools
import hashlib

import jinja2

from niriss_pipe import __version__
from niriss_pipe.core import grammar, templates
from niriss_pipe.render.context import PACKAGE_DIR, BuildContext, runtime_files
from niriss_pipe.render.dockerfile import CA_BUNDLE_NAME, CA_ENV_IN_BUILD, CA_IN_IMAGE
from niriss_pipe.runtime import contract

TEMPLATE = "Dockerfile.test.j2"
TEST_LOCK_NAME = "test-requirements.lock"  # its name in the build context


@functools.lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    return templates.environment(trim=True).get_template(TEMPLATE)


def lock_digest(test_lock: bytes) -> str:
    return "sha256:" + hashlib.sha256(test_lock).hexdigest()


def render_tests_dockerfile(image_id: str, test_lock_digest: str, *,
                            ca_bundle: bool = False) -> str:
    """The test image's Dockerfile; ids and digests are checked whole (they land in FROM and
    LABEL lines), so a value that is not one is a bug, never a user error."""
    if not grammar.is_image_id(image_id):
        raise ValueError(f"not an image id: {image_id!r}")
    if not grammar.full(grammar.IMAGE_ID, test_lock_digest):
        raise ValueError(f"not a sha256 digest: {test_lock_digest!r}")
    return _template().render(
        tool_version=__version__, image_id=image_id, test_lock_digest=test_lock_digest,
        ca_bundle=CA_BUNDLE_NAME if ca_bundle else None, ca_in_image=CA_IN_IMAGE,
        ca_env=CA_ENV_IN_BUILD, env_prefix=contract.ENV_PREFIX, test_site=contract.TEST_SITE,
        test_runtime=contract.TEST_RUNTIME, test_lock_file=TEST_LOCK_NAME,
        test_lock_in_image=contract.TEST_LOCK_IN_IMAGE, label_ns=contract.LABEL_NS,
        test_of=contract.TEST_OF, test_lock_digest_key=contract.TEST_LOCK_DIGEST)


def tests_context(image_id: str, test_lock: bytes, ca_bundle: bytes | None = None
                  ) -> BuildContext:
    """The build context: the Dockerfile, the test lock, this tool's runtime (the runner
    and its pytest plugin) and, when asked, the CA bundle for the downloads."""
    dockerfile = render_tests_dockerfile(image_id, lock_digest(test_lock),
                                         ca_bundle=ca_bundle is not None)
    files = {"niriss_pipe/__init__.py": (PACKAGE_DIR / "__init__.py").read_bytes(),
             TEST_LOCK_NAME: test_lock}
    for name in runtime_files():
        files[f"niriss_pipe/runtime/{name}"] = (PACKAGE_DIR / "runtime" / name).read_bytes()
    if ca_bundle is not None:
        files[CA_BUNDLE_NAME] = ca_bundle
    return BuildContext(dockerfile=dockerfile, files=files)
