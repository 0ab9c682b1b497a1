"""``reproduce``: make a product again from its input in the image its CAL_VER names, with
its CRDS_CTX and the references its R_* keywords name, and compare the two.

Everything a user can get wrong is checked before a container starts: the product and the
input, an image with that jwst (or the commands that make one), and the cache (the context's
mappings and every reference the product names, by name). The run itself and the comparison
happen inside the image (``runtime.rerun``, ``runtime.difference``); the report is written here.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from niriss_pipe.core import grammar
from niriss_pipe.core.errors import EngineError, UserError, opt, prog, shown
from niriss_pipe.crds.hostcache import has_context
from niriss_pipe.crds.paths import check_readable, check_writable
from niriss_pipe.crds.product import Product, read_product
from niriss_pipe.provenance.reproreport import image_jwst, summary_lines, write_report
from niriss_pipe.runtime import contract
from niriss_pipe.runtime.cachecheck import missing_references
from niriss_pipe.runtime.rerun import EXIT_UNSUPPORTED, MARK

LABEL_TOOL = contract.label("tool.version")


@dataclass(frozen=True)
class ReproduceRequest:
    product: Path
    input: Path
    image: str | None = None
    cache: Path = Path("crds_cache")
    rtol: float = 0.0
    atol: float = 0.0
    output: Path | None = None


@dataclass
class ReproduceResult:
    verdict: str  # identical, within tolerance, different
    report: Path
    image: str
    seconds: float
    answer: dict = field(default_factory=dict)


def matches(labels: dict, cal_ver: str) -> bool:
    """Whether an image's jwst is the product's CAL_VER: the release, the tag, or for a
    development build (``1.12.6.dev3+g1a2b3c4``) the commit its local part names."""
    if labels.get(contract.label("jwst.version")) == cal_ver:
        return True
    ref = (labels.get(contract.label("jwst.ref")) or "").removeprefix("v")
    if ref and ref == cal_ver:
        return True
    local = cal_ver.partition("+")[2]
    commit = labels.get(contract.label("jwst.commit")) or ""
    return bool(commit and local.startswith("g") and len(local) > 7
                and commit.startswith(local[1:].split(".")[0]))


def pick_image(images, product: Product):
    """The local image for ``product``: its jwst, preferring its context, then the
    ``niriss-pipe`` repository, then the newest build; None when none has that jwst."""
    fitting = [i for i in images if matches(i.labels, product.cal_ver)]
    if not fitting:
        return None

    def rank(image):
        labels = image.labels
        return (labels.get(contract.label("crds.context")) == product.crds_ctx,
                any(t.startswith("niriss-pipe:") for t in image.tags),
                image.created, image.id)

    return max(fitting, key=rank)


def choose_image(engine, request: ReproduceRequest, product: Product):
    """(reference to run, its ImageInfo) or a UserError saying how to make one."""
    if request.image:
        info = engine.image_info(request.image)
        if info is None:
            raise UserError(f"no image '{request.image}' in the local engine.",
                            f"give a name from 'docker images', or leave out {opt('image')} "
                            "to pick one by the product's CAL_VER.")
        if not matches(info.labels, product.cal_ver):
            engine.reporter.warn(f"{request.image} has jwst {image_jwst(info.labels)}, the "
                                 f"product was made with jwst {product.cal_ver}: differences "
                                 "may come from the jwst versions.")
        return request.image, info
    info = pick_image(engine.images_with_label(LABEL_TOOL), product)
    if info is None:
        stem = product.crds_ctx.removesuffix(".pmap")
        raise UserError(f"no local image has jwst {product.cal_ver}, which made "
                        f"{request.product}.",
                        f"make one: {prog()} new --from {request.product} -o images/{stem}.yaml; "
                        f"{prog()} lock images/{stem}.yaml; {prog()} build images/{stem}.yaml "
                        f"(or give {opt('image')}).")
    tags = sorted(info.tags, key=lambda t: (":content-" in t, not t.startswith("niriss-pipe:"),
                                            len(t), t))
    return (tags[0] if tags else info.id), info


def check_cache(request: ReproduceRequest, product: Product) -> None:
    """The context's mappings and every reference the product names, in the cache."""
    sync = f"{prog()} sync --for {request.product} {opt('cache')} {request.cache}"
    unfit = product.not_crds()
    if unfit:
        keys = ", ".join(f"{k}={v.strip()}" for k, v in sorted(unfit.items())[:3])
        raise UserError(f"{request.product} names references that are not CRDS files ({keys}): "
                        "the pipeline was given them, so no sync can fetch them.",
                        "run the pipeline yourself with those files (strun --steps.STEP."
                        "override_REFTYPE=FILE).")
    if not request.cache.is_dir():
        raise UserError(f"there is no CRDS cache at {request.cache}.",
                        f"fill it for this product: {sync}")
    check_readable(request.cache, opt("cache"))
    if not has_context(request.cache, product.crds_ctx):
        raise UserError(f"the CRDS cache {request.cache} does not hold {product.crds_ctx} (the "
                        f"context {request.product} was made with), so nothing was run.",
                        f"fetch its mappings and references: {sync}")
    missing = missing_references(str(request.cache), product.reference_names)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise UserError(f"the CRDS cache {request.cache} lacks {len(missing)} of the "
                        f"{len(product.reference_names)} references {request.product} names "
                        f"({shown}), so nothing was run.", f"fetch them: {sync}")


def _check_inputs(request: ReproduceRequest) -> Path:
    if not request.input.is_file():
        raise UserError(f"{opt('input')} {request.input}: no such file.",
                        "give the exposure the product was made from (*_uncal.fits).")
    if not (math.isfinite(request.rtol) and math.isfinite(request.atol)) \
            or request.rtol < 0 or request.atol < 0:
        raise UserError(f"{opt('rtol')} and {opt('atol')} must not be negative.",
                        "give finite tolerances of 0 or more (0 and 0: bit for bit only).")
    out = request.output or Path(f"reproduce_{request.product.name.removesuffix('.fits')}")
    check_writable(out, opt("output"))
    for path, what in ((request.product.resolve().parent, "the product's folder"),
                       (request.input.resolve().parent, f"the folder of {opt('input')}"),
                       (request.cache.resolve(), opt("cache")), (out.resolve(), opt("output"))):
        problem = grammar.mount_source_problem(str(path))
        if problem:  # each is bound into the container
            raise UserError(f"{what} {shown(str(path))} cannot be mounted into a container: "
                            f"{problem}.", "move or link it to a path without ':' or ',' "
                            "or control characters.")
    return out


@dataclass(frozen=True)
class Checked:
    """What ``check`` found with no engine: the product's provenance, the report folder."""

    product: Product
    out: Path


def check(request: ReproduceRequest) -> Checked:
    """Everything that needs no engine: the product (its header), the input, the tolerances,
    the report folder, the cache; a UserError before anything connects."""
    product = read_product(request.product)
    out = _check_inputs(request)
    check_cache(request, product)
    return Checked(product, out)


def reproduce(engine, request: ReproduceRequest,
              checked: Checked | None = None) -> ReproduceResult:
    """Check, run, compare and report; the result's verdict decides the exit code.
    ``checked``: what ``check(request)`` gave before the engine was reached (else checked
    here)."""
    say = engine.reporter.say
    checked = checked or check(request)
    product, out = checked.product, checked.out
    image, info = choose_image(engine, request, product)
    out.mkdir(parents=True, exist_ok=True)
    say(f"reproducing {request.product} (jwst {product.cal_ver}, {product.crds_ctx}, "
        f"{len(product.reference_names)} references) in {image} ({info.id[7:19]})")
    started = time.monotonic()
    answer = _run(engine, info.id, request, product, out)
    took = time.monotonic() - started
    report = write_report(out, request, product, image, info, answer, took)
    for line in summary_lines(answer, report):
        say(line)
    return ReproduceResult(answer["comparison"]["verdict"], report, image, took, answer)


def _run(engine, image_id: str, request: ReproduceRequest, product: Product, out: Path) -> dict:
    given = request.product.resolve()
    uncal = request.input.resolve()
    volumes = {str(request.cache.resolve()): {"bind": contract.CRDS_PATH, "mode": "ro"},
               str(given.parent): {"bind": contract.GIVEN_MOUNT, "mode": "ro"},
               str(out.resolve()): {"bind": contract.DATA_PATH, "mode": "rw"}}
    if str(uncal.parent) != str(given.parent):
        volumes[str(uncal.parent)] = {"bind": contract.INPUT_MOUNT, "mode": "ro"}
        input_in = f"{contract.INPUT_MOUNT}/{uncal.name}"
    else:
        input_in = f"{contract.GIVEN_MOUNT}/{uncal.name}"
    command = ["python", "-m", "niriss_pipe.runtime.rerun", f"{contract.GIVEN_MOUNT}/{given.name}",
               input_in, "--out", contract.DATA_PATH, "--rtol", repr(request.rtol),
               "--atol", repr(request.atol)]
    result = engine.run(image_id, command, volumes=volumes, user=f"{os.getuid()}:{os.getgid()}",
                        environment={"CRDS_CONTEXT": product.crds_ctx,
                                     contract.SKIP_CACHE_CHECK_ENV: "1"})
    answer = _answer(result.output)
    tail = "\n".join(f"    {line}" for line in result.output.strip().splitlines()[-20:])
    if answer is None:
        if "No module named niriss_pipe.runtime.rerun" in result.output:
            raise UserError(f"the image {image_id[7:19]} was built by a niriss-pipe without "
                            "reproduce (it has no runtime/rerun.py).",
                            f"rebuild it from its spec with this niriss-pipe ({prog()} build "
                            f"{opt('force')} SPEC).")
        raise EngineError(f"reproducing in {image_id[7:19]} failed (exit {result.exit_code}).",
                          f"see its last output lines:\n{tail}")
    if result.exit_code == EXIT_UNSUPPORTED or "unsupported" in answer:
        raise UserError(f"{request.product} cannot be reproduced: {answer.get('unsupported')}",
                        "give a stage 1 or stage 2 product of one exposure.")
    if "failed" in answer:
        failed = answer["failed"]
        log = "\n".join(f"    {line}" for line in failed.get("log_tail", []))
        raise EngineError(f"'{' '.join(failed['command'])}' failed in {image_id[7:19]} "
                          f"(exit {failed['exit']}); the log is {out / 'strun.log'}.",
                          f"read the pipeline's last lines:\n{log}")
    return answer


def _answer(output: str) -> dict | None:
    line = next((text for text in reversed(output.splitlines()) if text.startswith(MARK)), None)
    return json.loads(line[len(MARK):]) if line else None
