"""Build layer: the derived test image of ``verify --upstream``, built once per image and test
lock and found again by its content tag (``NAME:tests-<hash>``, also ``NAME:<tag>-test``).

It is FROM the image's id, so the image and its id never change; it adds only the test lock's
packages (downloaded in a build stage of its own, through the CA bundle and proxies a build
uses) and this tool's test runner.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from niriss_pipe.build.network import find_ca_bundle, proxy_buildargs
from niriss_pipe.core import grammar
from niriss_pipe.core.errors import EngineError
from niriss_pipe.engine.values import ImageInfo
from niriss_pipe.render.testimage import tests_context
from niriss_pipe.runtime.contract import LABEL_NS, TEST_OF

STAGE = "tests"  # the build stage that downloads and installs the test dependencies
DEFAULT_REPOSITORY = "niriss-pipe"


def is_test_image(image: ImageInfo) -> bool:
    return bool((image.labels or {}).get(f"{LABEL_NS}.{TEST_OF}"))


def repository_and_tag(reference: str, image: ImageInfo) -> tuple[str, str | None]:
    """The repository to tag the test image in, and the tag it was asked by (None when it was
    asked by id or digest)."""
    short = reference.removeprefix("sha256:")
    match = grammar.REFERENCE.fullmatch(reference)
    by_id = image.id.removeprefix("sha256:").startswith(short) or "@" in reference
    if match and not by_id:
        return match.group("name"), match.group("tag") or "latest"
    for tag in image.tags:
        return tag.rsplit(":", 1)[0], None
    return DEFAULT_REPOSITORY, None


def ensure_test_image(engine, image: ImageInfo, reference: str, test_lock: Path, *,
                      ca_bundle: str | None = None, rebuild: bool = False) -> str:
    """The id of ``image``'s test image with ``test_lock`` installed: found by its content
    tag, else built (needs the package index, as a build does)."""
    say = engine.reporter.say
    ca = find_ca_bundle(ca_bundle)
    context = tests_context(image.id, test_lock.read_bytes(),
                            ca.read_bytes() if ca is not None else None)
    repository, asked = repository_and_tag(reference, image)
    content = f"tests-{context.digest(image.id)[:16]}"
    existing = engine.image_id(f"{repository}:{content}")
    if existing and not rebuild:
        say(f"test image {repository}:{content} ({existing[7:19]}) is up to date")
        _tag(engine, existing, repository, asked)
        return existing
    say(f"building the test image of {reference} ({image.id[7:19]}) with {test_lock}")
    try:
        outcome = engine.build(context, proxy_buildargs(), no_cache=rebuild, keep=(STAGE,))
    except EngineError as err:
        _name_stage(engine, repository, getattr(err, "stage_images", {}))
        raise EngineError(f"the test image of {reference} could not be built: {err.what}",
                          err.fix) from None
    except KeyboardInterrupt as stop:  # the completed stages stay, as after a failure
        with contextlib.suppress(EngineError):
            _name_stage(engine, repository, getattr(stop, "stage_images", {}))
        raise
    _name_stage(engine, repository, outcome.stage_images)
    engine.tag(outcome.image_id, repository, content)
    _tag(engine, outcome.image_id, repository, asked)
    return outcome.image_id


def _tag(engine, image_id: str, repository: str, asked: str | None) -> None:
    if asked and not asked.endswith("-test"):
        tag = f"{asked}-test"[:128]
        if engine.image_id(f"{repository}:{tag}") != image_id:
            engine.tag(image_id, repository, tag)


def _name_stage(engine, repository: str, stages: dict[str, str]) -> None:
    """The download stage, named (``NAME:tests-deps-<id>``) so it is no dangling image and
    the next build of a test image finds its layers."""
    image_id = stages.get(STAGE)
    if image_id:
        tag = f"tests-deps-{image_id[7:19]}"
        if engine.image_id(f"{repository}:{tag}") != image_id:
            engine.tag(image_id, repository, tag)
