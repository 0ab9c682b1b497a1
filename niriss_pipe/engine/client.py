"""Engine layer: the Docker Engine through the ``docker`` SDK (classic build API).

Only this module talks to the engine. No SDK object or exception leaves it: images are
``ImageInfo`` values, and every engine failure becomes an ``EngineError`` paragraph (a
missing image or a name the engine rejects, a ``UserError``). Builds stream into
stage-by-stage progress.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tarfile
import tempfile
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path

from niriss_pipe.core import grammar
from niriss_pipe.core.errors import EngineError, UserError, prog
from niriss_pipe.core.progress import Reporter
from niriss_pipe.engine.build import BuildStream
from niriss_pipe.engine.values import BuildOutcome, ImageConfig, ImageInfo, RunResult
from niriss_pipe.render.context import BuildContext

# The network of the build's RUN steps: the engine's default bridge unless set (``host``: for
# engines whose bridge cannot reach the package index, e.g. one started with --bridge=none).
BUILD_NETWORK_ENV = "NIRISS_PIPE_BUILD_NETWORK"
ENGINE_FIX = ("check that the engine runs (docker info) and its log (/var/log/dockerd.log), "
              "and free disk space, then try again.")


def _docker():
    try:
        import docker
    except ImportError:  # pragma: no cover - depends on the install
        raise EngineError("the Python 'docker' package is not installed.",
                          "install niriss-pipe with its dependencies: pip install -e .") from None
    return docker


def check_reference(reference: str) -> str:
    """A name, ``name:tag``, ``name@digest`` or an image id; a UserError otherwise (the engine
    would answer a bare 400)."""
    if not grammar.is_reference(reference):
        raise UserError(f"{reference!r} is not a Docker image name or id.",
                        "give a name like niriss-pipe:jwst_1584 (lower case; see "
                        "'docker images'), or an image id.")
    return reference


def _guarded(what: str):
    """Turn the SDK's exceptions into our paragraphs (method decorator)."""

    def wrap(method):
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            with self.sdk_errors(what.format(*args)):
                return method(self, *args, **kwargs)

        return guarded

    return wrap


class Engine:
    """A connection to the Docker Engine with the few operations niriss-pipe needs."""

    def __init__(self, reporter: Reporter | None = None):
        docker = _docker()
        self.reporter = reporter or Reporter()
        self.errors = docker.errors
        try:
            import requests

            self.transport_errors: tuple = (requests.exceptions.RequestException,)
        except ImportError:  # pragma: no cover - the SDK depends on requests
            self.transport_errors = ()
        try:
            self.client = docker.from_env(timeout=600)
            self.client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure here means "no engine"
            raise UserError(  # exit 2: the user starts it (or points DOCKER_HOST at one)
                f"cannot reach a Docker Engine ({_short(exc)}).",
                "start the Docker Engine (Debian: apt-get install docker.io; dockerd &) or point "
                "DOCKER_HOST at one, then run the command again.") from None

    @contextlib.contextmanager
    def sdk_errors(self, what: str):
        """Every SDK failure as a paragraph: ``what`` says what was being done."""
        try:
            yield
        except self.errors.ImageNotFound as exc:
            raise UserError(f"no such image while trying to {what} ({_short(exc)}).",
                            f"build it first ({prog()} build SPEC), or give a name or id "
                            "from 'docker images'.") from None
        except self.errors.APIError as exc:
            if exc.status_code == 400 or "invalid reference" in str(exc).lower():
                raise UserError(f"the engine refused to {what}: {_short(exc)}",
                                "check the image name (lower case, see 'docker images').") \
                    from None
            raise EngineError(f"the engine failed to {what} ({_short(exc)}).", ENGINE_FIX) \
                from None
        except self.errors.DockerException as exc:
            raise UserError(f"cannot {what}: {_short(exc)}",
                            "check the image name or the option given.") from None
        except self.transport_errors as exc:
            raise EngineError(f"lost the connection to the Docker Engine while trying to {what} "
                              f"({_short(exc)}).", ENGINE_FIX) from None

    # -- images -----------------------------------------------------------------------------
    @_guarded("look up {0}")
    def image_id(self, reference: str) -> str | None:
        """The id of a local image, or None when it is not present."""
        try:
            return self.client.images.get(check_reference(reference)).id
        except self.errors.ImageNotFound:
            return None

    @_guarded("inspect {0}")
    def image_info(self, reference: str) -> ImageInfo | None:
        """Id, tags, labels and run configuration of a local image; None when absent."""
        try:
            image = self.client.images.get(check_reference(reference))
        except self.errors.ImageNotFound:
            return None
        return _info(image)

    def image_config(self, image_id: str) -> ImageConfig | None:
        """The config as inspect and history show it (no save); None when absent."""
        with self._api_errors(f"inspect {image_id[7:19]}"):
            try:
                attrs = self.client.api.inspect_image(image_id)
            except self.errors.ImageNotFound:
                return None
            history = self.client.api.history(image_id)  # newest first
        extra = {key: attrs[name] for key, name in (("author", "Author"), ("variant", "Variant"),
                                                    ("os.version", "OsVersion"))
                 if attrs.get(name)}
        return ImageConfig(id=attrs["Id"], layers=tuple(attrs["RootFS"].get("Layers") or ()),
                           config=attrs.get("Config") or {},
                           architecture=attrs.get("Architecture") or "",
                           os=attrs.get("Os") or "",
                           history=tuple((entry.get("CreatedBy") or "", entry.get("Comment") or "")
                                         for entry in reversed(history)),
                           extra=extra)

    @_guarded("remove {0}")
    def remove_image(self, reference: str) -> None:
        """Remove an image and its tags (forced); absent is fine."""
        try:
            self.client.api.remove_image(reference, force=True)
        except self.errors.NotFound:
            pass

    @_guarded("ask for its version")
    def server_version(self) -> dict:
        return self.client.version()

    @_guarded("ask how it stores images")
    def image_store(self) -> str:
        """``containerd`` when the engine keeps images in containerd's image store (Docker
        29 does on a new install; ``docker info``: driver-type io.containerd.snapshotter.v1),
        which names an image by its manifest's digest; else ``classic`` (graph drivers such
        as overlay2), which names it by its config's."""
        status = self.client.info().get("DriverStatus") or []
        containerd = any(isinstance(pair, (list, tuple)) and len(pair) == 2
                         and pair[0] == "driver-type" and "containerd" in str(pair[1])
                         for pair in status)
        return "containerd" if containerd else "classic"

    @contextlib.contextmanager
    def _api_errors(self, what: str):
        with self.sdk_errors(what):
            yield

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

    @_guarded("run a probe in {0}")
    def run_split(self, image: str, command: list[str], *, volumes: dict | None = None,
                  environment: dict | None = None, user: str | None = None
                  ) -> tuple[int, str, str]:
        """Run ``command`` offline; return exit code, stdout and stderr apart (a probe's
        stdout can be megabytes and stays out of the verbose log)."""
        container = self.client.containers.create(image, command=command,
                                                  network_mode="none", init=True,
                                                  volumes=volumes or {}, user=user,
                                                  environment=environment or {})
        try:
            container.start()
            code = container.wait()["StatusCode"]
            stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
            stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
        finally:
            container.remove(force=True)
        return code, stdout, stderr

    @contextlib.contextmanager
    def run_collect(self, image: str, command: list[str], folder: str, *,
                    environment: dict | None = None, chunk_size: int = 1 << 20
                    ) -> Iterator[tuple[int, str, Iterator[bytes] | None]]:
        """Run ``command`` with the build's network (the default bridge, or
        $NIRISS_PIPE_BUILD_NETWORK) and yield its exit code, its output and, when it exited
        0, ``folder`` of the stopped container as a tar stream (no bind mount: a remote or
        rootless engine cannot write the host's folders). The container is removed on
        leaving the block."""
        with self._api_errors(f"run a container of {image}"):
            container = self.client.containers.create(
                image, command=command, init=True, environment=environment or {},
                network_mode=os.environ.get(BUILD_NETWORK_ENV) or None)
            try:
                container.start()
                code = container.wait()["StatusCode"]
                output = container.logs(stdout=True, stderr=True).decode(errors="replace")
                chunks = container.get_archive(folder, chunk_size=chunk_size)[0] \
                    if code == 0 else None
                yield code, output, chunks
            finally:
                container.remove(force=True)

    @_guarded("read the labels of {0}")
    def image_labels(self, reference: str) -> dict[str, str]:
        return self.client.images.get(check_reference(reference)).labels or {}

    @_guarded("read the size of {0}")
    def image_size(self, reference: str) -> int:
        return int(self.client.images.get(check_reference(reference)).attrs["Size"])

    @_guarded("read the digest of {0}")
    def repo_digest(self, reference: str) -> str:
        """The registry digest of a pulled image, else its local id."""
        image = self.client.images.get(check_reference(reference))
        digests = image.attrs.get("RepoDigests") or []
        return digests[0].split("@", 1)[1] if digests else image.id

    def pull(self, reference: str) -> str:
        self.reporter.say(f"pulling {reference}")
        try:
            with self.sdk_errors(f"pull {reference}"):
                return self.client.images.pull(check_reference(reference)).id
        except (EngineError, UserError) as exc:
            raise EngineError(f"cannot pull base image '{reference}' ({exc.what}).",
                              "load it (docker load / docker pull on a machine with registry "
                              "access), or make the base locally from Debian's mirror by removing "
                              f"'base.image' from the spec and running: {prog()} base SPEC."
                              ) from None

    @_guarded("tag {0}")
    def tag(self, image_id: str, repository: str, tag: str) -> None:
        self.client.api.tag(image_id, repository, tag)

    @_guarded("untag {0}")
    def untag(self, reference: str) -> None:
        try:
            self.client.api.remove_image(reference, noprune=True)
        except self.errors.NotFound:
            pass

    def remove_untagged(self, image_id: str) -> None:
        """Remove a just-built image unless some tag (an earlier, good build) points at it;
        its untagged parents go with it unless another image needs them."""
        try:
            if not self.client.images.get(image_id).tags:
                self.client.api.remove_image(image_id)
        except (self.errors.APIError, *self.transport_errors):
            pass  # best effort: the build already failed and says why

    def remove_step_image(self, short_id: str) -> bool:
        """Remove one image a build step made, if untagged and nothing is built on it
        (``noprune``: its parent is the caller's to decide); False when it stays."""
        try:
            image = self.client.images.get(short_id)
            if image.tags:
                return False
            self.client.api.remove_image(image.id, noprune=True)
            return True
        except (self.errors.APIError, *self.transport_errors):
            return False

    def remove_containers_of(self, short_id: str) -> None:
        """Remove (forced) the containers of an image a build step has just made: the next
        step's, which an interrupted build leaves until the engine notices. Best effort."""
        try:
            image_id = self.client.images.get(short_id).id
            for container in self.client.containers.list(all=True,
                                                         filters={"ancestor": image_id}):
                container.remove(force=True)
        except (self.errors.APIError, *self.transport_errors):
            pass

    @_guarded("load an image archive")
    def load_archive(self, folder: Path) -> str:
        """``docker load`` of a docker-archive laid out in ``folder``; return the image id."""
        with tempfile.TemporaryFile() as tar:
            with tarfile.open(fileobj=tar, mode="w") as out:
                for path in sorted(folder.rglob("*")):
                    out.add(path, arcname=str(path.relative_to(folder)), recursive=False)
            tar.seek(0)
            images = self.client.images.load(tar)
        if not images:
            raise EngineError("the engine loaded no image from the archive it was given.",
                              ENGINE_FIX)
        return images[0].id

    @_guarded("load an image archive")
    def load_stream(self, chunks: Iterable[bytes]) -> str:
        """``docker load`` of a docker-archive sent as it is made (chunked upload: the engine
        unpacks it as it arrives); return the image id."""
        images = self.client.images.load(chunks)
        if not images:
            raise EngineError("the engine loaded no image from the archive it was given.",
                              ENGINE_FIX)
        return images[0].id

    @_guarded("load the image archive {0}")
    def load_file(self, path: Path) -> list[str]:
        """``docker load < path``; return the ids of the images it loaded."""
        with open(path, "rb") as stream:
            return [image.id for image in self.client.images.load(stream)]

    @_guarded("list images")
    def images_with_label(self, label: str) -> list[ImageInfo]:
        return [_info(image) for image in self.client.images.list(filters={"label": label})]

    # -- build ----------------------------------------------------------------------------
    def build(self, context: BuildContext, buildargs: dict[str, str],
              no_cache: bool = False, target: str | None = None,
              offline: bool = False, keep: tuple[str, ...] = ()) -> BuildOutcome:
        """Build the context (up to the stage ``target`` when given); return the image and
        the images of its named build stages. Untagged: tags come after the self-test. A
        failed build leaves no untagged leaf image behind (the named stages that completed
        are returned through the error), nor does an interrupted one (Ctrl-C, SIGTERM in a
        ``stoppable`` block). ``keep``: the build stages the caller names and keeps after a
        failure or an interrupt, when they completed; every other image the build made goes.
        ``offline``: no build step has a network
        (``network_mode`` none)."""
        with tempfile.TemporaryFile() as tar, self.sdk_errors("build the image"):
            context.write_tar(tar)
            tar.seek(0)
            stream = self.client.api.build(
                fileobj=tar, custom_context=True, decode=True, rm=True, forcerm=True,
                buildargs=buildargs, pull=False, nocache=no_cache, target=target,
                network_mode="none" if offline else os.environ.get(BUILD_NETWORK_ENV) or None)
            follower = BuildStream(self, context.dockerfile, keep)
            try:
                return follower.follow(stream)
            except KeyboardInterrupt as stop:
                stream.close()  # the build's connection: the engine cancels the build
                traceback.clear_frames(stop.__traceback__)  # ... also held by these frames
                stop.stage_images = follower.discard_partial()
                raise

    # -- run --------------------------------------------------------------------------------
    @_guarded("run a container of {0}")
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


def _info(image) -> ImageInfo:
    config = image.attrs.get("Config") or {}
    return ImageInfo(id=image.id, tags=tuple(image.tags), labels=dict(image.labels or {}),
                     env=tuple(config.get("Env") or ()),
                     entrypoint=tuple(config.get("Entrypoint") or ()),
                     cmd=tuple(config.get("Cmd") or ()),
                     created=str(image.attrs.get("Created") or ""),
                     layers=tuple((image.attrs.get("RootFS") or {}).get("Layers") or ()),
                     user=str(config.get("User") or ""),
                     workdir=str(config.get("WorkingDir") or ""))


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
