"""The self-test run: the image's own offline detector1 check, whose verdict every build waits
for before it tags."""

from __future__ import annotations

import time

from niriss_pipe.core.errors import EngineError
from niriss_pipe.engine.client import Engine


def run_selftest(engine: Engine, image: str, *, cleanup_on_failure: bool = False) -> str:
    """Run the image's baked-in self-test with no network; raise EngineError when it fails."""
    clock = time.monotonic()
    result = engine.run(image, ["selftest"], network=False)
    verdict = next((line for line in reversed(result.output.splitlines())
                    if line.startswith("selftest:")), "selftest: no verdict printed")
    if result.exit_code != 0:
        if cleanup_on_failure:
            engine.remove_untagged(image)
        tail = "\n".join(f"    {line}" for line in result.output.splitlines()[-30:])
        raise EngineError(f"the image's self-test failed (exit {result.exit_code}): {verdict}",
                          "the image was not tagged; run with -v for the whole log.\n"
                          f"  self-test output:\n{tail}")
    engine.reporter.say(f"  {'selftest':<14} {time.monotonic() - clock:6.1f} s  {verdict}")
    return result.output
