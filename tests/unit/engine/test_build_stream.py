"""What a build that fails or is interrupted leaves in the engine (engine/build.py
``discard_partial``, engine/client.py ``Engine.build``): its completed build stages, and
nothing of the stage it was in; never an image another build made (cached), one with a tag,
or one something is built on. Against a fake SDK client that answers as the engine does; the
real engine is interrupted for real in tests/integration/test_images.py."""

from __future__ import annotations

import io

import docker
import pytest

from niriss_pipe.core.errors import EngineError
from niriss_pipe.core.progress import Reporter
from niriss_pipe.engine.client import Engine
from niriss_pipe.render.context import BuildContext

DOCKERFILE = """\
# == stage: system ==
FROM base:1 AS environment
RUN one
RUN two
# == stage: runtime ==
FROM environment AS runtime
RUN three
RUN four
"""
IDS = {name: name * 12 for name in "abcdef"}  # short ids, as the build stream prints them


class FakeImage:
    def __init__(self, short: str, tags=()):
        self.id, self.tags = f"sha256:{short}{'0' * 52}", list(tags)


class FakeContainer:
    def __init__(self, client, name):
        self.client, self.name = client, name

    def remove(self, force=False):
        self.client.calls.append(("remove container", self.name, force))


class FakeClient:
    def __init__(self, stream, tagged=(), refused=(), containers=None):
        self.calls: list[tuple] = []
        self.stream_chunks = stream
        self.known = {short: FakeImage(short, ["base:1"] if short in tagged else ())
                      for short in IDS.values()}
        self.refused = set(refused)
        self.running = containers or {}  # image short id -> container names
        self.images, self.containers, self.api = self, self, self
        self.closed = False

    # images.get / containers.list / api.build / api.remove_image, as the SDK's
    def get(self, reference):
        short = reference.removeprefix("sha256:")[:12]
        if short not in self.known:
            raise docker.errors.ImageNotFound(reference)
        return self.known[short]

    def list(self, all=False, filters=None):
        short = filters["ancestor"].removeprefix("sha256:")[:12]
        return [FakeContainer(self, name) for name in self.running.get(short, [])]

    def build(self, **kwargs):
        self.calls.append(("build", kwargs["nocache"]))
        return self._generate()

    def _generate(self):
        try:
            for chunk in self.stream_chunks:
                if chunk is KeyboardInterrupt:
                    raise KeyboardInterrupt  # Ctrl-C while the engine's answer is awaited
                yield chunk
        finally:
            self.closed = True

    def remove_image(self, image_id, noprune=False):
        short = image_id.removeprefix("sha256:")[:12]
        if short in self.refused:
            raise docker.errors.APIError("conflict: image has dependent child images")
        self.calls.append(("remove image", short, noprune))


def engine_with(client: FakeClient) -> Engine:
    engine = Engine.__new__(Engine)  # no connection: the client is the fake
    engine.client, engine.errors, engine.transport_errors = client, docker.errors, ()
    engine.reporter = Reporter(out=io.StringIO(), err=io.StringIO())
    return engine


def lines(*text: str) -> list[dict]:
    return [{"stream": line + "\n"} for line in text]


def made(step: int, total: int, instruction: str, short: str) -> list[dict]:
    return lines(f"Step {step}/{total} : {instruction}", " ---> Running in 123456789abc",
                 f" ---> {short}")


def cached(step: int, total: int, instruction: str, short: str) -> list[dict]:
    return lines(f"Step {step}/{total} : {instruction}", " ---> Using cache", f" ---> {short}")


FIRST_STAGE = [*lines("Step 1/6 : FROM base:1 AS environment", f" ---> {IDS['a']}"),
               *made(2, 6, "RUN one", IDS["b"]), *made(3, 6, "RUN two", IDS["c"])]


def build(client: FakeClient, no_cache: bool = True, keep=("environment",)):
    return engine_with(client).build(BuildContext(DOCKERFILE, {}), {}, no_cache=no_cache,
                                     keep=keep)


def test_an_interrupt_in_the_second_stage_keeps_the_first_and_removes_the_rest():
    stream = [*FIRST_STAGE, *lines("Step 4/6 : FROM environment AS runtime",
                                   f" ---> {IDS['c']}"),
              *made(5, 6, "RUN three", IDS["d"]),
              *lines("Step 6/6 : RUN four", " ---> Running in 123456789abc"), KeyboardInterrupt]
    client = FakeClient(stream, tagged={IDS["a"]}, containers={IDS["d"]: ["step-6"]})
    with pytest.raises(KeyboardInterrupt) as stopped:
        build(client)
    assert client.closed  # the build's connection: the engine cancels the build
    assert stopped.value.stage_images == {"environment": FakeImage(IDS["c"]).id}
    assert client.calls[1:] == [("remove container", "step-6", True),
                                ("remove image", IDS["d"], True)]  # not c: a completed stage


def test_an_interrupt_in_the_first_stage_removes_what_it_made_down_to_the_base():
    client = FakeClient([*FIRST_STAGE[:-3], *made(3, 6, "RUN two", IDS["c"])[:2],
                         KeyboardInterrupt], tagged={IDS["a"]})
    with pytest.raises(KeyboardInterrupt) as stopped:
        build(client)
    assert stopped.value.stage_images == {}
    assert client.calls[1:] == [("remove image", IDS["b"], True)]  # never the base (a)


def test_a_cached_step_stops_the_removal():
    """A step's image taken from the cache belongs to another build's chain, as does the
    container of a later step of that chain: neither is touched."""
    stream = [*lines("Step 1/6 : FROM base:1 AS environment", f" ---> {IDS['a']}"),
              *cached(2, 6, "RUN one", IDS["b"]),
              *lines("Step 3/6 : RUN two", " ---> Running in 123456789abc"), KeyboardInterrupt]
    client = FakeClient(stream, tagged={IDS["a"]}, containers={IDS["b"]: ["someone-else"]})
    with pytest.raises(KeyboardInterrupt) as stopped:
        build(client, no_cache=False)
    assert stopped.value.stage_images == {}
    assert client.calls == [("build", False)]


def test_a_cached_build_removes_only_what_it_made():
    stream = [*lines("Step 1/6 : FROM base:1 AS environment", f" ---> {IDS['a']}"),
              *cached(2, 6, "RUN one", IDS["b"]), *cached(3, 6, "RUN two", IDS["c"]),
              *lines("Step 4/6 : FROM environment AS runtime", f" ---> {IDS['c']}"),
              *made(5, 6, "RUN three", IDS["d"]), *made(6, 6, "RUN four", IDS["e"])[:2],
              KeyboardInterrupt]
    client = FakeClient(stream, tagged={IDS["a"]}, containers={IDS["d"]: ["step-6"]})
    with pytest.raises(KeyboardInterrupt) as stopped:
        build(client, no_cache=False)
    assert stopped.value.stage_images == {"environment": FakeImage(IDS["c"]).id}
    assert client.calls[1:] == [("remove container", "step-6", True),
                                ("remove image", IDS["d"], True)]


def test_an_image_the_engine_refuses_to_remove_stops_the_removal():
    """The engine committed one more step after the interrupt (an image built on this
    one): the removal stops there, and the parents stay too."""
    stream = [*FIRST_STAGE, *lines("Step 4/6 : FROM environment AS runtime",
                                   f" ---> {IDS['c']}"),
              *made(5, 6, "RUN three", IDS["d"]), KeyboardInterrupt]
    client = FakeClient(stream, tagged={IDS["a"]}, refused={IDS["d"]})
    with pytest.raises(KeyboardInterrupt) as stopped:
        build(client)
    assert stopped.value.stage_images == {"environment": FakeImage(IDS["c"]).id}
    assert [call for call in client.calls if call[0] == "remove image"] == []


def test_a_failure_removes_what_the_failed_stage_made_and_keeps_the_completed_one():
    stream = [*FIRST_STAGE, *lines("Step 4/6 : FROM environment AS runtime",
                                   f" ---> {IDS['c']}"),
              *made(5, 6, "RUN three", IDS["d"]),
              *lines("Step 6/6 : RUN four", " ---> Running in 123456789abc"),
              {"error": "The command '/bin/sh -c four' returned a non-zero code: 1"}]
    client = FakeClient(stream, tagged={IDS["a"]})
    with pytest.raises(EngineError) as failed:
        build(client)
    assert failed.value.stage_images == {"environment": FakeImage(IDS["c"]).id}
    assert [call for call in client.calls if call[0] == "remove image"] == [
        ("remove image", IDS["d"], True)]


def test_a_tagged_image_is_never_removed():
    """An image with a tag (the base, or a stage an earlier build named) is no step's leftover,
    even when this build's step made an image with the same id."""
    stream = [*lines("Step 1/6 : FROM base:1 AS environment", f" ---> {IDS['a']}"),
              *made(2, 6, "RUN one", IDS["b"]), KeyboardInterrupt]
    client = FakeClient(stream, tagged={IDS["a"], IDS["b"]})
    with pytest.raises(KeyboardInterrupt):
        build(client)
    assert [call for call in client.calls if call[0] == "remove image"] == []


def test_a_completed_stage_the_caller_does_not_keep_goes_too():
    """Only the stages the caller names are kept: another one, left untagged, would be a
    ``<none>`` image and the newest chain for the next build's cache."""
    stream = [*FIRST_STAGE, *lines("Step 4/6 : FROM environment AS runtime",
                                   f" ---> {IDS['c']}"),
              *made(5, 6, "RUN three", IDS["d"]), KeyboardInterrupt]
    client = FakeClient(stream, tagged={IDS["a"]})
    with pytest.raises(KeyboardInterrupt) as stopped:
        build(client, keep=())
    assert stopped.value.stage_images == {}
    assert [call for call in client.calls if call[0] == "remove image"] == [
        ("remove image", IDS["d"], True), ("remove image", IDS["c"], True),
        ("remove image", IDS["b"], True)]  # down to the base, which is tagged
