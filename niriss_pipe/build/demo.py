"""The embedded demo: detector1 on a tiny synthetic NIRISS exposure, offline, in the default image.

It shows the whole user path: build the default spec, put a (synthetic) context
into the host cache ``crds_cache/``, then run ``strun`` in the image with that
cache mounted read-only, no network, as the calling user, writing to ``demo/``,
and a PNG preview of the product made with the image's own matplotlib.
The synthetic context uses serial 9999, reserved so it can never shadow a real
STScI context in the same cache.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.build import builder
from niriss_pipe.core.errors import EngineError, prog
from niriss_pipe.engine.client import Engine
from niriss_pipe.runtime.contract import SYNTHETIC_SERIAL
from niriss_pipe.spec.model import ImageSpec

DEMO_DIR = Path("demo")
EXPOSURE = "jw_niriss_synthetic_nis_uncal.fits"
CONTEXT = f"jwst_{SYNTHETIC_SERIAL}.pmap"


@dataclass
class DemoResult:
    image: str
    product: Path
    seconds: float
    preview: Path | None = None


def host_user() -> str:
    """``uid:gid`` of the caller, so files written into mounted folders are theirs."""
    return f"{os.getuid()}:{os.getgid()}"


def run_demo(spec: ImageSpec, engine: Engine, options: builder.BuildOptions,
             out_dir: Path = DEMO_DIR) -> DemoResult:
    say = engine.reporter.say
    result = builder.build(spec, engine, options)
    shown = f"{spec.name}:{result.tags[0]}"
    image = result.image_id  # what was built and self-tested, even if the tag moves meanwhile
    cache = options.cache.resolve()
    out_dir = out_dir.resolve()
    for folder in (cache, out_dir):
        folder.mkdir(parents=True, exist_ok=True)
    user = host_user()

    say(f"writing the synthetic context {CONTEXT} into {options.cache}/ and the exposure into "
        f"{out_dir.name}/")
    _run(engine, image, ["python", "-m", "niriss_pipe.runtime.synth", "context", "/crds"],
         {str(cache): {"bind": "/crds", "mode": "rw"}}, user)
    _run(engine, image, ["python", "-m", "niriss_pipe.runtime.synth", "exposure",
                         f"/data/{EXPOSURE}"],
         {str(out_dir): {"bind": "/data", "mode": "rw"}}, user)

    say(f"running: docker run --rm --network none --user {user} -v {cache}:/crds:ro "
        f"-v {out_dir}:/data -e CRDS_CONTEXT={CONTEXT} {shown} strun calwebb_detector1 "
        f"{EXPOSURE}")
    started = time.monotonic()
    _run(engine, image, ["strun", "calwebb_detector1", EXPOSURE],
         {str(cache): {"bind": "/crds", "mode": "ro"},
          str(out_dir): {"bind": "/data", "mode": "rw"}},
         user, environment={"CRDS_CONTEXT": CONTEXT})
    took = time.monotonic() - started
    product = out_dir / EXPOSURE.replace("_uncal.fits", "_rate.fits")
    if not product.is_file():
        raise EngineError(f"the demo run finished but {product} was not written.",
                          f"run '{prog()} demo -v' to see the pipeline log.")
    picture = product.with_suffix(".png")
    _run(engine, image, ["python", "-m", "niriss_pipe.runtime.preview", f"/data/{product.name}",
                         f"/data/{picture.name}"],
         {str(out_dir): {"bind": "/data", "mode": "rw"}}, user)
    say(f"demo done in {took:.1f} s: {os.path.relpath(product)}")
    say(f"  preview (SCI, DQ flags in colour): {os.path.relpath(picture)}")
    return DemoResult(shown, product, took, picture)


def _run(engine: Engine, image: str, command: list[str], volumes: dict, user: str,
         environment: dict | None = None) -> None:
    result = engine.run(image, command, volumes=volumes, user=user, environment=environment)
    if result.exit_code != 0:
        tail = "\n".join(f"    {line}" for line in result.output.splitlines()[-30:])
        raise EngineError(f"'{' '.join(command)}' failed in {image} (exit {result.exit_code}).",
                          f"see its last output lines:\n{tail}")
