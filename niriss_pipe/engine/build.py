"""Engine layer: follow a classic-builder build stream as stage-by-stage progress, and know
which image each build stage made (the classic builder numbers every instruction of every
stage in one sequence: "Step 7/23")."""

from __future__ import annotations

import re

from niriss_pipe.core.errors import EngineError
from niriss_pipe.core.progress import StageClock, failure_excerpt
from niriss_pipe.engine.values import BuildOutcome
from niriss_pipe.render.dockerfile import stage_ends, stages

STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
LAYER_RE = re.compile(r"^ ---> ([0-9a-f]{12})$")


class BuildStream:
    """One build's stream: progress lines as it goes, the outcome (or the failure) at the end."""

    def __init__(self, engine, dockerfile: str):
        self.engine = engine
        self.stage_of = [name for name, count in stages(dockerfile) for _ in range(count)]
        self.stage_ends = stage_ends(dockerfile)

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
        layers: dict[int, str] = {}  # step number -> the short id of the image it made
        uncached = False  # the current step has not (yet) reported "Using cache"
        for chunk in stream:
            text = chunk.get("stream", "")
            if "error" in chunk:
                clock.fail()
                raise self._build_failure(step_line, chunk["error"], layers, stage_ends)
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
                elif line.startswith(" ---> Using cache"):
                    uncached = False
                elif layer and step:
                    layers[step] = layer.group(1)
        if uncached:
            clock.step_ran()
        clock.finish()
        if image_id is None:
            raise self._build_failure(step_line, "the engine reported no image id", layers,
                                      stage_ends)
        return BuildOutcome(image_id, self._stage_images(layers, stage_ends))

    def _stage_images(self, layers: dict[int, str], stage_ends: dict[str, int]
                      ) -> dict[str, str]:
        found = {}
        for name, last in stage_ends.items():
            if last in layers:
                found[name] = self.engine.client.images.get(layers[last]).id
        return found

    def _build_failure(self, step_line: str, error: str, layers: dict[int, str],
                       stage_ends: dict[str, int]) -> EngineError:
        """The error to raise; first removes the untagged leaf the failed build left (the
        image of its last good step), keeping any build stage that completed."""
        completed = self._stage_images(layers, stage_ends)
        if layers:
            leaf = layers[max(layers)]
            try:
                leaf_id = self.engine.client.images.get(leaf).id
            except (self.engine.errors.APIError, *self.engine.transport_errors):
                leaf_id = None
            if leaf_id and leaf_id not in completed.values():
                self.engine.remove_untagged(leaf_id)
        tail = "\n".join(f"    {line}" for line in failure_excerpt(list(self.engine.reporter.tail)))
        log = self.engine.reporter.log_path
        whole = f"the whole log is {log}" if log else "run with -v for the whole log"
        failure = EngineError(
            f"the build failed at {step_line.strip() or 'its first step'}: {error.strip()}",
            f"read the step's last output lines below ({whole}); no tag was changed."
            + (f"\n  last output:\n{tail}" if tail else ""))
        failure.stage_images = completed
        return failure
