"""``verify``: the image against its own lock, its labels, its baked references, its self-test,
its context (``check``) and, with ``--upstream``, its packages' own unit tests; every check
runs and reports, even after one fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from niriss_pipe.build.records import find_record
from niriss_pipe.build.selftest import run_selftest
from niriss_pipe.core.errors import EngineError, UserError, VerificationError, opt, prog
from niriss_pipe.core.progress import human_bytes
from niriss_pipe.crds.hostcache import has_context
from niriss_pipe.crds.refcheck import check_context
from niriss_pipe.provenance.compare import compare_environment, shorten
from niriss_pipe.provenance.inspect import (
    at_build_line,
    build_selftest,
    get_image,
    int_value,
    label_value,
)
from niriss_pipe.provenance.probe import installed_versions, run_probe
from niriss_pipe.provenance.upstream import (
    UpstreamOptions,
    UpstreamResult,
    report_lines,
    run_upstream,
)
from niriss_pipe.runtime.contract import (
    CRDS_PATH,
    LABEL_NS,
    LOCK_IN_IMAGE,
    lock_pins,
)
from niriss_pipe.spec.lock import git_requirement


# -- verify -----------------------------------------------------------------------------------
@dataclass
class Check:
    name: str
    ok: bool
    summary: str  # one line for the report
    problem: str = ""  # the phrase for the error paragraph when not ok
    ran: bool = True  # False: said why it was not run (no cache holds the context)
    fix: str = ""  # when it could not run: what makes it run


def check_environment(labels: dict[str, str], probe: dict) -> list[Check]:
    """The lock inside the image against its label, and the installed set against that lock."""
    in_image = probe.get("lock")
    label = label_value(labels, "lock.digest")
    if not in_image:
        return [Check("lock", False, f"no lock in the image ({LOCK_IN_IMAGE} is absent)",
                      f"the image has no lock ({LOCK_IN_IMAGE} is absent: it was built before "
                      "hash-locked environments), so its environment cannot be verified "
                      "against one")]
    checks = []
    if not label:
        checks.append(Check("lock", False, "no io.niriss-pipe.lock.digest label",
                            f"the image carries a lock ({in_image['sha256']}) but no "
                            f"{LABEL_NS}.lock.digest label to check it against"))
    elif in_image["sha256"] != label:
        checks.append(Check("lock", False, f"{LOCK_IN_IMAGE} is {in_image['sha256']}, the "
                            f"label says {label}",
                            f"the lock inside the image ({in_image['sha256']}) is not the one "
                            f"its label records ({label})"))
    else:
        checks.append(Check("lock", True, f"{LOCK_IN_IMAGE} matches its label {label}"))
    pins = lock_pins(in_image["text"])
    runtime = len(pins)
    tests = probe.get("test_lock")  # a verify --upstream test image: its test-only packages
    if tests:
        pins.update(lock_pins(tests["text"]))
    installed = installed_versions(probe)
    git = locked_git_commit(in_image["text"])
    if git:  # jwst from git is installed by itself: checked by its commit, not by a pin
        installed.pop("jwst", None)
        checks.append(check_commit(git, probe))
    diff = compare_environment(pins, installed)
    if diff.ok:
        extra = f" (and the test image's {len(pins) - runtime} test-only ones)" if tests else ""
        checks.append(Check("environment", True, f"{runtime} packages installed exactly as "
                            f"locked{extra}"))
    else:
        problems = diff.problems()
        plural = "s" if len(problems) != 1 else ""
        checks.append(Check("environment", False, f"{len(problems)} difference{plural} from "
                            f"the lock: {shorten(problems, 4)}",
                            "the installed environment differs from the image's lock: "
                            + shorten(problems)))
    return checks


def locked_git_commit(text: str) -> str | None:
    """The commit a lock's git source pins (None for a PyPI release)."""
    requirement = git_requirement(text)
    return requirement.rsplit("@", 1)[1] if requirement else None


def check_commit(commit: str, probe: dict) -> Check:
    """The installed jwst's commit (pip's direct_url.json) against the lock's."""
    installed = probe.get("jwst_commit")
    if installed == commit:
        return Check("jwst commit", True, f"jwst installed from the locked commit {commit}")
    found = installed or "no recorded commit"
    return Check("jwst commit", False, f"jwst is from {found}, the lock pins {commit}",
                 f"jwst was installed from {found}, not from the commit the lock pins "
                 f"({commit})")


def check_baked(labels: dict[str, str], probe: dict) -> list[Check]:
    if label_value(labels, "crds.references") != "bake":
        return []
    found = probe.get("crds_manifest")
    want = label_value(labels, "crds.baked.manifest")
    if not found:
        return [Check("references", False, f"no {CRDS_PATH} in the image",
                      f"the image is labelled as baked but has no {CRDS_PATH}")]
    problems = []
    if found["manifest"] != want:
        problems.append(f"the manifest of {CRDS_PATH} is {found['manifest']}, the label says "
                        f"{want}")
    for key in ("count", "bytes"):
        label = int_value(label_value(labels, f"crds.baked.{key}"))
        if label is not None and label != found[key]:
            problems.append(f"{CRDS_PATH} holds {found[key]} reference {key}, "
                            f"the label says {label}")
    if problems:
        return [Check("references", False, "; ".join(problems),
                      "the baked references differ: " + "; ".join(problems))]
    return [Check("references", True, f"{found['count']} files, "
                  f"{human_bytes(found['bytes'])}, manifest {want} recomputed and equal")]


@dataclass
class VerifyOptions:
    selftest: bool = True
    cache: Path | None = None  # a host cache to check the context against (None: none)
    upstream: UpstreamOptions | None = None  # run the packages' own tests too


@dataclass
class VerifyReport:
    reference: str
    image_id: str
    spec: str
    checks: list[Check] = field(default_factory=list)
    upstream: UpstreamResult | None = None
    unlocked: bool = False  # the image carries no lock at all
    at_build: dict | None = None  # the build record's self-test verdict (ran or reused)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def as_json(self) -> dict:
        return {"image": self.reference, "id": self.image_id, "verified": not self.failed,
                "checks": [{"name": c.name, "ok": c.ok, "ran": c.ran, "summary": c.summary}
                           for c in self.checks],
                "upstream": self.upstream.as_json() if self.upstream else None,
                "selftest_at_build": self.at_build}


def verify_image(engine, reference: str, options: VerifyOptions | None = None) -> VerifyReport:
    """Run every check and report each as it completes: one failing (even the probe, or the
    test image's build) never stops the others. ``raise_for`` turns the report into the
    error."""
    options = options or VerifyOptions()
    say = engine.reporter.say
    image = get_image(engine, reference)
    labels = dict(image.labels or {})
    baked = label_value(labels, "crds.references") == "bake"
    say(f"verifying {reference} ({image.id[7:19]})")
    report = VerifyReport(reference, image.id, label_value(labels, "spec") or "SPEC.yaml")
    try:
        probe = run_probe(engine, image.id, crds=baked)
    except EngineError as err:
        probe = None
        report.checks.append(Check("probe", False, err.what, err.what))
    if probe is not None:
        report.unlocked = not probe.get("lock")
        report.checks += check_environment(labels, probe) + check_baked(labels, probe)
    for check in report.checks:
        say(f"  {check.name:<14} {'ok' if check.ok else 'FAIL'}: {check.summary}")
    at_build = build_selftest(find_record(image.id))
    if at_build:  # what the build decided, before this run's own verdict
        say(f"  {'at build':<14} {at_build_line(at_build)}")
        report.at_build = at_build
    if options.selftest:
        try:
            run_selftest(engine, image.id)  # prints its own '  selftest ... PASS' line
            report.checks.append(Check("selftest", True, "PASS"))
        except EngineError as err:
            say(f"  {'selftest':<14} FAIL: {err.what}")
            report.checks.append(Check("selftest", False, err.what, err.what))
    report.checks.append(_context(engine, image, labels, options.cache, baked))
    if options.upstream is not None:
        report.checks.append(_upstream(engine, reference, image, options.upstream, report))
    return report


def _context(engine, image, labels, cache: Path | None, baked: bool) -> Check:
    """``check`` of the image's own context: its baked cache, else the host cache when it
    holds the context (said so when it does not: nothing is left out silently)."""
    say = engine.reporter.say
    context = label_value(labels, "crds.context") or ""
    if not baked and (cache is None or not has_context(cache, context)):
        where = f"{cache} does not hold it" if cache is not None else "no cache given"
        check = Check("context", True, f"not run for {context} ({where}; sync it to include "
                      "it)", ran=False)
        say(f"  {check.name:<14} {check.summary}")
        return check
    try:
        result = check_context(engine, image.id, context, None if baked else cache)
    except UserError as err:
        say(f"  {'context':<14} FAIL: {err.what}")
        return Check("context", False, err.what, err.what.rstrip("."), fix=err.fix)
    for line in result.lines():
        say(f"  {line}")
    if result.ok:
        summary = f"{context}: every declared type in the imap, every reference opens"
    else:
        summary = f"{context}: " + "; ".join(result.problems())
    say(f"  {'context':<14} {'ok' if result.ok else 'FAIL'}: {summary}")
    return Check("context", result.ok, summary, f"the context does not serve this jwst: "
                 f"{'; '.join(result.problems())}")


def _upstream(engine, reference, image, options: UpstreamOptions, report) -> Check:
    say = engine.reporter.say
    try:
        result = run_upstream(engine, reference, image, options)
    except UserError as err:  # EngineError and SpecError too: reported, the rest still ran
        say(f"  {'upstream':<14} FAIL: {err.what}")
        return Check("upstream", False, err.what, err.what.rstrip("."), fix=err.fix)
    report.upstream = result
    for line in report_lines(result, engine.reporter.verbose):
        say(line)
    totals = result.totals
    summary = (f"{totals['passed']} passed, {totals['needs_crds']} need CRDS, "
               f"{totals['failed']} failed, {totals['errors']} errors")
    if result.missing:
        names = ", ".join(m["name"] for m in result.missing)
        summary = f"test dependencies missing from the test image: {names}; no test ran"
    say(f"  {'upstream':<14} {'ok' if result.ok else 'FAIL'}: {summary}")
    failures = result.failures()
    problem = summary if result.missing else (
        f"its packages' own tests fail ({summary}): {shorten(failures, 5)}")
    return Check("upstream", result.ok, summary, problem)


def raise_for(report: VerifyReport) -> None:
    """The one error paragraph naming every failed check (nothing when all passed)."""
    failed = report.failed
    if not failed:
        return
    reference, spec = report.reference, report.spec
    unlocked = [c for c in failed if c.name == "lock" and report.unlocked]
    if unlocked and len(failed) == len(unlocked):
        raise VerificationError(
            f"{reference} cannot be verified: " + unlocked[0].problem + ".",
            f"rebuild it from its spec with this niriss-pipe ({prog()} build "
            f"{opt('no_cache')} images/{spec}) to get an image that carries its lock.")
    if all(c.name in ("upstream", "context") for c in failed):
        fixes = [c.fix for c in failed if c.fix]
        raise VerificationError(
            f"{reference} matches what it was built from, but: "
            + "; ".join(c.problem for c in failed) + ".",
            "; ".join(fixes) if fixes else
            "read the failing tests and checks above (the JUnit XML and summary are kept "
            "beside the build record); keep results made with this image apart until "
            "they are understood.")
    raise VerificationError(
        f"{reference} does not match what it was built from: "
        + "; ".join(c.problem for c in failed) + ".",
        f"rebuild it from its spec ({prog()} build {opt('no_cache')} images/{spec}) and "
        "use the new image; keep results made with this one apart.")


def verified_line(report: VerifyReport) -> str:
    return f"{report.reference}: verified ({', '.join(c.name for c in report.checks if c.ran)})"
