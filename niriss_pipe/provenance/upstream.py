"""``verify --upstream``: the unit tests the image's own packages ship, run in its derived test
image with no network, against the installed files (``runtime/upstream.py`` inside).

The test image comes from the spec's test lock (``images/locks/<spec>.test.txt``), which must
have been made for the lock the image carries. The runner's summary is read back, the
per-package JUnit XML merged and kept beside the image's build record, with the summary.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.build.records import find_record, records_dir
from niriss_pipe.build.testimage import ensure_test_image, is_test_image
from niriss_pipe.core import grammar
from niriss_pipe.core.atomic import write_text
from niriss_pipe.core.errors import EngineError, SpecError, UserError, opt, prog, shown
from niriss_pipe.engine.values import ImageInfo
from niriss_pipe.provenance.inspect import label_value
from niriss_pipe.spec import testlock
from niriss_pipe.spec.load import load_spec

OUT = "/out"  # where the runner writes, a host folder mounted for the run
COUNTS = ("passed", "needs_crds", "failed", "errors", "skipped", "xfailed", "xpassed")
SHOWN = 30  # failures named in the report; all are in the kept summary


@dataclass
class UpstreamOptions:
    suite: str = "quick"
    only: tuple[str, ...] = ()
    jobs: int = 0  # 0: the runner uses every CPU the container gets
    spec: Path | None = None  # whose test lock (default: images/<the image's spec label>)
    ca_bundle: str | None = None
    junit: Path | None = None  # also write the merged JUnit XML here
    rebuild: bool = False  # build the test image again


@dataclass
class UpstreamResult:
    summary: dict
    junit: Path | None
    kept: Path | None  # the summary JSON beside the build record

    @property
    def missing(self) -> list[dict]:
        return self.summary.get("missing_dependencies") or []

    @property
    def totals(self) -> dict[str, int]:
        found = dict.fromkeys(COUNTS, 0)
        for entry in self.summary["packages"].values():
            for key in COUNTS:
                found[key] += entry.get(key, 0)
        return found

    @property
    def ok(self) -> bool:
        totals = self.totals
        return not self.missing and not totals["failed"] and not totals["errors"] \
            and bool(self.summary["packages"])

    def failures(self) -> list[str]:
        return [f"{nodeid}: {test['detail']}" for entry in self.summary["packages"].values()
                for nodeid, test in sorted(entry["tests"].items())
                if test["outcome"] in ("failed", "errors")]

    def needing_crds(self) -> list[str]:
        return [f"{nodeid}: {test['detail']}" for entry in self.summary["packages"].values()
                for nodeid, test in sorted(entry["tests"].items())
                if test["outcome"] == "needs_crds"]

    def as_json(self) -> dict:
        """Per package and in total: the counts (``passed``, ``needs_crds``, ``failed``,
        ``errors``, ...), seconds, and the tests that did not pass, by outcome."""
        packages = {}
        for name, entry in self.summary["packages"].items():
            item = {key: entry.get(key, 0) for key in COUNTS}
            item["seconds"] = entry["seconds"]
            item["version"] = self.summary["versions"].get(name)
            for outcome in ("needs_crds", "failed", "errors", "skipped", "xfailed", "xpassed"):
                item[f"{outcome}_tests"] = {n: t["detail"] for n, t in entry["tests"].items()
                                            if t["outcome"] == outcome}
            packages[name] = item
        return {"suite": self.summary["suite"], "packages": packages, **self.totals,
                "missing_dependencies": self.missing, "absent": self.summary.get("absent", []),
                "wall_clock": self.summary.get("wall_clock", []),
                "junit": str(self.junit) if self.junit else None,
                "summary": str(self.kept) if self.kept else None, "ok": self.ok}


def find_test_lock(image: ImageInfo, reference: str, spec_path: Path | None) -> Path:
    """The spec's checked test lock, made for the lock this image carries."""
    labels = image.labels or {}
    name = label_value(labels, "spec")
    path = spec_path or (Path("images") / name if name else None)
    if path is None or not path.is_file():
        raise UserError(f"{reference} was built from {name or 'a spec'}, which is not at "
                        f"{path or 'images/'}: its test lock cannot be found.",
                        f"give the spec it was built from: {opt('spec')} SPEC.")
    spec = load_spec(path)
    try:
        found = testlock.check(spec)
    except SpecError as err:
        raise UserError(f"{err.where}: {err.what}", err.fix) from None
    made_for = testlock.recorded(found).get("runtime_lock")
    carried = label_value(labels, "lock.digest")
    if made_for != carried:
        raise UserError(f"{found} was made for the lock {made_for}, but {reference} was built "
                        f"from the lock {carried}: its tests would not match its environment.",
                        f"rebuild the image from {path} ({prog()} build {path}), or give "
                        f"{opt('spec')} the spec (and checkout) it was built from.")
    return found


def run_upstream(engine, reference: str, image: ImageInfo, options: UpstreamOptions
                 ) -> UpstreamResult:
    """Build (or find) the test image, run the suite offline, read and keep the results."""
    check_options(options)
    if is_test_image(image):
        test_id = image.id
    else:
        lock = find_test_lock(image, reference, options.spec)
        test_id = ensure_test_image(engine, image, reference, lock,
                                    ca_bundle=options.ca_bundle, rebuild=options.rebuild)
    out = Path(tempfile.mkdtemp(prefix="niriss-pipe-upstream-"))
    try:
        out.chmod(0o777)  # the image's user writes there
        what = f"only {', '.join(options.only)}" if options.only else f"the {options.suite} suite"
        engine.reporter.say(f"  {'upstream':<14} running {what} in {test_id[7:19]}, offline")
        command = ["python", "-m", "niriss_pipe.runtime.upstream", "--suite", options.suite,
                   "--out", OUT, "--jobs", str(options.jobs)]
        if options.only:
            command += ["--only", *options.only]
        result = engine.run(test_id, command, volumes={str(out): {"bind": OUT, "mode": "rw"}})
        summary = _read(out, result)
        kept, junit = keep(out, summary, image, reference, options)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return UpstreamResult(summary, junit, kept)


def _read(out: Path, result) -> dict:
    try:
        return json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        tail = "\n".join(f"    {line}" for line in result.output.strip().splitlines()[-20:])
        raise EngineError(f"the test runner gave no summary (exit {result.exit_code}).",
                          f"run with -v for its whole output.\n{tail}") from None


def keep(out: Path, summary: dict, image: ImageInfo, reference: str,
         options: UpstreamOptions) -> tuple[Path, Path | None]:
    """Write the summary and the merged JUnit XML beside the image's build record (or where
    its record would be); ``--junit FILE`` gets a copy."""
    record = find_record(image.id)
    if record is not None:
        stem = record.with_suffix("")
    else:
        version = (image.labels or {}).get("org.opencontainers.image.version") or image.id[7:19]
        repository = (image.tags[0].rsplit(":", 1)[0] if image.tags
                      else reference.split(":")[0].split("@")[0])
        stem = records_dir() / repository / version
    name = "only-" + "-".join(options.only) if options.only else options.suite
    kept = stem.with_name(f"{stem.name}.upstream-{name}.json")
    write_text(kept, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    merged = merge_junit(sorted(out.glob("*.xml")))
    if merged is None:
        return kept, None
    junit = kept.with_suffix(".xml")
    write_text(junit, merged)
    if options.junit:
        write_text(options.junit, merged)
        junit = options.junit
    return kept, junit


def merge_junit(paths: list[Path]) -> str | None:
    """One ``<testsuites>`` holding every package's ``<testsuite>``."""
    if not paths:
        return None
    root = ElementTree.Element("testsuites")
    for path in paths:
        tree = ElementTree.parse(path).getroot()
        suites = [tree] if tree.tag == "testsuite" else list(tree)
        root.extend(suites)
    return ElementTree.tostring(root, encoding="unicode") + "\n"


def report_lines(result: UpstreamResult, verbose: bool = False) -> list[str]:
    """The per-package table, then what did not pass."""
    summary = result.summary
    if result.missing:
        names = ", ".join(f"{m['name']} (locked {m['locked']}, "
                          f"{'installed ' + m['installed'] if m['installed'] else 'missing'})"
                          for m in result.missing)
        return [f"    the test image lacks test dependencies of its test lock: {names}; no "
                "test was run"]
    lines = [f"    {'package':<14}{'passed':>8}{'needs CRDS':>12}{'failed':>8}{'errors':>8}"
             f"{'skipped':>9}{'xfailed':>9}{'time':>9}"]
    for name, entry in sorted(summary["packages"].items()):
        label = f"{name} {summary['versions'].get(name) or ''}".strip()
        lines.append(f"    {label:<14}{entry['passed']:>8}{entry['needs_crds']:>12}"
                     f"{entry['failed']:>8}{entry['errors']:>8}{entry['skipped']:>9}"
                     f"{entry['xfailed']:>9}{entry['seconds']:>7.0f} s")
    failures = result.failures()
    for line in failures[:SHOWN]:
        lines.append(f"    FAILED {line}")
    if len(failures) > SHOWN:
        lines.append(f"    ... and {len(failures) - SHOWN} more (all in {result.kept})")
    crds = result.needing_crds()
    if crds:
        shown_all = verbose or len(crds) <= 5
        lines.append(f"    {len(crds)} tests need CRDS (a server or reference files; listed in "
                     f"{result.kept})" + (":" if shown_all else ""))
        if shown_all:
            lines += [f"      {line}" for line in crds]
    if summary.get("absent"):
        lines.append(f"    no tests shipped in this release for: {', '.join(summary['absent'])}")
    if summary.get("wall_clock"):
        lines.append("    not run, they assert wall-clock time (the machine's load decides it; "
                     f"--only runs them): {', '.join(summary['wall_clock'])}")
    if result.junit:
        lines.append(f"    JUnit XML: {result.junit}")
    return lines


def check_options(options: UpstreamOptions) -> None:
    """What a user can get wrong in the options, refused before any engine work (the test
    image build, the self-test and the run come first and take minutes): ``--only`` names
    that are not modules, a ``--junit FILE`` that cannot be written where it is."""
    for module in options.only:
        if not grammar.full(grammar.DOTTED_IDENTIFIER, module):
            raise UserError(f"{opt('only')} {shown(module)}: not a dotted module name.",
                            "give modules like jwst.linearity or stdatamodels.")
    path = options.junit
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"{opt('junit')} {shown(str(path))} is a folder; it names the file to "
                        "write.", f"give a file path, e.g. {opt('junit')} "
                        f"{path / 'upstream.xml'}.")
    folder = path.resolve().parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise UserError(f"{opt('junit')} {path}: the folder {folder} does not exist or is not "
                        "writable.", "give a path in a folder you can write.")
