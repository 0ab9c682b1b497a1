"""Reproducibility check: build one spec twice with no layer cache and compare the results.

The two builds use a copy of the spec named ``niriss-pipe-repro`` (with a copy of its lock
beside it), so no user-facing tag moves; both images and their build records are removed at
the end. Compared: the installed package sets, a content manifest of the environment
(``/opt/env``: sha256 of every regular file, symlink targets; no ``__pycache__``/``*.pyc``,
which embed build-time source mtimes), and the self-test's ``_rate.fits`` SCI, ERR and DQ
arrays, bit for bit.
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
from niriss_pipe.provenance.compare import (
    ManifestDiff,
    compare_environment,
    compare_manifests,
    shorten,
)
from niriss_pipe.provenance.probe import installed_versions, run_probe
from niriss_pipe.runtime.contract import ENV_PREFIX
from niriss_pipe.spec import lock as locking
from niriss_pipe.spec.load import load_spec

REPOSITORY = "niriss-pipe-repro"
PRODUCT = "selftest_rate.fits"
ARRAYS = ("SCI", "ERR", "DQ")
LIST_LIMIT = 20


@dataclass
class ReproReport:
    image_ids: list[str]
    packages: int = 0
    package_problems: list[str] = field(default_factory=list)
    env: ManifestDiff | None = None
    arrays: dict[str, str] = field(default_factory=dict)  # extension -> "identical" or why not
    seconds: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (not self.package_problems and self.env is not None and self.env.ok
                and all(v == "identical" for v in self.arrays.values()) and bool(self.arrays))

    def lines(self) -> list[str]:
        out = []
        if self.package_problems:
            out.append(f"  {'packages':<14} DIFFER: {shorten(self.package_problems)}")
        else:
            out.append(f"  {'packages':<14} identical ({self.packages} installed)")
        env = self.env
        if env is not None and env.ok:
            out.append(f"  {ENV_PREFIX:<14} identical ({env.total} files and symlinks)")
        elif env is not None:
            out.append(f"  {ENV_PREFIX:<14} DIFFER: {len(env.differing)} files differ, "
                       f"{len(env.only_first)} only in build 1, {len(env.only_second)} only "
                       f"in build 2 (of {env.total}); first {min(LIST_LIMIT, env.count)}:")
            out += [f"      {line}" for line in env.paths(LIST_LIMIT)]
        for name, verdict in self.arrays.items():
            out.append(f"  {PRODUCT + '[' + name + ']':<14} {verdict}")
        return out

    def problems(self) -> list[str]:
        found = []
        if self.package_problems:
            found.append("installed packages differ: " + shorten(self.package_problems))
        if self.env is not None and not self.env.ok:
            env = self.env
            found.append(f"{env.count} of {env.total} files in {ENV_PREFIX} differ: "
                         + shorten(env.paths(LIST_LIMIT), 5))
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


def write_copy(spec_path: Path, folder: Path) -> Path:
    """A copy of the spec named REPOSITORY in ``folder`` with its lock beside it (relative
    dataset paths made absolute, so they still resolve)."""
    spec = load_spec(spec_path)
    data = yaml.safe_load(spec_path.read_text())
    data["name"] = REPOSITORY
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


def _remove(engine, image_id: str) -> None:
    """Remove a repro image: only our tags go when something else also points at it. A
    failure here is a warning: the comparison is done, and its verdict stands."""
    try:
        image = engine.image_info(image_id)
        if image is None:
            return
        foreign = [t for t in image.tags if not t.startswith(f"{REPOSITORY}:")]
        if foreign:
            for tag in image.tags:
                if tag.startswith(f"{REPOSITORY}:"):
                    engine.untag(tag)
        else:
            engine.remove_image(image_id)
    except UserError as err:
        engine.reporter.warn(f"could not remove the repro image {image_id[7:19]}: {err.what}")


def repro(spec_path: Path, engine, options: BuildOptions, keep: Path | None = None
          ) -> ReproReport:
    """Build ``spec_path`` twice without the layer cache, compare, clean up; raise
    VerificationError naming what differs."""
    say = engine.reporter.say
    load_spec(spec_path)  # a user error before any work
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="niriss-pipe-repro-"))
    work.mkdir(parents=True, exist_ok=True)
    copy = write_copy(spec_path, work)
    spec = load_spec(copy)
    opts = replace(options, no_cache=True, force=True, selftest=False)
    report = ReproReport(image_ids=[])
    kept = False  # the work files stay when the comparison fails: they are the evidence
    say(f"repro {spec_path}: two builds with no layer cache as {REPOSITORY}:build-1 and "
        f":build-2 (work files in {work})")
    stages: list[str] = []  # the builds' environment stages, tagged under REPOSITORY too
    try:
        probes, products = [], []
        for number in (1, 2):
            clock = time.monotonic()
            result = build(spec, engine, opts)
            report.image_ids.append(result.image_id)
            stages.extend(result.stage_images.values())
            engine.tag(result.image_id, REPOSITORY, f"build-{number}")
            probes.append(run_probe(engine, result.image_id, env=True))
            say(f"  {'manifest':<14} {len(probes[-1]['env_manifest'])} files and symlinks in "
                f"{ENV_PREFIX}, {len(probes[-1]['packages'])} packages")
            products.append(_selftest_product(engine, result.image_id,
                                              work / f"selftest-{number}"))
            report.seconds.append(time.monotonic() - clock)
        first, second = (installed_versions(p) for p in probes)
        report.packages = len(first)
        diff = compare_environment(first, second, ignore=frozenset())
        report.package_problems = (
            [f"{n} {v} only in build 1" for n, v in sorted(diff.missing.items())]
            + [f"{n} {a} in build 1, {b} in build 2" for n, (a, b) in sorted(diff.changed.items())]
            + [f"{n} {v} only in build 2" for n, v in sorted(diff.extra.items())])
        report.env = compare_manifests(probes[0]["env_manifest"], probes[1]["env_manifest"])
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
                f"deterministic: see the list above; the work files (spec copy, self-test "
                f"products) are kept in {work}.")
        say(f"reproducible: {spec_path} built twice gives the same packages, the same "
            f"{report.env.total} files in {ENV_PREFIX} and bit-identical self-test products")
        return report
    finally:
        for image_id in report.image_ids:
            for record in find_records(image_id):
                record.unlink(missing_ok=True)
            _remove(engine, image_id)
        for image_id in stages:
            _remove(engine, image_id)
        try:
            (records_dir() / REPOSITORY).rmdir()  # only when no other record is left in it
        except OSError:
            pass
        if keep is None and not kept:
            shutil.rmtree(work, ignore_errors=True)
