"""Engine layer: the Docker Engine through the ``docker`` SDK (classic build API).

Only this module talks to the engine. It turns engine failures into
``EngineError`` paragraphs and streams builds into stage-by-stage progress.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from .buildcontext import BuildContext
from .errors import EngineError
from .progress import Reporter, StageClock, failure_excerpt
from .render import stages

STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def _docker():
    try:
        import docker
    except ImportError:  # pragma: no cover - depends on the install
        raise EngineError("the Python 'docker' package is not installed.",
                          "install niriss-pipe with its dependencies: pip install -e .") from None
    return docker


@dataclass
class RunResult:
    exit_code: int
    output: str


@dataclass(frozen=True)
class ImageInfo:
    """What the other layers read of a local image (no SDK objects leave this module)."""

    id: str
    tags: tuple[str, ...]
    labels: dict
    env: tuple[str, ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]


class Engine:
    """A connection to the Docker Engine with the few operations niriss-pipe needs."""

    def __init__(self, reporter: Reporter | None = None):
        docker = _docker()
        self.reporter = reporter or Reporter()
        self.errors = docker.errors
        try:
            self.client = docker.from_env(timeout=600)
            self.client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure here means "no engine"
            raise EngineError(
                f"cannot reach a Docker Engine ({_short(exc)}).",
                "start the Docker Engine (Debian: apt-get install docker.io; dockerd &) or point "
                "DOCKER_HOST at one, then run the command again.") from None

    # -- images -----------------------------------------------------------------------------
    def image_id(self, reference: str) -> str | None:
        """The id of a local image, or None when it is not present."""
        try:
            return self.client.images.get(reference).id
        except self.errors.ImageNotFound:
            return None

    def image_info(self, reference: str) -> ImageInfo | None:
        """Id, tags, labels and run configuration of a local image; None when absent."""
        try:
            image = self.client.images.get(reference)
        except self.errors.ImageNotFound:
            return None
        config = image.attrs.get("Config") or {}
        return ImageInfo(id=image.id, tags=tuple(image.tags), labels=dict(image.labels or {}),
                         env=tuple(config.get("Env") or ()),
                         entrypoint=tuple(config.get("Entrypoint") or ()),
                         cmd=tuple(config.get("Cmd") or ()))

    def remove_image(self, reference: str) -> None:
        """Remove an image and its tags (forced); absent is fine."""
        try:
            self.client.api.remove_image(reference, force=True)
        except self.errors.NotFound:
            pass

    def server_version(self) -> dict:
        return self.client.version()

    @contextlib.contextmanager
    def _api_errors(self, what: str):
        try:
            yield
        except self.errors.APIError as exc:
            raise EngineError(f"the engine failed to {what} ({_short(exc)}).",
                              "check the engine log (/var/log/dockerd.log) and free disk space, "
                              "then try again.") from None

    def save_image(self, image_id: str, named: str, chunk_size: int) -> Iterator[bytes]:
        """``docker save``: the image as a tar stream, named with ``named`` (if given) so that
        ``load`` restores the tag."""
        with self._api_errors(f"save {named or image_id}"):
            image = self.client.images.get(image_id)
            yield from image.save(chunk_size=chunk_size, named=named or False)

    @contextlib.contextmanager
    def filesystem(self, image_id: str, chunk_size: int) -> Iterator[Iterator[bytes]]:
        """The flattened file system of a created (never started) container, as a tar
        stream; the container is removed on leaving the block."""
        with self._api_errors(f"export the file system of {image_id[7:19]}"):
            container = self.client.containers.create(image_id, command=["true"],
                                                      network_mode="none")
            try:
                yield container.export(chunk_size=chunk_size)
            finally:
                container.remove(force=True)

    def run_split(self, image: str, command: list[str]) -> tuple[int, str, str]:
        """Run ``command`` offline; return exit code, stdout and stderr apart (a probe's
        stdout can be megabytes and stays out of the verbose log)."""
        container = self.client.containers.create(image, command=command,
                                                  network_mode="none", init=True)
        try:
            container.start()
            code = container.wait()["StatusCode"]
            stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
            stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
        finally:
            container.remove(force=True)
        return code, stdout, stderr

    def image_labels(self, reference: str) -> dict[str, str]:
        return self.client.images.get(reference).labels or {}

    def image_size(self, reference: str) -> int:
        return int(self.client.images.get(reference).attrs["Size"])

    def repo_digest(self, reference: str) -> str:
        """The registry digest of a pulled image, else its local id."""
        image = self.client.images.get(reference)
        digests = image.attrs.get("RepoDigests") or []
        return digests[0].split("@", 1)[1] if digests else image.id

    def pull(self, reference: str) -> str:
        self.reporter.say(f"pulling {reference}")
        try:
            return self.client.images.pull(reference).id
        except self.errors.APIError as exc:
            raise EngineError(f"cannot pull base image '{reference}' ({_short(exc)}).",
                              "load it (docker load / docker pull on a machine with registry "
                              "access), or make the base locally from Debian's mirror by removing "
                              "'base.image' from the spec and running: python build.py base SPEC."
                              ) from None

    def tag(self, image_id: str, repository: str, tag: str) -> None:
        self.client.api.tag(image_id, repository, tag)

    def untag(self, reference: str) -> None:
        try:
            self.client.api.remove_image(reference, noprune=True)
        except self.errors.NotFound:
            pass

    def remove_untagged(self, image_id: str) -> None:
        """Remove a just-built image unless some tag (an earlier, good build) points at it."""
        try:
            if not self.client.images.get(image_id).tags:
                self.client.api.remove_image(image_id)
        except self.errors.APIError:
            pass

    def images_with_label(self, label: str) -> list:
        return self.client.images.list(filters={"label": label})

    def import_rootfs(self, tar_path: str, repository: str, tag: str,
                      changes: list[str]) -> str:
        """``docker import`` a root file system tar as ``repository:tag``."""
        with open(tar_path, "rb") as stream:
            self.client.api.import_image(src=stream, repository=repository, tag=tag,
                                         changes=changes)
        image_id = self.image_id(f"{repository}:{tag}")
        if image_id is None:
            raise EngineError(f"importing the base image {repository}:{tag} failed.",
                              "see the engine log (/var/log/dockerd.log) and run again.")
        return image_id

    # -- build ------------------------------------------------------------------------------
    def build(self, context: BuildContext, buildargs: dict[str, str],
              no_cache: bool = False) -> str:
        """Build the context; return the image id. Untagged: tags come after the self-test."""
        plan = stages(context.dockerfile)
        stage_of = [name for name, count in plan for _ in range(count)]
        clock = StageClock(self.reporter)
        with tempfile.TemporaryFile() as tar:
            context.write_tar(tar)
            tar.seek(0)
            return self._stream_build(tar, buildargs, no_cache, stage_of, clock)

    def _stream_build(self, tar, buildargs, no_cache, stage_of, clock) -> str:
        step_line = ""
        stream = self.client.api.build(
            fileobj=tar, custom_context=True, decode=True, rm=True,
            forcerm=True, buildargs=buildargs, pull=False, nocache=no_cache)
        image_id = None
        uncached = False  # the current step has not (yet) reported "Using cache"
        for chunk in stream:
            text = chunk.get("stream", "")
            if "error" in chunk:
                clock.finish()
                raise self._build_failure(step_line, chunk["error"])
            if chunk.get("aux", {}).get("ID"):
                image_id = chunk["aux"]["ID"]
            for line in text.splitlines():
                self.reporter.detail(line)
                step = STEP_RE.match(line)
                if step:
                    if uncached:
                        clock.step_ran()
                    step_line = line
                    number = int(step.group(1))
                    clock.enter(stage_of[number - 1] if number <= len(stage_of) else "build")
                    uncached = not step.group(3).upper().startswith("FROM ")
                elif line.startswith(" ---> Using cache"):
                    uncached = False
        if uncached:
            clock.step_ran()
        clock.finish()
        if image_id is None:
            raise self._build_failure(step_line, "the engine reported no image id")
        return image_id

    def _build_failure(self, step_line: str, error: str) -> EngineError:
        tail = "\n".join(f"    {line}" for line in failure_excerpt(list(self.reporter.tail)))
        return EngineError(
            f"the build failed at {step_line.strip() or 'its first step'}: {error.strip()}",
            "read the step's last output lines below (run with -v for the whole log); no tag was "
            "changed." + (f"\n  last output:\n{tail}" if tail else ""))

    # -- run --------------------------------------------------------------------------------
    def run(self, image: str, command: list[str], *, network: bool = False,
            volumes: dict | None = None, user: str | None = None,
            environment: dict | None = None, stream: bool = False) -> RunResult:
        """Run ``command`` in a throw-away container; no network unless asked."""
        container = self.client.containers.create(
            image, command=command, network_mode=None if network else "none",
            volumes=volumes or {}, user=user, environment=environment or {}, init=True)
        try:
            container.start()
            chunks, pending = [], ""
            show = self.reporter.say if stream else self.reporter.detail
            for raw in container.logs(stream=True, follow=True):
                text = raw.decode(errors="replace")
                chunks.append(text)
                *complete, pending = (pending + text).split("\n")
                for line in complete:
                    show(line)
            if pending:
                show(pending)
            code = container.wait()["StatusCode"]
            return RunResult(code, "".join(chunks))
        finally:
            container.remove(force=True)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
