#!/usr/bin/env python3
"""Batch benchmark: N synthetic exposures through ``build.py batch`` against a plain host loop.

The data come from the image itself: its synthetic CRDS context (jwst_9999.pmap) and one
synthetic 64x64, 5-group NIRISS exposure, copied N times under distinct names. Every run puts
the same N exposures through ``strun calwebb_detector1``:

- host loop: a venv on this machine with the image's lock (images/locks/default.txt), one
  ``strun`` after the other with the image's CRDS_* environment; then the same with two at a
  time (as ``xargs -P 2`` would), the concurrency of the batch runs on a 2-CPU node;
- one SLURM job array per container runtime (``batch submit`` then ``batch wait``, the real
  CLI; docker, charliecloud from a squashfs export, podman from a docker-archive export), and
  docker with ``--local -j 2`` (the same tasks without SLURM).

Per task, from its state record (start and end, epoch seconds) and its strun log (timestamped
lines): the task's wall time; the time before the first log line (runtime start, the image
entrypoint's cache check, interpreter and jwst import); the pipeline (first to last log line);
the CRDS lookup inside it (the "Prefetching reference files" line to the first "Prefetch for"
line: the one best-references call for the exposure). A runtime's per-task overhead is its mean
task wall minus the host loop's mean strun wall, at one and at two at a time. Container start
alone is the median of ``--repeat`` runs of ``true``. Throughput is N over the makespan (first
task start to last task end). One-time costs (exports, podman load) are reported, not counted.

Results go to bench/results/batch.json and batch.md. Nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import calendar
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "images" / "locks" / "default.txt"
PIPELINE = "calwebb_detector1"
CONTEXT = "jwst_9999.pmap"  # the image's synthetic context
RUNTIMES = ("docker", "charliecloud", "podman", "local")
LABELS = {"host-1": "host loop, 1 at a time", "host-2": "host loop, 2 at a time",
          "docker": "docker, SLURM array", "charliecloud": "charliecloud, SLURM array",
          "podman": "podman, SLURM array", "local": "docker, `--local -j 2`"}
RUN_TIMEOUT = 3600  # seconds for one whole batch; longer is a failure, not a number
STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) - ")
# The image's own CRDS environment (Dockerfile ENV), for the host loop.
CRDS_ENV = {"CRDS_CONTEXT": CONTEXT, "CRDS_MODE": "local", "CRDS_READONLY_CACHE": "1",
            "CRDS_SERVER_URL": "https://jwst-serverless-mode.stsci.edu", "MPLBACKEND": "Agg"}


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(cmd: list[str], what: str, env: dict | None = None, timeout: float = RUN_TIMEOUT,
        **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                          **kwargs)
    if proc.returncode != 0:
        sys.exit(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n"
                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def cli(*args: str, env: dict | None = None) -> tuple[float, str]:
    """build.py ARGS; wall seconds and output."""
    started = time.monotonic()
    proc = run([sys.executable, str(ROOT / "build.py"), *args], f"build.py {args[0]}", env=env)
    return time.monotonic() - started, proc.stdout + proc.stderr


def median_wall(cmd: list[str], repeat: int, env: dict | None = None) -> float:
    times = []
    for _ in range(repeat):
        started = time.monotonic()
        run(cmd, cmd[0], env=env, timeout=300)
        times.append(time.monotonic() - started)
    return round(statistics.median(times), 3)


# ------------------------------------------------------------------------------------- data

def make_data(image: str, work: Path, count: int) -> list[Path]:
    """The synthetic context in work/cache, COUNT copies of one exposure in work/in."""
    cache, inputs = work / "cache", work / "in"
    for folder in (cache, inputs):
        folder.mkdir()
        folder.chmod(0o755)
    user = f"{os.getuid()}:{os.getgid()}"
    run(["docker", "run", "--rm", "--network", "none", "--user", user, "-v", f"{cache}:/crds",
         image, "python", "-m", "niriss_pipe.runtime.synth", "context", "/crds"],
        "synthetic context")
    first = inputs / "jw00001_nis_uncal.fits"
    run(["docker", "run", "--rm", "--network", "none", "--user", user, "-v", f"{inputs}:/data",
         image, "python", "-m", "niriss_pipe.runtime.synth", "exposure", f"/data/{first.name}"],
        "synthetic exposure")
    paths = [first]
    for n in range(2, count + 1):
        path = inputs / f"jw{n:05d}_nis_uncal.fits"
        shutil.copyfile(first, path)
        paths.append(path)
    for path in [*cache.rglob("*"), *paths]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return paths


# -------------------------------------------------------------------------------- host loop

def host_venv(path: Path) -> tuple[Path, str]:
    """A venv with the image's lock (made once, then reused); its strun and jwst version."""
    strun = path / "bin" / "strun"
    if not strun.exists():
        wanted = re.search(r"for Python (\d+\.\d+)", LOCK.read_text())
        have = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if wanted and wanted.group(1) != have:
            sys.exit(f"{LOCK} is for Python {wanted.group(1)}, this is {have}: run the "
                     f"benchmark with a Python {wanted.group(1)} or give --venv one made with it.")
        say(f"host venv: installing {LOCK.relative_to(ROOT)} into {path} (once)")
        run([sys.executable, "-m", "venv", str(path)], "python -m venv")
        run([str(path / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--require-hashes", "--no-deps", "-r", str(LOCK)], "pip install of the lock")
    version = run([str(path / "bin" / "python"), "-c", "import jwst; print(jwst.__version__)"],
                  "import jwst").stdout.strip()
    return strun, version


def host_env(cache: Path) -> dict:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("CRDS_") and key != "PYTHONPATH"}
    return {**env, **CRDS_ENV, "CRDS_PATH": str(cache)}


def host_task(strun: Path, exposure: Path, index: int, folder: Path, env: dict) -> dict:
    products = folder / "products" / exposure.name.replace("_uncal.fits", "")
    products.mkdir(parents=True)
    log = folder / "logs" / f"{index}.log"
    with open(log, "wb") as out:
        started = time.time()
        code = subprocess.call([str(strun), PIPELINE, str(exposure),
                                f"--output_dir={products}"], stdout=out,
                               stderr=subprocess.STDOUT, env=env, timeout=RUN_TIMEOUT)
        ended = time.time()
    if code != 0:
        sys.exit(f"host strun on {exposure.name} failed (exit {code}); log {log}")
    return {"index": index, "started": started, "ended": ended, "log": log}


def host_loop(strun: Path, exposures: list[Path], folder: Path, cache: Path,
              workers: int) -> tuple[list[dict], float]:
    for sub in ("logs", "products"):
        (folder / sub).mkdir(parents=True)
    env = host_env(cache)
    started = time.time()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        records = list(pool.map(lambda item: host_task(strun, item[1], item[0], folder, env),
                                enumerate(exposures, 1)))
    return records, started


# ------------------------------------------------------------------------------------ batch

def podman_env(image: str, image_id: str, work: Path) -> tuple[dict | None, str]:
    """The environment for podman tasks: when the batch's task script runs ``podman run
    --init`` and podman's init binary (catatonit) is missing, a containers.conf naming tini."""
    _, dry = cli("batch", "submit", image, PIPELINE, str(work / "in" / "*.fits"), "-o",
                 str(work / "dry-run"), "--cache", str(work / "cache"), "--context", CONTEXT,
                 "--runtime", "podman", "--dry-run")
    if not re.search(r"^podman run .*--init\b", dry, re.MULTILINE):
        return None, ""
    probe = subprocess.run(["podman", "run", "--rm", "--init", "--network", "none", image_id,
                            "true"], capture_output=True, text=True)
    if probe.returncode == 0:
        return None, ""
    tini = shutil.which("tini")
    if "container-init binary not found" not in probe.stderr or not tini:
        sys.exit(f"podman run --init fails here: {probe.stderr.strip()[-600:]}")
    import tomllib  # Python 3.11, as the lock's venv needs anyway

    config: dict = {}
    for path in sorted(Path("/etc/containers/containers.conf.d").glob("*.conf")):
        for table, values in tomllib.loads(path.read_text()).items():
            config.setdefault(table, {}).update(values)
    config.setdefault("containers", {})["init_path"] = tini
    conf = work / "podman-containers.conf"
    conf.write_text("".join(f"[{table}]\n" + "".join(f"{key} = {json.dumps(value)}\n"
                                                     for key, value in values.items())
                            for table, values in config.items()))
    return {**os.environ, "CONTAINERS_CONF": str(conf)}, (
        "podman's init binary (catatonit) is missing here and the batch runs `podman run "
        "--init`, so the podman tasks ran with a CONTAINERS_CONF naming "
        f"init_path = {tini} (plus the settings of /etc/containers/containers.conf.d).")


def batch_run(runtime: str, image: str, work: Path, env: dict | None) -> tuple[list[dict],
                                                                                 float, float]:
    """submit (+ wait) through the CLI; the tasks' records, submit epoch and CLI seconds."""
    out = work / f"batch-{runtime}"
    # --no-preview: the host loop makes no pictures either (bench/preview.py times them).
    args = ["batch", "submit", image, PIPELINE, str(work / "in" / "*.fits"), "-o", str(out),
            "--cache", str(work / "cache"), "--context", CONTEXT, "--no-preview"]
    args += ["--local", "-j", "2"] if runtime == "local" else ["--runtime", runtime]
    submitted = time.time()
    took, _ = cli(*args, env=env)
    if runtime != "local":
        took += cli("batch", "wait", str(out), "--timeout", str(RUN_TIMEOUT), env=env)[0]
    records = []
    for state in sorted((out / "state").iterdir(), key=lambda p: int(p.name)):
        data = json.loads(state.read_text())
        if data["exit"] != 0:
            sys.exit(f"{runtime}: task {state.name} ended with exit {data['exit']}; "
                     f"log {out}/logs/{state.name}.log")
        records.append({"index": int(state.name), "started": data["started"],
                        "ended": data["ended"], "log": out / "logs" / f"{state.name}.log"})
    return records, submitted, took


# ---------------------------------------------------------------------------------- metrics

def log_times(log: Path, started: float) -> dict:
    """Epoch seconds of the first and last stpipe lines and of the CRDS lookup's two lines.

    strun stamps its lines in the local time of wherever it ran (the image: UTC); the offset
    is the whole quarter hour that puts the first line just after the task started."""
    stamps, prefetching, prefetched = [], None, None
    for line in log.read_text(errors="replace").splitlines():
        match = STAMP.match(line)
        if not match:
            continue
        naive = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S"))
        stamp = naive + int(match.group(2)) / 1000
        stamps.append(stamp)
        if prefetching is None and "Prefetching reference files" in line:
            prefetching = stamp
        elif prefetching is not None and prefetched is None and \
                re.search(r" - (Prefetch|Override) for ", line):
            prefetched = stamp
    if not stamps or prefetching is None or prefetched is None:
        sys.exit(f"{log}: no strun log lines with a CRDS prefetch")
    offset = round((stamps[0] - started) / 900) * 900
    return {"first_log": stamps[0] - offset, "last_log": stamps[-1] - offset,
            "crds_s": prefetched - prefetching}


def at_once(records: list[dict]) -> int:
    events = sorted([(r["started"], 1) for r in records] + [(r["ended"], -1) for r in records])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def summarize(records: list[dict], submitted: float) -> dict:
    tasks = []
    for r in sorted(records, key=lambda r: r["index"]):
        times = log_times(r["log"], r["started"])
        tasks.append({
            "index": r["index"], "wall_s": round(r["ended"] - r["started"], 3),
            "before_log_s": round(times["first_log"] - r["started"], 3),
            "pipeline_s": round(times["last_log"] - times["first_log"], 3),
            "crds_s": round(times["crds_s"], 3),
            "after_log_s": round(r["ended"] - times["last_log"], 3),
            "started": round(r["started"], 3), "ended": round(r["ended"], 3)})
    first = min(r["started"] for r in records)
    last = max(r["ended"] for r in records)
    means = {key: round(statistics.mean(t[key] for t in tasks), 3)
             for key in ("wall_s", "before_log_s", "pipeline_s", "crds_s", "after_log_s")}
    slots = at_once(records)
    # Slot time not spent in a task: the runner's (SLURM's) gap between one task and the next.
    idle = (slots * (last - first) - sum(t["wall_s"] for t in tasks)) / len(tasks)
    return {"exposures": len(tasks), "at_once": slots, "mean": means,
            "makespan_s": round(last - first, 2), "submit_to_done_s": round(last - submitted, 2),
            "idle_per_task_s": round(idle, 3),
            "per_minute": round(len(tasks) / (last - first) * 60, 2), "tasks": tasks}


# ------------------------------------------------------------------------------------ output

def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024

    def version(*cmd: str) -> str:
        if not shutil.which(cmd[0]):
            return ""
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ,
                                                                         "USER": "bench"})
        return (proc.stdout or proc.stderr).strip().splitlines()[0] if proc.returncode == 0 \
            else ""

    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": mem,
            "engine": version("docker", "version", "--format", "{{.Server.Version}}"),
            "podman": version("podman", "version", "--format", "{{.Client.Version}}"),
            "charliecloud": version("ch-run", "--version"),
            "slurm": version("sinfo", "--version"), "python": platform.python_version(),
            "os": platform.platform()}


def table(results: dict) -> str:
    m, runs = results["machine"], results["runs"]
    host1, host2 = runs.get("host-1"), runs.get("host-2")
    lines = [f"Machine: {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB, Docker Engine "
             f"{m['engine']}, podman {m['podman']}, Charliecloud {m['charliecloud']}, "
             f"{m['slurm']}, {results['date']}; load average {results['load_before']} (1, 5, 15 "
             "min) at the start. "
             f"{results['exposures']} synthetic exposures (64x64, 5 groups) through "
             f"`strun {PIPELINE}`, jwst {results['jwst']} in the image and the host venv "
             f"(Python {results['python_image']} in the image, {results['python_host']} on the "
             f"host: different builds), synthetic context {CONTEXT}.", "",
             "Per task (mean over the exposures, seconds):", "",
             "| run | at once | task wall (min-max) | before first log line | pipeline (log span) "
             "| of which CRDS lookup | after last log line | overhead vs host loop 1 / 2 at "
             "a time |", "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for key, r in runs.items():
        mean = r["mean"]
        over = "-"
        if not key.startswith("host") and host1 and host2:
            over = (f"{mean['wall_s'] - host1['mean']['wall_s']:+.2f} / "
                    f"{mean['wall_s'] - host2['mean']['wall_s']:+.2f}")
        walls = [t["wall_s"] for t in r["tasks"]]
        lines.append(f"| {LABELS[key]} | {r['at_once']} | {mean['wall_s']:.2f} "
                     f"({min(walls):.1f}-{max(walls):.1f}) | "
                     f"{mean['before_log_s']:.2f} | {mean['pipeline_s']:.2f} | "
                     f"{mean['crds_s']:.3f} | {mean['after_log_s']:.2f} | {over} |")
    lines += ["", f"Runtime alone (median of {results['repeat']} runs, seconds) and one-time "
              "preparation:", "",
              "| runtime | container start (`true`) | + entrypoint cache check | one-time |",
              "|---|--:|--:|---|"]
    for name, r in results["runtimes"].items():
        lines.append(f"| {name} | {r['start_s']:.3f} | {r['cachecheck_s'] - r['start_s']:+.3f} "
                     f"| {r.get('prepare', '') or '-'} |")
    lines += ["", "Throughput:", "",
              "| run | at once | makespan s | submit to last end s | idle slot s per task "
              "| exposures/min | vs host loop 1 at a time |", "|---|--:|--:|--:|--:|--:|--:|"]
    for key, r in runs.items():
        ratio = f"{r['per_minute'] / host1['per_minute']:.2f}x" if host1 else "-"
        submit = "-" if key.startswith("host") else f"{r['submit_to_done_s']:.1f}"
        lines.append(f"| {LABELS[key]} | {r['at_once']} | {r['makespan_s']:.1f} | {submit} | "
                     f"{r['idle_per_task_s']:.2f} | {r['per_minute']:.1f} | {ratio} |")
    lines += ["", "Task wall: the task's own start and end (batch state record; for the host "
              "loop, around the `strun` process). Before the first log line: runtime start, the "
              "entrypoint's cache check, Python and jwst import. Pipeline: first to last "
              "timestamped strun line. CRDS lookup: \"Prefetching reference files\" to the first "
              "\"Prefetch for\" line. Overhead: mean task wall minus the host loop's mean strun "
              "wall at 1 and at 2 at a time (the SLURM arrays run 2 at once on 2 CPUs). Makespan: "
              "first task start to last task end; submit to last end adds `batch submit` and "
              "SLURM scheduling; idle slot: (at once x makespan - the tasks' walls) / N, the "
              "wait between one task's end and the next one's start. The synthetic context has "
              "10 mappings and 8 references, so its lookup is far cheaper than a real context's. "
              "One run each; nothing here asserts a time."]
    lines += [f"Note: {note}" for note in results["notes"]]
    return "\n".join(lines)


def write_results(results: dict) -> None:
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "batch.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out_dir / "batch.md").write_text(table(results) + "\n")


# -------------------------------------------------------------------------------------- main

def check_tools(runtimes: list[str], image: str) -> None:
    needs = {"docker": ["docker"]}
    for runtime in runtimes:
        needs.setdefault(runtime, [])
        if runtime != "local":
            needs[runtime] += ["sbatch", "squeue"]
        needs[runtime] += {"charliecloud": ["ch-run"], "podman": ["podman"]}.get(runtime, [])
    missing = sorted({tool for tools in needs.values() for tool in tools if not shutil.which(tool)})
    if missing:
        sys.exit(f"missing on PATH: {', '.join(missing)} (drop the runtimes that need them with "
                 f"--runtimes)")
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        sys.exit(f"no Docker image {image}: build it first (python build.py build)")


def prepare_runtimes(runtimes: list[str], image: str, work: Path, repeat: int,
                     notes: list[str]) -> tuple[dict, dict, dict, list[str]]:
    """Exports, podman load, and container start alone (median of REPEAT) per runtime.
    Returns per-runtime facts, the image argument and environment for batch submit, and the
    podman image ids this loaded (to remove afterwards)."""
    facts, images, envs, loaded = {}, {}, {}, []
    cache = work / "cache"
    check = ["python", "-m", "niriss_pipe.runtime.cachecheck"]
    if {"docker", "local"} & set(runtimes):
        base = ["docker", "run", "--rm", "--network", "none"]
        facts["docker"] = {
            "start_s": median_wall([*base, image, "true"], repeat),
            "cachecheck_s": median_wall([*base, "-v", f"{cache}:/crds:ro", "-e",
                                         f"CRDS_CONTEXT={CONTEXT}", image, *check], repeat)}
        images["docker"] = images["local"] = image
        say(f"docker: container start {facts['docker']['start_s']:.2f} s")
    if "charliecloud" in runtimes:
        sqfs = work / "image.sqfs"
        took, _ = cli("export", image, "--to", "squashfs", "-o", str(sqfs))
        env = {**os.environ, "USER": os.environ.get("USER") or "bench"}
        facts["charliecloud"] = {
            "start_s": median_wall(["ch-run", str(sqfs), "--", "true"], repeat, env=env),
            "cachecheck_s": median_wall(["ch-run", "--set-env", f"--set-env=CRDS_CONTEXT="
                                         f"{CONTEXT}", f"--bind={cache}:/crds", str(sqfs), "--",
                                         *check], repeat, env=env),
            "prepare": f"export to squashfs {took:.0f} s", "export_s": round(took, 1)}
        images["charliecloud"] = str(sqfs)
        say(f"charliecloud: exported in {took:.0f} s, container start "
            f"{facts['charliecloud']['start_s']:.2f} s")
    if "podman" in runtimes:
        tar = work / "image.tar"
        took, _ = cli("export", image, "--to", "docker-archive", "-o", str(tar))
        image_id = run(["docker", "image", "inspect", "--format", "{{.Id}}", image],
                       "docker image inspect").stdout.strip().split(":")[-1]
        load = 0.0
        if subprocess.run(["podman", "image", "exists", image_id]).returncode != 0:
            started = time.monotonic()
            run(["podman", "load", "--quiet", "--input", str(tar)], "podman load")
            load = time.monotonic() - started
            loaded.append(image_id)
        base = ["podman", "run", "--rm", "--network", "none"]
        facts["podman"] = {
            "start_s": median_wall([*base, image_id, "true"], repeat),
            "cachecheck_s": median_wall([*base, "-v", f"{cache}:/crds:ro", "-e",
                                         f"CRDS_CONTEXT={CONTEXT}", image_id, *check], repeat),
            "prepare": f"export to docker-archive {took:.0f} s" +
                       (f", podman load {load:.0f} s" if load else " (image already loaded)"),
            "export_s": round(took, 1), "load_s": round(load, 1)}
        env, note = podman_env(str(tar), image_id, work)
        if note:
            notes.append(note)
            envs["podman"] = env
        images["podman"] = str(tar)
        say(f"podman: exported in {took:.0f} s, loaded in {load:.0f} s, container start "
            f"{facts['podman']['start_s']:.2f} s")
    return facts, images, envs, loaded


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exposures", type=int, default=8, help="N (default: 8)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES),
                        help="comma-separated, of docker, charliecloud, podman and local (docker "
                             "with --local -j 2); default: all")
    parser.add_argument("--image", default="niriss-pipe:jwst_1584", help="the Docker image")
    parser.add_argument("--venv", type=Path, default=ROOT / "build" / "bench-venv",
                        help="host venv with the lock's jwst (made when missing)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each container start")
    parser.add_argument("--no-host-parallel", action="store_true",
                        help="skip the host loop with 2 at a time")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work folder (data, batch folders, exports) and any image "
                             "this loaded into podman")
    args = parser.parse_args(argv)
    runtimes = list(dict.fromkeys(r.strip() for r in args.runtimes.split(",") if r.strip()))
    unknown = sorted(set(runtimes) - set(RUNTIMES))
    if unknown or args.exposures < 1:
        parser.error(f"unknown runtime {unknown[0]}" if unknown else "--exposures must be >= 1")
    check_tools(runtimes, args.image)

    started = time.monotonic()
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d"),
                     "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                     "image": args.image, "exposures": args.exposures, "repeat": args.repeat,
                     "notes": [], "runtimes": {}, "runs": {}}
    strun, results["jwst_host"] = host_venv(args.venv.resolve())
    results["jwst"] = run(["docker", "image", "inspect", "--format",
                           '{{index .Config.Labels "io.niriss-pipe.jwst.version"}}', args.image],
                          "docker image inspect").stdout.strip()
    results["python_image"] = run(["docker", "run", "--rm", "--network", "none", args.image,
                                   "python", "-c", "import platform; "
                                   "print(platform.python_version())"],
                                  "python in the image").stdout.strip()
    results["python_host"] = run([str(strun.parent / "python"), "-c", "import platform, sys; "
                                  "print(platform.python_version(), sys.base_prefix)"],
                                 "python in the host venv").stdout.strip()
    if results["jwst"] != results["jwst_host"]:
        results["notes"].append(f"jwst {results['jwst_host']} in the host venv, "
                                f"{results['jwst']} in the image")
    work = Path(tempfile.mkdtemp(prefix="niriss-bench-batch-"))
    work.chmod(0o755)
    loaded: list[str] = []
    try:
        exposures = make_data(args.image, work, args.exposures)
        say(f"data: {len(exposures)} exposures and the synthetic context in {work}")
        facts, images, envs, loaded = prepare_runtimes(runtimes, args.image, work, args.repeat,
                                                       results["notes"])
        results["runtimes"] = facts

        env = host_env(work / "cache")  # warm-up: the first strun pays for cold file caches
        run([str(strun), PIPELINE, str(exposures[0]), f"--output_dir={work}/warmup"],
            "host warm-up strun", env=env, cwd=work)
        for key, workers in (("host-1", 1), ("host-2", 2)):
            if workers == 2 and args.no_host_parallel:
                continue
            records, loop_started = host_loop(strun, exposures, work / key, work / "cache",
                                              workers)
            results["runs"][key] = summarize(records, loop_started)
            r = results["runs"][key]
            say(f"{LABELS[key]}: {r['makespan_s']:.1f} s, {r['mean']['wall_s']:.2f} s per "
                "exposure")
        for runtime in runtimes:
            records, submitted, took = batch_run(runtime, images[runtime], work,
                                                 envs.get(runtime))
            results["runs"][runtime] = summarize(records, submitted)
            results["runs"][runtime]["cli_s"] = round(took, 1)
            r = results["runs"][runtime]
            say(f"{LABELS[runtime]}: {r['makespan_s']:.1f} s, {r['mean']['wall_s']:.2f} s per "
                f"task, {r['at_once']} at once")
    finally:
        for image_id in loaded if not args.keep else []:
            subprocess.run(["podman", "rmi", image_id], capture_output=True)
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["benchmark_s"] = round(time.monotonic() - started, 1)
    write_results(results)
    print(table(results))
    say(f"\n(benchmark took {results['benchmark_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
