#!/usr/bin/env python3
"""Build benchmarks: base, cold build, no-op rebuild, pmap-only rebuild, image size, demo run.

Each number is one wall-clock measurement of the real CLI on this machine
(``make bench``); results go to bench/results/build.json and are printed as the
Markdown table that the README quotes. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from niriss_pipe.build.base import make_debootstrap_base  # noqa: E402
from niriss_pipe.core.progress import Reporter, human_bytes  # noqa: E402
from niriss_pipe.engine.client import Engine  # noqa: E402
from niriss_pipe.spec.load import load_spec  # noqa: E402

SPEC = ROOT / "images" / "default.yaml"


def timed_cli(*args: str, cwd: Path = ROOT) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), *args], cwd=cwd,
                          capture_output=True, text=True)
    took = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"build.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return took, proc.stdout


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": mem, "engine": engine,
            "os": platform.platform()}


def bench_base(engine: Engine) -> float:
    spec = load_spec(SPEC)
    started = time.monotonic()
    # Under another name, so the real base (and every layer on it) stays.
    image_id = make_debootstrap_base(engine, spec.base, "niriss-pipe-bench-base:latest")
    took = time.monotonic() - started
    engine.client.api.remove_image(image_id, force=True)
    return took


def copy_lock(spec_path: Path) -> None:
    """A changed name or pmap keeps the default spec's Python requirements, so its lock."""
    locks = spec_path.parent / "locks"
    locks.mkdir(exist_ok=True)
    (locks / f"{spec_path.stem}.txt").write_bytes((ROOT / "images/locks/default.txt").read_bytes())


def bench_bake(engine: Engine, tmp: Path, name: str, tag: str) -> dict:
    """Bake context 1, then context 2 (one new rmap and reference) from the CRDS test server."""
    from tests.crds_server.fixtures import build_store
    from tests.crds_server.server import CRDSServer

    store = tmp / "store"
    store.mkdir()
    build_store(f"{name}:{tag}", store)
    data = yaml.safe_load(SPEC.read_text())
    data["name"] = "niriss-pipe-bench"
    spec_path = tmp / "bake.yaml"
    times = {}
    with CRDSServer(store) as server:
        for key, context in (("bake_first_s", "jwst_0001.pmap"),
                             ("bake_pmap_change_s", "jwst_0002.pmap")):
            data["crds"] = {"context": context, "references": "bake"}
            spec_path.write_text(yaml.safe_dump(data))
            copy_lock(spec_path)
            times[key] = round(timed_cli("build", str(spec_path), "--cache", str(tmp / "bake"),
                                         "--server", server.url)[0], 1)
    for image in engine.client.images.list("niriss-pipe-bench"):
        engine.client.api.remove_image(image.id, force=True)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-base", action="store_true", help="do not time debootstrap")
    args = parser.parse_args()
    engine = Engine(Reporter())
    spec = load_spec(SPEC)
    results: dict[str, object] = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}

    timed_cli("build", str(SPEC))  # make sure the base exists before timing layers
    if not args.skip_base:
        results["base_debootstrap_s"] = round(bench_base(engine), 1)
    took, out = timed_cli("build", str(SPEC), "--no-cache")
    results["cold_build_s"] = round(took, 1)
    selftest = re.search(r"selftest\s+([\d.]+) s", out)
    results["selftest_s"] = float(selftest.group(1)) if selftest else None
    results["noop_rebuild_s"] = round(timed_cli("build", str(SPEC))[0], 2)

    with tempfile.TemporaryDirectory() as tmp:
        data = yaml.safe_load(SPEC.read_text())
        data["name"], data["crds"]["context"] = "niriss-pipe-bench", "jwst_1585.pmap"
        other = Path(tmp) / "pmap.yaml"
        other.write_text(yaml.safe_dump(data))
        copy_lock(other)
        took, out = timed_cli("build", str(other))
        results["pmap_change_rebuild_s"] = round(took, 1)
        results["pmap_change_ratio"] = round(took / results["cold_build_s"], 3)
        results["pmap_change_paths"] = {"normalize config only": "config only" in out,
                                        "selftest reused": "selftest       reused" in out}
        for image in engine.client.images.list("niriss-pipe-bench"):
            engine.client.api.remove_image(image.id, force=True)

        results.update(bench_bake(engine, Path(tmp), spec.name, spec.pmap_stem))
        took, out = timed_cli("demo", str(SPEC), "--cache", f"{tmp}/crds_cache", cwd=Path(tmp))
        results["demo_total_s"] = round(took, 1)
        run = re.search(r"demo done in ([\d.]+) s", out)
        results["demo_detector1_s"] = float(run.group(1)) if run else None

    results["image_size_bytes"] = engine.image_size(f"{spec.name}:{spec.pmap_stem}")
    results["base_size_bytes"] = engine.image_size(spec.base.reference)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "build.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


def table(r: dict) -> str:
    rows = [
        ("base image from Debian's mirror (debootstrap + import)", r.get("base_debootstrap_s"),
         "s"),
        ("cold build of the default image (no layer cache; base present; incl. self-test)",
         r["cold_build_s"], "s"),
        ("  of which the self-test", r["selftest_s"], "s"),
        ("no-op rebuild (content tag exists)", r["noop_rebuild_s"], "s"),
        ("rebuild after a pmap-only change (self-test verdict reused, config-only normalize)",
         r["pmap_change_rebuild_s"], "s"),
        ("  pmap-only rebuild / cold build", r.get("pmap_change_ratio"), "x"),
        ("bake image, first context from the CRDS test server (sync + build + self-test)",
         r.get("bake_first_s"), "s"),
        ("bake image after a pmap-only change (1 new reference; 1 layer rebuilt)",
         r.get("bake_pmap_change_s"), "s"),
        ("`make demo` with the image built (synthetic context + detector1)", r["demo_total_s"],
         "s"),
        ("  of which `strun calwebb_detector1` in the container", r["demo_detector1_s"], "s"),
        ("default image size", human_bytes(r["image_size_bytes"]), ""),
        ("  of which the Debian base", human_bytes(r["base_size_bytes"]), ""),
    ]
    m = r["machine"]
    lines = [f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Docker Engine "
             f"{m['engine']}, {r['date']}.", "", "| measurement | value |", "|---|---|"]
    lines += [f"| {name} | {value}{' ' + unit if unit else ''} |" for name, value, unit in rows
              if value is not None]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
