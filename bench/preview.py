#!/usr/bin/env python3
"""What a batch task's preview costs: the second container a task runs after strun succeeded
(``python -m niriss_pipe.runtime.preview --products /data`` in the image, as task.sh runs it),
timed whole (container start, Python, numpy/astropy/matplotlib imports, two PNGs), median of
``--repeat`` runs, on one product of the synthetic exposure; and the same module on the host's
Python for comparison. Results go to bench/results/preview.json. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def docker(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True, text=True)


def timed(cmd: list[str], repeat: int) -> list[float]:
    walls = []
    for _ in range(repeat):
        started = time.monotonic()
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        walls.append(time.monotonic() - started)
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="niriss-pipe:jwst_1584")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    user = f"{os.getuid()}:{os.getgid()}"
    with tempfile.TemporaryDirectory(prefix="niriss-bench-preview-") as scratch:
        work = Path(scratch)
        work.chmod(0o755)
        cache, data = work / "crds", work / "data"
        cache.mkdir()
        data.mkdir()
        base = ["run", "--rm", "--network", "none", "--user", user]
        docker(*base, "-v", f"{cache}:/crds", args.image, "python", "-m",
               "niriss_pipe.runtime.synth", "context", "/crds")
        docker(*base, "-v", f"{data}:/data", args.image, "python", "-m",
               "niriss_pipe.runtime.synth", "exposure", "/data/jw01_nis_uncal.fits")
        docker(*base, "-v", f"{cache}:/crds:ro", "-v", f"{data}:/data", "-w", "/data", "-e",
               "CRDS_CONTEXT=jwst_9999.pmap", args.image, "strun", "calwebb_detector1",
               "jw01_nis_uncal.fits")
        task = ["docker", "run", "--rm", "--init", "--network", "none", "--read-only", "--tmpfs",
                "/tmp", "--user", user, "-v", f"{data}:/data", "-w", "/data", args.image,
                "python", "-m", "niriss_pipe.runtime.preview", "--products", "/data"]
        container = timed(task, args.repeat)
        start = timed(["docker", "run", "--rm", "--init", "--network", "none", args.image,
                       "true"], args.repeat)
        host = timed([sys.executable, "-m", "niriss_pipe.runtime.preview", "--products",
                      str(data)], args.repeat)
    result = {"image": args.image, "repeat": args.repeat,
              "preview_container_s": round(statistics.median(container), 2),
              "container_start_s": round(statistics.median(start), 2),
              "host_python_s": round(statistics.median(host), 2),
              "walls": {"container": container, "start": start, "host": host}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "preview.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "walls"}, indent=2))


if __name__ == "__main__":
    main()
