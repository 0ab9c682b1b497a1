"""The self-test run: the image's own offline detector1 check, whose verdict every build waits
for before it tags."""

from __future__ import annotations

import time

from niriss_pipe.core.errors import EngineError
from niriss_pipe.engine.client import Engine


def verdict_line(output: str) -> str:
    """The self-test's last ``selftest:`` line: its verdict."""
    return next((line for line in reversed(output.splitlines())
                 if line.startswith("selftest:")), "selftest: no verdict printed")


def run_selftest(engine: Engine, image: str, *, cleanup_on_failure: bool = False,
                 report: bool = True) -> str:
    """Run the image's baked-in self-test with no network; raise EngineError when it fails.
    ``report``: say its time and verdict (not when it runs beside other work)."""
    clock = time.monotonic()
    result = engine.run(image, ["selftest"], network=False)
    verdict = verdict_line(result.output)
    if result.exit_code != 0:
        if cleanup_on_failure:
            engine.remove_untagged(image)
        tail = "\n".join(f"    {line}" for line in result.output.splitlines()[-30:])
        raise EngineError(f"the image's self-test failed (exit {result.exit_code}): {verdict}",
                          "the image was not tagged; run with -v for the whole log.\n"
                          f"  self-test output:\n{tail}")
    if report:
        engine.reporter.say(f"  {'selftest':<14} {time.monotonic() - clock:6.1f} s  {verdict}")
    return result.output
