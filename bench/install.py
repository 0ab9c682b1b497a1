#!/usr/bin/env python3
"""Cold build of the default spec (uv from the verified wheel cache) against the seed's steps as
one naive Dockerfile (bench/naive.Dockerfile: pip from PyPI), side by side in one run.

Three cold builds, each with no layer cache and the base present: the naive Dockerfile; ours
with the host's caches empty (it downloads the 62 wheels and the OS packages first); ours with
them warm. Then the fetch of a carried folder (wheels and OS packages) and a cold offline build
from it (--offline --no-cache: every stage run, every step's network off), which must give the
online cold build's image id.
Results go to bench/results/install.json and are printed as the table docs/benchmarks.md
quotes. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from niriss_pipe.runtime.contract import lock_pins  # noqa: E402

REPOSITORY = "niriss-pipe-bench-uv"
NAIVE = "niriss-pipe-bench-naive:latest"
ONLY_OURS = ("base", "normalize", "selftest")  # our base check, the rewrite, the self-test


def run_cli(*args: str, env: dict) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, **env})
    took = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"build.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return took, proc.stdout


def built_id(output: str) -> str:
    found = re.search(r"^built ([0-9a-f]{12}) in ", output, re.MULTILINE)
    if not found:
        raise SystemExit(f"no image id in the build output:\n{output}")
    return found.group(1)


def remove_repository(repository: str) -> None:
    """Every tag of the bench's own repository (the stages of its builds go with them)."""
    tags = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
                           repository], capture_output=True, text=True).stdout.split()
    for tag in tags:
        subprocess.run(["docker", "rmi", tag], capture_output=True)


def naive_build(base: str, lock: Path, ca: Path) -> float:
    """The naive Dockerfile, built by the classic builder with no layer cache."""
    import docker

    pins = "".join(f"{name}=={version}\n" for name, version in
                   sorted(lock_pins(lock.read_text()).items()))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("Dockerfile", (ROOT / "bench" / "naive.Dockerfile").read_bytes()),
                           ("constraints.txt", pins.encode()), ("ca-bundle.crt", ca.read_bytes())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    client = docker.from_env(timeout=1800)
    started = time.monotonic()
    for line in client.api.build(fileobj=buffer, custom_context=True, tag=NAIVE, nocache=True,
                                 rm=True, forcerm=True, decode=True, buildargs={"BASE": base}):
        if "error" in line:
            raise SystemExit(f"naive build failed: {line['error']}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ca-bundle", type=Path,
                        default=Path("/etc/ssl/certs/ca-certificates.crt"))
    args = parser.parse_args()
    from niriss_pipe.spec.load import load_spec

    work = Path(tempfile.mkdtemp(prefix="niriss-pipe-bench-install-"))
    data = yaml.safe_load((ROOT / "images" / "default.yaml").read_text())
    data["name"] = REPOSITORY
    spec = work / "bench.yaml"
    spec.write_text(yaml.safe_dump(data))
    (work / "locks").mkdir()
    lock = work / "locks" / "bench.txt"
    lock.write_bytes((ROOT / "images" / "locks" / "default.txt").read_bytes())
    base = load_spec(spec).base.reference
    env = {"SOURCE_DATE_EPOCH": "1750000000", "XDG_CACHE_HOME": str(work / "xdg")}
    results = {"machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
                          f"load {os.getloadavg()[0]:.1f} at start"}
    results["naive_s"] = round(naive_build(base, lock, args.ca_bundle), 1)
    cold = ("build", str(spec), "--no-cache", "--force")
    results["cold_empty_cache_s"] = round(run_cli(*cold, env=env)[0], 1)
    took, out = run_cli(*cold, env=env)
    results["cold_warm_cache_s"], online_id = round(took, 1), built_id(out)
    # the build's own per-step lines ("  jwst   17.2 s"): where the warm cold build goes
    results["cold_warm_steps_s"] = {name: float(seconds) for name, seconds in re.findall(
        r"^  (\S+) +([0-9.]+) s\b", out, re.MULTILINE)}
    house = work / "wheelhouse"
    results["fetch_s"] = round(run_cli("fetch", str(spec), "--to", str(house), env=env)[0], 1)
    results["wheelhouse_bytes"] = sum(p.stat().st_size for p in house.glob("*.whl"))
    debs = list(house.glob("os-packages/*/*.deb"))
    results["os_packages"], results["os_packages_bytes"] = \
        len(debs), sum(p.stat().st_size for p in debs)
    took, out = run_cli(*cold, "--offline", "--wheels", str(house), env=env)
    results["offline_cold_s"] = round(took, 1)
    results["offline_id"], results["online_id"] = built_id(out), online_id
    results["offline_equals_online"] = results["offline_id"] == online_id
    remove_repository(REPOSITORY)
    for key in ("cold_empty_cache_s", "cold_warm_cache_s"):
        results[key.replace("_s", "_ratio")] = round(results[key] / results["naive_s"], 2)
    # The steps the naive Dockerfile also has (the OS packages, the environment, the image's
    # own files), without what only ours does: the bit-identical rewrite and the self-test.
    steps = results["cold_warm_steps_s"]
    results["shared_steps_s"] = round(sum(seconds for name, seconds in steps.items()
                                          if name not in ONLY_OURS), 1)
    results["shared_steps_ratio"] = round(results["shared_steps_s"] / results["naive_s"], 2)
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "install.json").write_text(json.dumps(results, indent=2) + "\n")
    print("| build (no layer cache, base present) | seconds | x naive |\n|---|---|---|")
    print(f"| naive Dockerfile (pip from PyPI) | {results['naive_s']} | 1.00 |")
    print(f"| ours, wheel cache empty | {results['cold_empty_cache_s']} | "
          f"{results['cold_empty_cache_ratio']} |")
    print(f"| ours, wheel cache warm | {results['cold_warm_cache_s']} | "
          f"{results['cold_warm_cache_ratio']} |")
    print("warm build's steps: " + ", ".join(f"{name} {seconds} s" for name, seconds in
                                              results["cold_warm_steps_s"].items()))
    print(f"the steps the naive build also has: {results['shared_steps_s']} s, "
          f"{results['shared_steps_ratio']}x naive (beside: normalize "
          f"{steps.get('normalize', 0)} s, the self-test {steps.get('selftest', 0)} s)")
    print(f"fetch {results['fetch_s']} s, wheels {results['wheelhouse_bytes'] / 2**20:.1f} "
          f"MiB, {results['os_packages']} OS packages "
          f"{results['os_packages_bytes'] / 2**20:.1f} MiB; offline cold build (every step's "
          f"network off) {results['offline_cold_s']} s ({results['offline_id']}), online "
          f"({results['online_id']}): same id {results['offline_equals_online']}; "
          f"{results['machine']}")
    subprocess.run(["docker", "rmi", NAIVE], capture_output=True)


if __name__ == "__main__":
    main()
