"""Reproducibility check: build one spec twice with no layer cache and compare the results.

The two builds use a copy of the spec named ``niriss-pipe-repro`` (with a copy of its lock
beside it), so no user-facing tag moves; their tags and build records are removed at the end.
Compared: the image ids first (builds are rewritten bit for bit from their content, so the same
inputs give the same id), and when they differ, the config fields and the layers that differ,
with their files (provenance/imagediff.py); then the self-test's ``_rate.fits`` SCI, ERR and DQ
arrays, bit for bit (the same image must compute the same numbers).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from niriss_pipe.build.builder import build
from niriss_pipe.build.options import BuildOptions
from niriss_pipe.build.records import find_records, records_dir
from niriss_pipe.core.errors import UserError, VerificationError, prog
from niriss_pipe.provenance.imagediff import ImageDiff, compare_images
from niriss_pipe.spec import lock as locking
from niriss_pipe.spec.load import load_spec

REPOSITORY = "niriss-pipe-repro"
PRODUCT = "selftest_rate.fits"
ARRAYS = ("SCI", "ERR", "DQ")


@dataclass
class ReproReport:
    image_ids: list[str]
    image: ImageDiff | None = None
    arrays: dict[str, str] = field(default_factory=dict)  # extension -> "identical" or why not
    seconds: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.image is not None and self.image.same and bool(self.arrays)
                and all(v == "identical" for v in self.arrays.values()))

    def lines(self) -> list[str]:
        out = self.image.lines() if self.image else []
        for name, verdict in self.arrays.items():
            out.append(f"  {PRODUCT + '[' + name + ']':<14} {verdict}")
        return out

    def problems(self) -> list[str]:
        found = [self.image.problem()] if self.image and not self.image.same else []
        bad = [f"{name} ({verdict})" for name, verdict in self.arrays.items()
               if verdict != "identical"]
        if bad:
            found.append(f"self-test product {PRODUCT} differs in " + ", ".join(bad))
        return found


def compare_products(first: Path, second: Path, names: tuple[str, ...] = ARRAYS
                     ) -> dict[str, str]:
    """``{extension: "identical" | what differs}`` for two FITS files, comparing each array's
    raw bytes (so NaN payloads, -0.0 and dtype count)."""
    from astropy.io import fits

    verdicts = {}
    with fits.open(first, memmap=False) as a, fits.open(second, memmap=False) as b:
        for name in names:
            if name not in a or name not in b:
                verdicts[name] = "missing in build " + ("1" if name not in a else "2")
                continue
            x, y = a[name].data, b[name].data
            if x is None or y is None:
                verdicts[name] = "no data" if x is None and y is None else "data in one only"
            elif x.dtype != y.dtype or x.shape != y.shape:
                verdicts[name] = f"{x.dtype}{x.shape} vs {y.dtype}{y.shape}"
            elif x.tobytes() != y.tobytes():
                count = int((x.view(f"V{x.dtype.itemsize}") != y.view(f"V{y.dtype.itemsize}"))
                            .sum())
                verdicts[name] = f"{count} of {x.size} pixels differ"
            else:
                verdicts[name] = "identical"
    return verdicts


def write_copy(spec_path: Path, folder: Path, repository: str = REPOSITORY) -> Path:
    """A copy of the spec named ``repository`` in ``folder`` with its lock beside it
    (relative dataset paths made absolute, so they still resolve). The repository is in no
    label, so the copy builds the same image as the spec."""
    spec = load_spec(spec_path)
    data = yaml.safe_load(spec_path.read_text())
    data["name"] = repository
    if spec.datasets:
        data["crds"]["datasets"] = [str(path.resolve()) for path in spec.datasets]
    copy = folder / spec_path.name
    copy.write_text(yaml.safe_dump(data, sort_keys=False))
    (folder / "locks").mkdir(exist_ok=True)
    (folder / "locks" / f"{spec_path.stem}.txt").write_bytes(
        locking.check(spec).read_bytes())
    return copy


def _selftest_product(engine, image: str, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    clock = time.monotonic()
    result = engine.run(image, ["selftest", "--keep", "/out"], network=False,
                        volumes={str(out.resolve()): {"bind": "/out", "mode": "rw"}},
                        user=f"{os.getuid()}:{os.getgid()}")
    product = out / PRODUCT
    if result.exit_code != 0 or not product.is_file():
        verdict = next((line for line in reversed(result.output.splitlines())
                        if line.startswith("selftest:")), "no verdict")
        raise VerificationError(f"the self-test of {image} failed ({verdict}), so its products "
                                "cannot be compared.",
                                f"see the work files in {out}; run {prog()} selftest "
                                "on an image of this spec.")
    verdict = next(line for line in reversed(result.output.splitlines())
                   if line.startswith("selftest:"))
    engine.reporter.say(f"  {'selftest':<14} {time.monotonic() - clock:6.1f} s  {verdict}, "
                        f"products in {out}")
    return product


def remove_ours(engine, image_id: str, repository: str = REPOSITORY) -> None:
    """Remove a check's image: only its tags go when something else also points at it (the
    user's image of the same inputs is the same image). A failure here is a warning: the
    comparison is done, and its verdict stands."""
    try:
        image = engine.image_info(image_id)
        if image is None:
            return
        foreign = [t for t in image.tags if not t.startswith(f"{repository}:")]
        if foreign:
            for tag in image.tags:
                if tag.startswith(f"{repository}:"):
                    engine.untag(tag)
        else:
            engine.remove_image(image_id)
    except UserError as err:
        engine.reporter.warn(f"could not remove the repro image {image_id[7:19]}: {err.what}")


def check_spec(spec_path: Path):
    """The spec, valid and with its lock fresh (both builds install it): the user errors
    ``repro`` can have before it reaches an engine."""
    spec = load_spec(spec_path)
    locking.check(spec)
    return spec


def repro(spec_path: Path, engine, options: BuildOptions, keep: Path | None = None
          ) -> ReproReport:
    """Build ``spec_path`` twice without the layer cache, compare, clean up; raise
    VerificationError naming what differs."""
    say = engine.reporter.say
    check_spec(spec_path)  # a user error before any work
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="niriss-pipe-repro-"))
    work.mkdir(parents=True, exist_ok=True)
    copy = write_copy(spec_path, work)
    spec = load_spec(copy)
    opts = replace(options, no_cache=True, force=True, selftest=False)
    report = ReproReport(image_ids=[])
    kept = False  # the work files stay when the comparison fails: they are the evidence
    say(f"repro {spec_path}: two builds with no layer cache as {REPOSITORY}:build-1 and "
        f":build-2 (work files in {work})")
    stages: list[str] = []  # the builds' stages, tagged under REPOSITORY too
    try:
        products = []
        for number in (1, 2):
            clock = time.monotonic()
            result = build(spec, engine, opts)
            report.image_ids.append(result.image_id)
            stages.extend(result.stage_images.values())
            engine.tag(result.image_id, REPOSITORY, f"build-{number}")
            products.append(_selftest_product(engine, result.image_id,
                                              work / f"selftest-{number}"))
            report.seconds.append(time.monotonic() - clock)
        report.image = compare_images(engine, *report.image_ids)
        report.arrays = compare_products(*products)
        say(f"compared {REPOSITORY}:build-1 ({report.image_ids[0][7:19]}) with :build-2 "
            f"({report.image_ids[1][7:19]}):")
        for line in report.lines():
            say(line)
        if not report.ok:
            kept = True
            raise VerificationError(
                f"two no-cache builds of {spec_path} differ: " + "; ".join(report.problems())
                + ".",
                f"both builds installed the same lock, so the steps that differ are not "
                f"deterministic: see the layers and files above; the work files (spec copy, "
                f"self-test products) are kept in {work}.")
        say(f"reproducible: {spec_path} built twice with no layer cache gives the same image "
            f"{report.image_ids[0]} and bit-identical self-test products")
        return report
    finally:
        for image_id in dict.fromkeys(report.image_ids):  # the same image when reproducible
            for record in find_records(image_id):
                if f"/{REPOSITORY}/" in str(record):
                    record.unlink(missing_ok=True)
            remove_ours(engine, image_id)
        for image_id in reversed(stages):  # a stage before the stage built on it (its parent)
            remove_ours(engine, image_id)
        try:
            (records_dir() / REPOSITORY).rmdir()  # only when no other record is left in it
        except OSError:
            pass
        if keep is None and not kept:
            shutil.rmtree(work, ignore_errors=True)
