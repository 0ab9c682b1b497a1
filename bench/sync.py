#!/usr/bin/env python3
"""Sync benchmark: our parallel verified downloads against plain ``crds sync``, same files.

Both tools fetch the same explicit list of reference files from the CRDS test server
(tests/crds_server/server.py) into a fresh cache: the plain client as ``crds sync --files
NAME...``, ours as ``build.py sync`` does once the client has named the files (server info,
then ``download.fetch``). An explicit list, not a context, so only the download paths differ:
both resolve the same names, so the mapping closure and the client's context handling would
only add the same cost to both. Each tool runs as its own process (interpreter start, crds
import and the server-info call included, as a user pays them); the server runs here.

Loopback is far faster than any real link, so the server emulates one: a latency before
every answer, a cap per transfer and one shared by all. Numbers are medians of ``--repeat``
runs; results go to bench/results/sync.json and sync.md. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from niriss_pipe.core.progress import Reporter, human_bytes  # noqa: E402
from niriss_pipe.crds import sync as our_sync  # noqa: E402
from niriss_pipe.crds.download import Manifest, fetch  # noqa: E402
from niriss_pipe.runtime.synth import dict_selector, mapping_text  # noqa: E402
from tests.crds_server.server import CRDSServer, Link, MiB  # noqa: E402

KiB = 2**10
CONTEXT = "jwst_0001.pmap"  # the server needs one; --files never loads it
RUN_TIMEOUT = 600  # seconds; a run that takes longer is a failure, not a number
TOOLS = ("crds", "ours")


@dataclass(frozen=True)
class Scenario:
    key: str
    reftype: str  # names are jwst_niriss_<reftype>_NNNN.fits
    files: int
    size: int
    latency: float = 0.0
    per_connection: Optional[float] = None
    total: Optional[float] = None

    @property
    def names(self) -> list[str]:
        return [f"jwst_niriss_{self.reftype}_{n:04d}.fits" for n in range(1, self.files + 1)]

    def link(self) -> Optional[Link]:
        """A fresh link per run: the shared bucket must not carry over between runs."""
        if not (self.latency or self.per_connection or self.total):
            return None
        return Link(self.latency, self.per_connection, self.total)

    @property
    def link_rate(self) -> Optional[float]:
        return self.total or self.per_connection

    def describe_link(self) -> str:
        if self.link() is None:
            return "loopback, no link model"
        parts = [f"{self.latency * 1000:.0f} ms"]
        if self.per_connection:
            parts.append(f"{self.per_connection / MiB:.0f} MiB/s per connection")
        if self.total:
            parts.append(f"{self.total / MiB:.0f} MiB/s total")
        return ", ".join(parts)


def scenarios(args) -> list[Scenario]:
    latency = args.latency_ms / 1000
    small = dict(reftype="dark", files=args.small_files, size=64 * KiB)
    large = dict(reftype="superbias", files=4, size=args.large_mib * MiB)
    return [
        Scenario("small", **small, latency=latency, per_connection=20 * MiB, total=100 * MiB),
        Scenario("large", **large, latency=latency, total=50 * MiB),  # link rate = total cap
        Scenario("small-loopback", **small),
        Scenario("large-loopback", **large),
    ]


# ------------------------------------------------------------------------------- store

def write_store(root: Path, chosen: list[Scenario]) -> None:
    """Random bytes under CRDS-valid names, and one valid pmap (the server's context)."""
    (root / "mappings").mkdir(parents=True)
    (root / "references").mkdir()
    header = {"derived_from": "niriss-pipe sync benchmark", "mapping": "PIPELINE",
              "name": CONTEXT, "observatory": "JWST", "parkey": ("META.INSTRUMENT.NAME",)}
    (root / "mappings" / CONTEXT).write_text(mapping_text(header, dict_selector("", {})))
    for scenario in chosen:
        for name in scenario.names:
            path = root / "references" / name
            if not path.exists():
                path.write_bytes(os.urandom(scenario.size))


# --------------------------------------------------------------------------------- runs

def command(tool: str, names: list[str], cache: Path, url: str, jobs: int) -> list[str]:
    if tool == "crds":  # what `crds sync` runs, minus the wrapper script's own process
        return [sys.executable, "-m", "crds.sync", "--files", *names]
    return [sys.executable, __file__, "_fetch", "--cache", str(cache), "--server", url,
            "--jobs", str(jobs), *names]


def run_once(tool: str, scenario: Scenario, server: CRDSServer, work: Path, jobs: int) -> dict:
    """One fresh-cache run: wall seconds of the process, and the server's transfer window."""
    cache = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=work))
    server.reset()
    server.link = scenario.link()
    env = {**os.environ, "CRDS_PATH": str(cache), "CRDS_SERVER_URL": server.url,
           "no_proxy": "*"}  # loopback only, even where a proxy is configured
    for key in ("CRDS_CONTEXT", "CRDS_READONLY_CACHE", "CRDS_MODE", "NO_PROXY"):
        env.pop(key, None)
    started = time.monotonic()
    proc = subprocess.run(command(tool, scenario.names, cache, server.url, jobs), env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"{tool} failed on {scenario.key}:\n{proc.stdout}\n{proc.stderr}")
    check_run(tool, scenario, server, cache)
    gets = [r for r in server.log if r.verb == "GET"]
    window = max(r.finished for r in gets) - min(r.started for r in gets)
    shutil.rmtree(cache)
    return {"wall_s": round(wall, 3), "transfer_s": round(window, 3)}


def check_run(tool: str, scenario: Scenario, server: CRDSServer, cache: Path) -> None:
    """The run fetched each file exactly once and left it, whole, in the instrument layout."""
    fetched = server.fetched("reference")
    if sorted(fetched) != scenario.names:
        sys.exit(f"{tool} on {scenario.key}: fetched {len(fetched)} files "
                 f"({len(set(fetched))} distinct), expected {scenario.files}")
    refdir = cache / "references" / "jwst" / "niriss"
    wrong = [n for n in scenario.names if not (refdir / n).is_file()
             or (refdir / n).stat().st_size != scenario.size]
    if wrong:
        sys.exit(f"{tool} on {scenario.key}: {len(wrong)} files missing or wrong size in "
                 f"{refdir}, e.g. {wrong[0]}")


def measure(scenario: Scenario, server: CRDSServer, work: Path, args) -> dict:
    """Alternate the tools run by run, so drift on a shared machine hits both alike."""
    runs: dict[str, list] = {tool: [] for tool in TOOLS}
    for _ in range(args.repeat):
        for tool in TOOLS:
            runs[tool].append(run_once(tool, scenario, server, work, args.jobs))
    result = {"files": scenario.files, "bytes": scenario.files * scenario.size,
              "link": scenario.describe_link(), "link_rate": scenario.link_rate}
    for tool in TOOLS:
        result[tool] = {"runs": runs[tool], **{
            key: statistics.median(r[key] for r in runs[tool]) for key in ("wall_s", "transfer_s")}}
    return result


# ----------------------------------------------------------------------- our fetch (child)

def fetch_main(argv: list[str]) -> int:
    """Child process: what ``build.py sync`` does once the crds client has named the files."""
    parser = argparse.ArgumentParser(prog="bench/sync.py _fetch")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    cache = args.cache.resolve()
    with our_sync.crds_environment(cache, args.server):
        from crds.client import api

        info = our_sync._server_info(api, args.server)
        our_sync._write_config(info, cache)
        wanted = our_sync._wanted(info, "reference_url", args.names, our_sync._reference_path)
        report = fetch(wanted, Manifest(cache / our_sync.MANIFEST, cache), jobs=args.jobs,
                       reporter=Reporter(out=sys.stderr), label="references")
    return 1 if report.failed else 0


# ------------------------------------------------------------------------------ output

def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    crds = subprocess.run([sys.executable, "-c", "import crds; print(crds.__version__)"],
                          capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": mem, "crds": crds,
            "python": platform.python_version(), "os": platform.platform()}


def table(results: dict) -> str:
    m = results["machine"]
    lines = [f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, crds {m['crds']}, "
             f"Python {m['python']}, {results['date']}. Median of {results['repeat']} runs, "
             f"fresh cache each; ours with {results['jobs']} parallel transfers.", "",
             "| scenario | link | files | bytes | `crds sync` s | ours s | speed-up "
             "| `crds sync` MiB/s | ours MiB/s | link MiB/s |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for key, r in results["scenarios"].items():
        crds, ours = r["crds"], r["ours"]
        rates = [f"{r['bytes'] / MiB / t['transfer_s']:.1f}" for t in (crds, ours)]
        link = f"{r['link_rate'] / MiB:.0f}" if r["link_rate"] else "-"
        lines.append(f"| {key} | {r['link']} | {r['files']} | {human_bytes(r['bytes'])} | "
                     f"{crds['wall_s']:.2f} | {ours['wall_s']:.2f} | "
                     f"{crds['wall_s'] / ours['wall_s']:.1f}x | {rates[0]} | {rates[1]} | "
                     f"{link} |")
    lines += ["", "Seconds: wall clock of the whole process (start, server info, downloads, "
              "checks). MiB/s: bytes over the transfer window the server saw (first file request "
              "to last byte sent)."]
    return "\n".join(lines)


def write_results(results: dict) -> None:
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sync.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "sync.md").write_text(table(results) + "\n")


def main(argv: list[str]) -> int:
    if argv[:1] == ["_fetch"]:
        return fetch_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and scenario")
    parser.add_argument("--jobs", type=int, default=8, help="our parallel transfers")
    parser.add_argument("--small-files", type=int, default=200, help="files of 64 KiB")
    parser.add_argument("--large-mib", type=int, default=64, help="size of each of 4 large files")
    parser.add_argument("--latency-ms", type=float, default=40.0, help="time to first byte")
    parser.add_argument("--only", nargs="+", metavar="SCENARIO",
                        help="small, large, small-loopback and/or large-loopback")
    args = parser.parse_args(argv)
    chosen = [s for s in scenarios(args) if not args.only or s.key in args.only]
    results = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "repeat": args.repeat,
               "jobs": args.jobs, "scenarios": {}}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="niriss-bench-sync-") as tmp:
        work = Path(tmp)
        write_store(work / "store", chosen)
        with CRDSServer(work / "store", operational_context=CONTEXT) as server:
            for scenario in chosen:
                print(f"{scenario.key}: {scenario.files} x {human_bytes(scenario.size)}, "
                      f"{scenario.describe_link()}", file=sys.stderr, flush=True)
                results["scenarios"][scenario.key] = measure(scenario, server, work, args)
    results["benchmark_s"] = round(time.monotonic() - started, 1)
    write_results(results)
    print(table(results))
    print(f"\n(benchmark took {results['benchmark_s']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
