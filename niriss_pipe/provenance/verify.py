"""``verify``: the image against its own lock, its labels, its baked references and its
self-test; every check runs and reports, even after one fails."""

from __future__ import annotations

from dataclasses import dataclass

from niriss_pipe.build.selftest import run_selftest
from niriss_pipe.core.errors import EngineError, VerificationError, opt, prog
from niriss_pipe.core.progress import human_bytes
from niriss_pipe.provenance.compare import compare_environment, shorten
from niriss_pipe.provenance.inspect import get_image, int_value, label_value
from niriss_pipe.provenance.probe import installed_versions, run_probe
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
    installed = installed_versions(probe)
    git = locked_git_commit(in_image["text"])
    if git:  # jwst from git is installed by itself: checked by its commit, not by a pin
        installed.pop("jwst", None)
        checks.append(check_commit(git, probe))
    diff = compare_environment(pins, installed)
    if diff.ok:
        checks.append(Check("environment", True, f"{len(pins)} packages installed exactly as "
                            "locked"))
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


def verify_image(engine, reference: str, *, selftest: bool = True) -> list[Check]:
    """Run every check, report each as it completes, and raise VerificationError naming all
    that failed."""
    say = engine.reporter.say
    image = get_image(engine, reference)
    labels = dict(image.labels or {})
    baked = label_value(labels, "crds.references") == "bake"
    say(f"verifying {reference} ({image.id[7:19]})")
    probe = run_probe(engine, image.id, crds=baked)
    checks = check_environment(labels, probe) + check_baked(labels, probe)
    for check in checks:
        say(f"  {check.name:<14} {'ok' if check.ok else 'FAIL'}: {check.summary}")
    if selftest:
        try:
            run_selftest(engine, image.id)  # prints its own '  selftest ... PASS' line
            checks.append(Check("selftest", True, "PASS"))
        except EngineError as err:
            say(f"  {'selftest':<14} FAIL: {err.what}")
            checks.append(Check("selftest", False, err.what, err.what))
    failed = [c for c in checks if not c.ok]
    if failed:
        spec = label_value(labels, "spec") or "SPEC.yaml"
        unlocked = [c for c in failed if c.name == "lock" and not probe.get("lock")]
        if unlocked and len(failed) == len(unlocked):
            err = VerificationError(
                f"{reference} cannot be verified: " + unlocked[0].problem + ".",
                f"rebuild it from its spec with this niriss-pipe ({prog()} build "
                f"{opt('no_cache')} images/{spec}) to get an image that carries its lock.")
        else:
            err = VerificationError(
                f"{reference} does not match what it was built from: "
                + "; ".join(c.problem for c in failed) + ".",
                f"rebuild it from its spec ({prog()} build {opt('no_cache')} images/{spec}) and "
                "use the new image; keep results made with this one apart.")
        err.checks = checks  # every check's outcome, for --json
        raise err
    say(f"{reference}: verified ({', '.join(c.name for c in checks)})")
    return checks
