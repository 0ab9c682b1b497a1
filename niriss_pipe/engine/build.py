"""Engine layer: follow a classic-builder build stream as stage-by-stage progress, and know
which image each build stage made (the classic builder numbers every instruction of every
stage in one sequence: "Step 7/23")."""

from __future__ import annotations

import re

from niriss_pipe.core.errors import EngineError, shown_path
from niriss_pipe.core.progress import StageClock, failure_excerpt
from niriss_pipe.engine.values import BuildOutcome
from niriss_pipe.render.dockerfile import stage_ends, stages

STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
LAYER_RE = re.compile(r"^ ---> ([0-9a-f]{12})$")


class BuildStream:
    """One build's stream: progress lines as it goes, the outcome (or the failure) at the end."""

    def __init__(self, engine, dockerfile: str, keep: tuple[str, ...] = ()):
        self.engine = engine
        self.keep = keep  # the build stages the caller names, kept after a failure
        self.stage_of = [name for name, count in stages(dockerfile) for _ in range(count)]
        self.stage_ends = stage_ends(dockerfile)
        # step number -> the short id of the image it made or took from the cache, as far as
        # the build got; ``made``: the steps whose image this build made (not cached)
        self.layers: dict[int, str] = {}
        self.made: set[int] = set()
        self.starts: set[int] = set()  # FROM steps: they name an image, they make none

    def follow(self, stream) -> BuildOutcome:
        clock = StageClock(self.engine.reporter)
        try:
            return self._stream_build(stream, clock, self.stage_ends)
        finally:  # Ctrl-C or a lost engine: the running stage stops ticking
            clock.close()

    def _stream_build(self, stream, clock, stage_ends) -> BuildOutcome:
        step_line = ""
        stage_of = self.stage_of
        image_id = None
        step = 0
        layers = self.layers
        uncached = False  # the current step has not (yet) reported "Using cache"
        for chunk in stream:
            text = chunk.get("stream", "")
            if "error" in chunk:
                clock.fail()
                raise self._build_failure(step_line, chunk["error"])
            if chunk.get("aux", {}).get("ID"):
                image_id = chunk["aux"]["ID"]
            for line in text.splitlines():
                self.engine.reporter.detail(line)
                found = STEP_RE.match(line)
                layer = LAYER_RE.match(line)
                if found:
                    if uncached:
                        clock.step_ran()
                    step_line = line
                    step = int(found.group(1))
                    clock.enter(stage_of[step - 1] if step <= len(stage_of) else "build")
                    uncached = not found.group(3).upper().startswith("FROM ")
                    if not uncached:
                        self.starts.add(step)
                elif line.startswith(" ---> Using cache"):
                    uncached = False
                elif layer and step:
                    layers[step] = layer.group(1)
                    if uncached:
                        self.made.add(step)
        if uncached:
            clock.step_ran()
        clock.finish()
        if image_id is None:
            raise self._build_failure(step_line, "the engine reported no image id")
        return BuildOutcome(image_id, self._stage_images(layers, stage_ends))

    def _stage_images(self, layers: dict[int, str], stage_ends: dict[str, int]
                      ) -> dict[str, str]:
        found = {}
        for name, last in stage_ends.items():
            if last in layers:
                found[name] = self.engine.client.images.get(layers[last]).id
        return found

    def _build_failure(self, step_line: str, error: str) -> EngineError:
        """The error to raise; first removes what the failed build left but its completed
        build stages (``discard_partial``)."""
        completed = self.discard_partial()
        tail = "\n".join(f"    {line}" for line in failure_excerpt(list(self.engine.reporter.tail)))
        log = self.engine.reporter.log_path
        whole = f"the whole log is {shown_path(log)}" if log else "run with -v for the whole log"
        failure = EngineError(
            f"the build failed at {step_line.strip() or 'its first step'}: {error.strip()}",
            f"read the step's last output lines below ({whole}); no tag was changed."
            + (f"\n  last output:\n{tail}" if tail else ""))
        failure.stage_images = completed
        return failure

    def discard_partial(self) -> dict[str, str]:
        """Remove the images of a build that failed or was interrupted, after the last
        completed build stage of those in ``keep``, newest first, and return those stages
        (the caller names them: the next try's cache). Untagged, the images would show as
        ``<none>`` images, and, worse, the classic builder takes a step's cache from the
        newest image made by the same instruction on the same parent: a later build would
        follow such a partial chain and rebuild every step after the one it stops at. A
        step's image taken from the cache (another build's chain) stops the removal, as
        does an image the engine refuses to remove (tagged, or a later image built on it).
        The container of the step that was running is removed first: it holds the image it
        started from."""
        try:
            completed = {name: image for name, image in
                         self._stage_images(self.layers, self.stage_ends).items()
                         if name in self.keep}
        except (self.engine.errors.APIError, *self.engine.transport_errors):
            return {}  # the engine is gone: nothing to remove or keep
        done = max((self.stage_ends[name] for name in completed), default=0)
        steps = sorted((step for step in self.layers if step > done), reverse=True)
        if steps and steps[0] in self.made:
            self.engine.remove_containers_of(self.layers[steps[0]])
        for step in steps:
            if step in self.starts:  # the image of an earlier step, or the base
                continue
            if step not in self.made or not self.engine.remove_step_image(self.layers[step]):
                break
        return completed
