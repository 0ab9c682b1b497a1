#!/usr/bin/env python3
"""Full-frame benchmark: one synthetic 2048x2048 NIRISS exposure through calwebb_detector1,
in the container and in a host venv made from the same lock, with 1 and 2 cores.

The data come from the image itself (``python -m niriss_pipe.runtime.synth ... --frame full``):
a NIS_IMAGE FULL exposure (NISRAPID, NGROUPS 15 by default, NINTS 1; stars, sky, cosmic-ray
jumps, read noise) and a synthetic context of full-frame references (jwst_9998.pmap). Runs:

- ``container-N``: ``docker run --network none --read-only`` with the cache read-only, the
  thread variables at N and, for N > 1, ``maximum_cores=N`` for jump and ramp_fit (what a
  batch task passes);
- ``host-N``: the host venv's strun (bench/batch.py makes it from images/locks/default.txt)
  with the same variables and arguments;
- ``batch-N``: the real ``batch submit --local -j 1 --cpus N --no-preview``;
- ``small-1``: the self-test's 64x64, 5-group exposure in the container (what does not grow
  with the data: Python, jwst, the pipeline's fixed costs).

Peak memory, two ways (see docs/benchmarks.md): the largest single process's maximum resident
set (``getrusage(RUSAGE_CHILDREN).ru_maxrss`` of a small wrapper around strun, the same on
both sides), and the whole run's memory sampled every 0.2 s: in the container the cgroup's
``memory.max_usage_in_bytes`` (what a cgroup limit such as SLURM's --mem counts, page cache
included) and its anonymous ``total_rss``; on the host the summed RSS of the process tree.
Step times (jump, ramp_fit) come from the strun log. Results go to
bench/results/fullframe.{json,md}. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch import ROOT, cli, host_env, host_venv, machine, run, say  # noqa: E402

CONTEXT = "jwst_9998.pmap"  # runtime/contract.py SYNTHETIC_FULL_SERIAL
NAME = "jw_niriss_fullframe_nis_uncal.fits"
SMALL = "jw_niriss_sub64_nis_uncal.fits"
THREADS = ("NIRISS_PIPE_CPUS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
           "NUMEXPR_NUM_THREADS")
WRAPPER = """import resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(sys.argv[1:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("PEAK maxrss_kib=%d wall_s=%.2f cpu_s=%.2f" % (r.ru_maxrss, time.monotonic() - t,
      r.ru_utime + r.ru_stime), file=sys.stderr)
sys.exit(rc)
"""
STEP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) - stpipe.step - INFO - Step "
                  r"(\w+) (running|done)")
GIB = 1 << 30


def make_data(image: str, work: Path, ngroups: int) -> Path:
    cache, inputs = work / "cache", work / "in"
    for folder in (cache, inputs):
        folder.mkdir()
        folder.chmod(0o755)
    user = f"{os.getuid()}:{os.getgid()}"
    synth = ["python", "-m", "niriss_pipe.runtime.synth"]
    run(["docker", "run", "--rm", "--network", "none", "--user", user, "-v", f"{cache}:/crds",
         image, *synth, "context", "/crds", "--frame", "full"], "full-frame context")
    run(["docker", "run", "--rm", "--network", "none", "--user", user, "-v", f"{inputs}:/data",
         image, *synth, "exposure", f"/data/{NAME}", "--frame", "full", "--ngroups",
         str(ngroups)], "full-frame exposure")
    # The self-test's 64x64, 5-group exposure and context: the figure that does not grow.
    small = work / "small"
    small.mkdir()
    run(["docker", "run", "--rm", "--network", "none", "--user", user, "-v", f"{cache}:/crds",
         "-v", f"{small}:/data", image, "sh", "-c", f"{' '.join(synth)} context /crds && "
         f"{' '.join(synth)} exposure /data/{SMALL}"], "64x64 context and exposure")
    for path in [*cache.rglob("*"), *inputs.iterdir(), small, *small.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return inputs / NAME


def strun_args(cpus: int) -> list[str]:
    """What a batch task passes for jwst 3.0.0 (batch/cores.py): maximum_cores only above 1."""
    return [] if cpus == 1 else [f"--steps.jump.maximum_cores={cpus}",
                                 f"--steps.ramp_fit.maximum_cores={cpus}"]


class Sampler:
    """Peak of a memory figure read every 0.2 s while a run lasts."""

    def __init__(self, read):
        self.read, self.peaks, self._stop = read, {}, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _loop(self):
        while not self._stop.is_set():
            for key, value in (self.read() or {}).items():
                self.peaks[key] = max(self.peaks.get(key, 0), value)
            time.sleep(0.2)


class Containers:
    """The running containers ``match(name, mounts)`` selects, asked of the engine at most
    once a second (a docker CLI call every 0.2 s would load the 2 CPUs it measures)."""

    def __init__(self, match):
        self.match, self.ids, self.asked = match, set(), 0.0

    def __call__(self) -> set:
        if time.monotonic() - self.asked >= 1.0:
            self.asked = time.monotonic()
            ids = subprocess.run(["docker", "ps", "-q", "--no-trunc"], capture_output=True,
                                 text=True).stdout.split()
            info = subprocess.run(["docker", "inspect", "--format", "{{.Id}} {{.Name}} "
                                   "{{range .Mounts}}{{.Source}},{{end}}", *ids],
                                  capture_output=True, text=True).stdout.splitlines() \
                if ids else []
            for line in info:
                cid, name, mounts = (line.split(" ", 2) + [""])[:3]
                if self.match(name.lstrip("/"), mounts):
                    self.ids.add(cid)
        return self.ids


def cgroup_memory(containers: Containers) -> dict:
    """Summed over the selected containers: cgroup v1's max_usage_in_bytes and total_rss
    (v2: memory.peak and anon), read from the cgroup files alone."""
    total = {"cgroup_max_usage": 0, "cgroup_rss": 0}
    for cid in containers():
        v1 = Path("/sys/fs/cgroup/memory/docker") / cid
        try:
            if v1.is_dir():
                total["cgroup_max_usage"] += int((v1 / "memory.max_usage_in_bytes").read_text())
                stat = dict(row.split() for row in (v1 / "memory.stat").read_text().splitlines())
                total["cgroup_rss"] += int(stat.get("total_rss", 0))
            else:
                v2 = next(Path("/sys/fs/cgroup").glob(f"**/*{cid}*/memory.peak"))
                total["cgroup_max_usage"] += int(v2.read_text())
                stat = dict(row.split() for row in (v2.parent / "memory.stat").read_text()
                            .splitlines())
                total["cgroup_rss"] += int(stat.get("anon", 0))
        except (OSError, ValueError, StopIteration):
            continue
    return total


def tree_rss(root: int) -> dict:
    """Summed VmRSS of ``root`` and its descendants (shared pages counted in each)."""
    parents, rss = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])
            rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    keep, changed = {root}, True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in keep and pid not in keep:
                keep.add(pid)
                changed = True
    return {"tree_rss": sum(rss.get(pid, 0) for pid in keep)}


def step_times(log: str) -> dict:
    """Seconds of jump and ramp_fit, and first to last pipeline line, from strun's log."""
    marks: dict = {}
    first = last = None
    for line in log.splitlines():
        found = STEP.match(line)
        if not found:
            continue
        stamp = calendar.timegm(time.strptime(found.group(1), "%Y-%m-%d %H:%M:%S")) + \
            int(found.group(2)) / 1000
        first = stamp if first is None else first
        last = stamp
        marks.setdefault(found.group(3), {})[found.group(4)] = stamp
    steps = {step: round(m["done"] - m["running"], 1) for step, m in marks.items()
             if step in ("jump", "ramp_fit", "refpix") and {"running", "done"} <= set(m)}
    return {**steps, "pipeline_s": round(last - first, 1) if first else None}


def peak_line(text: str) -> dict:
    found = re.search(r"PEAK maxrss_kib=(\d+) wall_s=([\d.]+) cpu_s=([\d.]+)", text)
    return {"maxrss_gib": round(int(found.group(1)) / (1 << 20), 2),
            "cpu_s": float(found.group(3))} if found else {}


def container_run(image: str, work: Path, exposure: Path, cpus: int,
                  context: str = CONTEXT, key: str = "") -> dict:
    out = work / (key or f"container-{cpus}")
    out = out if not out.exists() else work / f"{out.name}.{time.monotonic_ns()}"
    out.mkdir()
    out.chmod(0o777)
    name = f"niriss-pipe-bench-fullframe-{os.getpid()}-{out.name}"
    env = [f"--env={var}={cpus}" for var in THREADS] + [f"--env=CRDS_CONTEXT={context}"]
    cmd = ["docker", "run", "--rm", "--name", name, "--network", "none", "--read-only",
           "--tmpfs", "/tmp", "--user", f"{os.getuid()}:{os.getgid()}", *env,
           "-v", f"{work / 'wrapper.py'}:/wrapper.py:ro", "-v", f"{work / 'cache'}:/crds:ro",
           "-v", f"{exposure.parent}:/mnt/0:ro", "-v", f"{out}:/data", "--workdir", "/data",
           image, "python", "/wrapper.py", "niriss-pipe-entrypoint", "strun",
           "calwebb_detector1", f"/mnt/0/{exposure.name}", "--output_dir=/data",
           *strun_args(cpus)]
    started = time.monotonic()
    chosen = Containers(lambda n, m: n == name)
    with Sampler(lambda: cgroup_memory(chosen)) as sampler:
        proc = run(cmd, f"container run, {cpus} cores")
    wall = time.monotonic() - started
    log = proc.stdout + proc.stderr
    (out / "strun.log").write_text(log)
    return {"wall_s": round(wall, 1), **peak_line(log), **gib(sampler.peaks),
            "steps": step_times(log)}


def host_run(strun: Path, work: Path, exposure: Path, cpus: int) -> dict:
    out = work / f"host-{cpus}"
    out = out if not out.exists() else work / f"host-{cpus}.{time.monotonic_ns()}"
    out.mkdir()
    env = {**host_env(work / "cache"), "CRDS_CONTEXT": CONTEXT,
           **{var: str(cpus) for var in THREADS}}
    cmd = [str(strun.parent / "python"), str(work / "wrapper.py"), str(strun),
           "calwebb_detector1", str(exposure), f"--output_dir={out}", *strun_args(cpus)]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            cwd=out, text=True)
    with Sampler(lambda: tree_rss(proc.pid)) as sampler:
        log, _ = proc.communicate()
    wall = time.monotonic() - started
    (out / "strun.log").write_text(log)
    if proc.returncode != 0:
        sys.exit(f"host strun, {cpus} cores, failed (exit {proc.returncode}); {out}/strun.log")
    return {"wall_s": round(wall, 1), **peak_line(log), **gib(sampler.peaks),
            "steps": step_times(log)}


def batch_run(image: str, work: Path, exposure: Path, cpus: int) -> dict:
    out = work / f"batch-{cpus}"
    out = out if not out.exists() else work / f"batch-{cpus}.{time.monotonic_ns()}"
    chosen = Containers(lambda n, m: f"{out}/" in m)
    with Sampler(lambda: cgroup_memory(chosen)) as sampler:
        took, output = cli("batch", "submit", image, "calwebb_detector1", str(exposure), "-o",
                           str(out), "--cache", str(work / "cache"), "--context", CONTEXT,
                           "--local", "-j", "1", "--cpus", str(cpus), "--no-preview")
    state = json.loads((out / "state" / "1").read_text())
    if state["exit"] != 0:
        sys.exit(f"batch, {cpus} cores: exit {state['exit']}; {out}/logs/1.log")
    log = (out / "logs" / "1.log").read_text()
    seen = re.search(r"in the container: (NIRISS_PIPE_CPUS=\S+ .*)", log)
    return {"wall_s": round(state["ended"] - state["started"], 1), "cli_s": round(took, 1),
            **gib(sampler.peaks), "steps": step_times(log),
            "in_container": seen.group(1) if seen else None,
            "maximum_cores": re.findall(r"Maximum cores to use = (\S+)", log)}


def gib(peaks: dict) -> dict:
    return {f"{key}_gib": round(value / GIB, 2) for key, value in peaks.items()}


def table(results: dict) -> str:
    m = results["machine"]
    lines = [f"# Full-frame calwebb_detector1 ({results['date']})", "",
             f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Docker "
             f"{m['engine']}; jwst {results['jwst']}; exposure 2048x2048, NGROUPS "
             f"{results['ngroups']}, NINTS 1; load average before {results['load_before']}.",
             "", "| run | cores | load before | wall | pipeline | jump | ramp_fit | CPU time | "
             "largest process (maxrss) | run's memory, sampled |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for key, r in results["runs"].items():
        sampled = r.get("cgroup_max_usage_gib")
        memory = (f"cgroup max {sampled} GiB (rss {r.get('cgroup_rss_gib')})" if sampled
                  else f"tree RSS {r.get('tree_rss_gib', '-')} GiB")
        s = r["steps"]
        lines.append(f"| {key} | {r['cores']} | {r.get('load_before')} | {r['wall_s']} s | "
                     f"{s.get('pipeline_s')} s | "
                     f"{s.get('jump')} s | {s.get('ramp_fit')} s | {r.get('cpu_s', '-')} s | "
                     f"{r.get('maxrss_gib', '-')} GiB | {memory} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="niriss-pipe:jwst_1584",
                        help="the Docker image (its synth must know --frame full)")
    parser.add_argument("--ngroups", type=int, default=15, help="NGROUPS (default 15)")
    parser.add_argument("--venv", type=Path, default=ROOT / "build" / "bench-venv",
                        help="host venv with the lock's jwst (made when missing)")
    parser.add_argument("--runs", default="small-1,container-1,host-1,host-2,batch-1,batch-2",
                        help="comma-separated, of small-N (64x64), container-N, host-N, "
                        "batch-N")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--results", default="fullframe",
                        help="bench/results/NAME.{json,md} (default: fullframe)")
    args = parser.parse_args(argv)
    strun, jwst_host = host_venv(args.venv.resolve())
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d"),
                     "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                     "image": args.image, "ngroups": args.ngroups, "jwst_host": jwst_host,
                     "runs": {}}
    results["image_id"] = run(["docker", "image", "inspect", "--format", "{{.Id}}",
                               args.image], "docker image inspect").stdout.strip()
    results["jwst"] = run(["docker", "image", "inspect", "--format",
                           '{{index .Config.Labels "io.niriss-pipe.jwst.version"}}',
                           args.image], "docker image inspect").stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="niriss-bench-fullframe-"))
    work.chmod(0o755)
    (work / "wrapper.py").write_text(WRAPPER)
    (work / "wrapper.py").chmod(0o644)
    try:
        started = time.monotonic()
        exposure = make_data(results["image_id"], work, args.ngroups)
        results["data_s"] = round(time.monotonic() - started, 1)
        say(f"data: {exposure.name} and {CONTEXT} in {work} ({results['data_s']} s)")
        for key in [k.strip() for k in args.runs.split(",") if k.strip()]:
            load = round(os.getloadavg()[0], 2)
            kind, _, cores = key.partition("-")
            cpus = int(cores.split(".")[0])  # container-1.2: the second run of container-1
            if kind == "small":  # the 64x64 exposure, its own context
                result = container_run(results["image_id"], work, work / "small" / SMALL, cpus,
                                       "jwst_9999.pmap", key)
            elif kind == "container":
                result = container_run(results["image_id"], work, exposure, cpus)
            elif kind == "host":
                result = host_run(strun, work, exposure, cpus)
            else:
                result = batch_run(results["image_id"], work, exposure, cpus)
            results["runs"][key] = {"cores": cpus, "load_before": load, **result}
            say(f"{key}: {json.dumps(result)}")
    finally:
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    folder = ROOT / "bench" / "results"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{args.results}.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / f"{args.results}.md").write_text(table(results))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
