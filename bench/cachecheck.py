#!/usr/bin/env python3
"""Cache-check benchmark: the pre-``strun`` check on a cache of real size, here and in an image.

The cache (tests/crds_server/realistic.py) has the shape of a real JWST context: six imaps
of 40 rmaps each, 3000 NIRISS references present. Two variants: with the sync's record of
the context (what ``build.py sync`` leaves) and without it (the NIRISS rmaps are read).
Measured: the check itself in-process (best of --repeat), and ``python -m
niriss_pipe.runtime.cachecheck --quiet`` as the entrypoint runs it, against ``python -c pass``
(medians), on the host and, with --image, inside the image with the cache mounted read-only.
Results go to bench/results/cachecheck.json and .md. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from niriss_pipe.runtime import cachecheck  # noqa: E402
from tests.crds_server.realistic import write_cache  # noqa: E402

# Run inside the image (or here): medians of the check as a process and of a bare interpreter.
TIMER = r"""
import json, statistics, subprocess, sys, time
cache, context, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
def median(cmd):
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        runs.append(time.perf_counter() - t)
    return statistics.median(runs)
check = median([sys.executable, "-m", "niriss_pipe.runtime.cachecheck", "--quiet", cache, context])
bare = median([sys.executable, "-c", "pass"])
print(json.dumps({"process_s": check, "python_s": bare, "python": sys.version.split()[0]}))
"""


def in_process(cache: Path, context: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        status = cachecheck.check(str(cache), context)
        best = min(best, time.perf_counter() - started)
    assert status.complete, status.missing_text()
    return best


def host(cache: Path, context: str, repeat: int) -> dict:
    out = subprocess.run([sys.executable, "-c", TIMER, str(cache), context, str(repeat)],
                         check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out)


def image(name: str, cache: Path, context: str, repeat: int) -> dict:
    out = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v",
                          f"{cache}:/crds:ro", name, "python", "-c", TIMER, "/crds", context,
                          str(repeat)], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def table(results: dict) -> str:
    lines = [f"Cache check on {results['machine']}, {results['date']}: {results['rmaps']} rmaps "
             f"per imap, {results['references']} NIRISS references present.", "",
             "| cache | where | check in-process | `python -m ...cachecheck` | bare `python` | "
             "check's own share |", "|---|---|---|---|---|---|"]
    for row in results["rows"]:
        own = row["process_s"] - row["python_s"]
        inside = "-" if row["in_process_ms"] is None else f"{row['in_process_ms']:.1f} ms"
        lines.append(f"| {row['variant']} | {row['where']} (Python {row['python']}) | "
                     f"{inside} | {row['process_s'] * 1000:.0f} ms | "
                     f"{row['python_s'] * 1000:.0f} ms | {own * 1000:.0f} ms |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="also time it inside this image (cache mounted :ro)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rmaps", type=int, default=40)
    parser.add_argument("--references", type=int, default=3000)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cachecheck-bench-") as scratch:
        for variant, record in (("with sync record", True), ("rmaps only", False)):
            cache = Path(scratch) / variant.replace(" ", "-")
            context, _ = write_cache(cache, args.rmaps, args.references, record=record)
            for path in [cache, *cache.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            ms = in_process(cache, context, args.repeat) * 1000
            rows.append({"variant": variant, "where": "host", "in_process_ms": ms,
                         **host(cache, context, args.repeat)})
            if args.image:
                rows.append({"variant": variant, "where": "image", "in_process_ms": None,
                             **image(args.image, cache, context, args.repeat)})
    results = {"machine": f"{platform.node()} ({platform.machine()})",
               "date": time.strftime("%Y-%m-%d"), "rmaps": args.rmaps,
               "references": args.references, "repeat": args.repeat, "rows": rows}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "cachecheck.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "cachecheck.md").write_text(table(results) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
