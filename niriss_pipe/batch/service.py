"""build.py batch: one pipeline over many exposures as a SLURM job array or local workers.

``submit`` checks everything (inputs, image, runtime, cache, SLURM options) before writing the
batch folder, then submits ``array.sbatch`` (or runs the tasks here with ``--local``);
``status`` and ``wait`` report each task, ``retry`` resubmits only the tasks that did not
complete, ``cancel`` stops the batch's jobs (their tasks stop their containers).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from niriss_pipe.batch import slurm
from niriss_pipe.batch import state as batchstate
from niriss_pipe.batch.plan import (
    ARRAY_SCRIPT,
    INPUTS_FILE,
    PLAN_FILE,
    TASK_SCRIPT,
    Plan,
    SlurmOptions,
    check_cache,
    check_context,
    check_folder,
    check_image,
    check_pipeline,
    check_runtime,
    check_slurm,
    check_strun_args,
    count,
    expand_inputs,
    inputs_text,
    load_plan,
    make_tasks,
    save_plan,
    to_json,
)
from niriss_pipe.batch.scripts import array_script, array_spec, task_script
from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError, shown
from niriss_pipe.core.progress import Reporter, human_bytes, short_path
from niriss_pipe.export.core import env_value, image_facts


@dataclass(frozen=True)
class BatchRequest:
    image: str
    pipeline: str
    inputs: tuple[str, ...]
    output: Path
    cache: Path
    runtime: str = "docker"
    context: str | None = None
    strun_args: tuple[str, ...] = ()
    slurm: SlurmOptions = SlurmOptions()


@dataclass(frozen=True)
class ImageChoice:
    ref: str                # what the runtime runs
    id: str                 # Docker image id where known
    context: str | None     # the image's CRDS_CONTEXT where it can be read here
    archive: Path | None = None


# -- the image, per runtime ----------------------------------------------------------------------
def choose_image(runtime: str, image: str, reporter: Reporter) -> ImageChoice:
    path = Path(image)
    if runtime == "docker":
        from niriss_pipe.engine.client import Engine

        facts = image_facts(Engine(reporter), image)
        return ImageChoice(facts.id, facts.id, facts.env_value("CRDS_CONTEXT") or None)
    if runtime == "podman":
        return _podman_image(image, reporter)
    if runtime == "charliecloud":
        if path.is_dir():
            if not (path / "ch" / "environment").is_file():
                raise UserError(f"{image} is a folder but not a Charliecloud image (no "
                                "ch/environment).", f"export one: python build.py export IMAGE "
                                f"--to dir -o {image}")
            try:
                env = (path / "ch" / "environment").read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UserError(f"{image}/ch/environment cannot be read ({exc}).",
                                "export the image again: python build.py export IMAGE --to "
                                "dir") from None
            return ImageChoice(_resolved(image, path), "", _env_context(env.splitlines()))
        if path.is_file() and _magic(path) == b"hsqs":
            return ImageChoice(_resolved(image, path), "",
                               _env_context(_sqfs_environment(path).splitlines()))
        raise UserError(f"'{image}' is not a Charliecloud image (a folder or a .sqfs file).",
                        f"export the Docker image first: python build.py export {image} --to "
                        "squashfs (one file on the shared file system), then give that file.")
    if path.is_file():  # apptainer: a SIF; its environment cannot be read without apptainer
        return ImageChoice(_resolved(image, path), "", None)
    raise UserError(f"'{image}' is not a SIF file.",
                    f"export the Docker image first: python build.py export {image} --to sif "
                    "(where Apptainer is missing this writes the archive and a script that "
                    "builds the SIF on the cluster), then give the .sif file.")


def _resolved(image: str, path: Path) -> str:
    """The image file's real path, which task.sh runs (quoted); a link may point to a name
    the given one does not have."""
    real = str(path.resolve())
    problem = grammar.text_problem(real)
    if problem:
        raise UserError(f"the image {image} is a link to {shown(real)}, which cannot be written "
                        f"into the batch scripts: {problem}.", "rename the file it links to.")
    return real


def _magic(path: Path) -> bytes:
    with open(path, "rb") as stream:
        return stream.read(4)


def _env_context(items) -> str | None:
    """CRDS_CONTEXT among an image's ``KEY=VALUE`` environment items, or None."""
    return env_value(items, "CRDS_CONTEXT") or None


def _sqfs_environment(path: Path) -> str:
    if not shutil.which("unsquashfs"):
        return ""
    proc = subprocess.run(["unsquashfs", "-cat", str(path), "ch/environment"],
                          capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else ""


def archive_facts(path: Path) -> tuple[str, list[str]]:
    """Image id and ENV of the one image in a docker-archive or OCI archive."""
    try:
        with tarfile.open(path, "r:") as tar:
            names = set(tar.getnames())
            if "manifest.json" in names:  # docker-archive
                config_name = json.load(tar.extractfile("manifest.json"))[0]["Config"]
                config_bytes = tar.extractfile(config_name).read()
            else:  # OCI layout
                index = json.load(tar.extractfile("index.json"))
                digest = index["manifests"][0]["digest"].split(":", 1)[1]
                manifest = json.load(tar.extractfile(f"blobs/sha256/{digest}"))
                config_digest = manifest["config"]["digest"].split(":", 1)[1]
                config_bytes = tar.extractfile(f"blobs/sha256/{config_digest}").read()
    except (OSError, tarfile.TarError, KeyError, ValueError, IndexError, AttributeError) as exc:
        raise UserError(f"{path} is not a docker-archive or OCI archive ({exc}).",
                        "export one: python build.py export IMAGE --to docker-archive") from None
    config = json.loads(config_bytes)
    return hashlib.sha256(config_bytes).hexdigest(), config.get("config", {}).get("Env") or []


def _podman_image(image: str, reporter: Reporter) -> ImageChoice:
    path = Path(image)
    if path.is_file():
        image_id, env = archive_facts(path)
        if shutil.which("podman") and subprocess.run(
                ["podman", "image", "exists", image_id]).returncode != 0:
            reporter.say(f"loading {path.name} into podman's image store "
                         f"({human_bytes(path.stat().st_size)}, once per node) ...")
            started = time.monotonic()
            proc = subprocess.run(["podman", "load", "--quiet", "--input", str(path)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise UserError(f"podman load {path} failed: {proc.stderr.strip()[-600:]}",
                                "check the archive (python build.py export IMAGE --to "
                                "docker-archive writes one) and podman's storage.")
            reporter.say(f"  loaded in {time.monotonic() - started:.0f} s")
        return ImageChoice(image_id, f"sha256:{image_id}", _env_context(env),
                           archive=Path(_resolved(image, path)))
    if not shutil.which("podman"):
        raise UserError("the podman runtime needs podman on PATH here, or an image archive.",
                        "give the image as a docker-archive file (python build.py export IMAGE "
                        "--to docker-archive), which each node loads when it lacks it.")
    proc = subprocess.run(["podman", "image", "inspect", "--format",
                           "{{.Id}}|{{json .Config.Env}}", image], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"podman has no image '{image}'.",
                        f"export it from Docker and give the file: python build.py export "
                        f"{image} --to docker-archive -o image.tar, then pass image.tar.")
    image_id, _, env = proc.stdout.strip().partition("|")
    return ImageChoice(image_id, f"sha256:{image_id}",
                       _env_context(json.loads(env or "[]") or []))


# -- submit ----------------------------------------------------------------------------------------
def plan_batch(request: BatchRequest, reporter: Reporter) -> Plan:
    """Every check, in the order a user fixes things; nothing is written."""
    runtime = check_runtime(request.runtime)
    pipeline = check_pipeline(request.pipeline)
    strun_args = check_strun_args(tuple(request.strun_args))
    context = check_context(request.context)
    options = check_slurm(request.slurm)
    folder = check_folder(request.output)
    tasks = make_tasks(expand_inputs(list(request.inputs)))
    image = choose_image(runtime, check_image(runtime, request.image), reporter)
    if context is None and image.context is not None and not grammar.is_pmap(image.context):
        raise UserError(f"the image {request.image} sets CRDS_CONTEXT to {shown(image.context)}, "
                        "which is not a JWST context name.", "give the context to run with: "
                        "--context jwst_NNNN.pmap.")
    effective = context or image.context
    cache = check_cache(request.cache, effective)
    if effective is None:
        reporter.warn(f"the image's CRDS context cannot be read here ({runtime}); {cache} is "
                      "checked by each task instead (the entrypoint's cache check).")
    return Plan(folder=folder, image=request.image, image_ref=image.ref, image_id=image.id,
                runtime=runtime, pipeline=pipeline, cache=cache, context=context, tasks=tasks,
                strun_args=strun_args, slurm=options, archive=image.archive)


def slurm_arrays(plan: Plan, indices: list[int]) -> list[tuple[int, list[int], str]]:
    """``(offset, task indices, --array spec)`` per job array: one array per MaxArraySize
    block, its array indices being the task indices minus the offset."""
    return [(offset, block, array_spec([index - offset for index in block], plan.slurm.throttle))
            for offset, block in slurm.blocks(indices, slurm.max_array_size())]


def dry_run_text(plan: Plan, local: bool, indices: list[int] | None = None) -> str:
    indices = indices or [task.index for task in plan.tasks]
    if local:
        how = f"# would run here: bash {plan.folder}/{TASK_SCRIPT} INDEX for INDEX in " \
              f"{array_spec(indices, None)}\n"
    else:
        how = ""
        for offset, _, array in slurm_arrays(plan, indices):
            export = f" --export=ALL,NIRISS_PIPE_INDEX_OFFSET={offset}" if offset else ""
            how += f"# would submit: sbatch --array={array}{export} {plan.folder}/{ARRAY_SCRIPT}\n"
        how += f"# ---- {ARRAY_SCRIPT}\n{array_script(plan)}"
    return f"{how}# ---- {TASK_SCRIPT}\n{task_script(plan)}"


def write_folder(plan: Plan) -> None:
    """The scripts, inputs.txt and the empty logs/state/products folders; batch.json last, so
    a folder with batch.json is always complete."""
    plan.folder.mkdir(exist_ok=True)
    for sub in ("logs", "logs/slurm", "state", "products"):
        (plan.folder / sub).mkdir(exist_ok=True)
    _write(plan.folder / INPUTS_FILE, inputs_text(plan))
    _write(plan.folder / TASK_SCRIPT, task_script(plan), mode=0o755)
    _write(plan.folder / ARRAY_SCRIPT, array_script(plan), mode=0o755)
    _write(plan.folder / PLAN_FILE, to_json(plan))


def _write(path: Path, text: str, mode: int = 0o644) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}")
    temp.write_text(text)
    temp.chmod(mode)
    os.replace(temp, path)


def remove_folder(plan: Plan, created: bool) -> None:
    """Undo write_folder after a refused submission: the user's folder is as it was."""
    if created:
        shutil.rmtree(plan.folder, ignore_errors=True)
        return
    for name in (PLAN_FILE, INPUTS_FILE, TASK_SCRIPT, ARRAY_SCRIPT):
        (plan.folder / name).unlink(missing_ok=True)
    for sub in ("logs", "state", "products"):
        shutil.rmtree(plan.folder / sub, ignore_errors=True)


def submit(request: BatchRequest, reporter: Reporter, *, local: bool = False,
           workers: int | str = 2, dry_run: bool = False) -> int:
    if not local and not dry_run:
        slurm.require()
    workers = _workers(workers)
    plan = plan_batch(request, reporter)
    if dry_run:
        reporter.say(dry_run_text(plan, local).rstrip("\n"))
        return 0
    created = not plan.folder.exists()
    write_folder(plan)
    indices = [task.index for task in plan.tasks]
    try:
        return _launch(plan, indices, reporter, local=local, workers=workers)
    except UserError:
        if not load_plan(plan.folder).submissions:  # nothing went to SLURM: leave no trace
            remove_folder(plan, created)
        raise


def _workers(workers: int | str) -> int:
    return count("-j/--jobs", workers, "it is how many tasks --local runs at once, e.g. -j 4.")


def _launch(plan: Plan, indices: list[int], reporter: Reporter, *, local: bool,
            workers: int) -> int:
    at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if local:
        from niriss_pipe.batch.local import LocalRunner

        job = f"local-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        plan = plan.with_submission({"mode": "local", "job": job, "indices": indices, "at": at,
                                     "host": socket.gethostname(), "pid": os.getpid()})
        save_plan(plan)
        runner = LocalRunner(plan, job, workers, reporter)
        interrupted = False
        try:
            runner.run(indices)
        except KeyboardInterrupt:
            interrupted = True
        plan = _finished(load_plan(plan.folder))
        save_plan(plan)
        code = report(plan, reporter, header=False)
        return 130 if interrupted else code
    jobs: dict[str, int] = {}  # job id -> index offset
    arrays, submitted = [], []
    try:
        for offset, block, array in slurm_arrays(plan, indices):
            jobs[slurm.submit(plan.folder / ARRAY_SCRIPT, array, plan.folder, offset)] = offset
            arrays.append(array if not offset else f"{array} +{offset}")
            submitted += block
    except UserError as err:
        if not jobs:
            raise UserError(err.what, f"{err.fix} Nothing was submitted.") from None
        raise UserError(f"{err.what} Tasks {array_spec(submitted, None)} went to SLURM as job"
                        f"{'s' if len(jobs) > 1 else ''} {', '.join(jobs)}; the other "
                        f"{len(indices) - len(submitted)} did not.",
                        f"{err.fix} Then submit the rest with: python build.py batch retry "
                        f"{short_path(plan.folder)}") from None
    finally:  # what was submitted is recorded even when a later block is refused; the rest
        if jobs:  # stays 'never submitted', which batch retry submits
            save_plan(plan.with_submission({"mode": "slurm", "job": next(iter(jobs)),
                                            "jobs": jobs, "indices": submitted, "at": at,
                                            "array": "; ".join(arrays)}))
    names = ", ".join(f"{job} (--array={array})" for job, array in zip(jobs, arrays))
    reporter.say(f"submitted SLURM job{'s' if len(jobs) > 1 else ''} {names}: "
                 f"{len(indices)} tasks, {plan.pipeline} in {plan.image} ({plan.runtime})")
    reporter.say(f"  follow it: python build.py batch status {short_path(plan.folder)}   "
                 f"(or: batch wait)")
    return 0


def _finished(plan: Plan) -> Plan:
    """The plan as others will see it once this local run has returned (its process no
    longer counts as running its tasks)."""
    return replace(plan, submissions=tuple({**s, "pid": 0} if s.get("pid") == os.getpid()
                                           else s for s in plan.submissions))


# -- status, wait, retry, cancel -----------------------------------------------------------------
def last_error(log: Path) -> str:
    """The line of a task log that says why it failed: the last Python exception line
    (``OSError: No SIMPLE card found ...``), else the last line that reads like an error."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    for pattern in (r"^[A-Za-z_.]*(Error|Exception|Exit|Interrupt)\b.*: ",
                    r"\[niriss-pipe\] task \d+: error:", r"(Error|error:|ERROR)"):
        for line in reversed(lines):
            if re.search(pattern, line):
                return line[:200]
    return ""


def slurm_message(plan: Plan, status: batchstate.TaskStatus) -> str:
    """SLURM's own last word on a task (``*** JOB 12 ... CANCELLED ... DUE TO TIME LIMIT ***``,
    out-of-memory kills) from logs/slurm/JOB_ARRAYINDEX.out."""
    if "_" not in status.job:
        return ""
    try:
        text = (plan.folder / "logs" / "slurm" / f"{status.job}.out").read_text(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines()
             if "***" in line or "oom" in line.lower() or "error" in line.lower()]
    return lines[-1][:200] if lines else ""


def exit_code(statuses: list[batchstate.TaskStatus]) -> int:
    """0: all completed; 1: some failed, were killed or lost; 3: still going, none bad yet."""
    states = {status.state for status in statuses}
    if states & set(batchstate.FINISHED_BAD):
        return 1
    return 0 if states == {"completed"} else 3


def report(plan: Plan, reporter: Reporter, *, header: bool = True, table: bool | None = None,
           statuses: list[batchstate.TaskStatus] | None = None) -> int:
    statuses = statuses if statuses is not None else batchstate.task_statuses(plan)
    if header:
        jobs = ", ".join(job for s in plan.submissions
                         for job in batchstate.submission_jobs(s)) or "none"
        reporter.say(f"batch {short_path(plan.folder)}: {plan.pipeline} in {plan.image} "
                     f"({plan.runtime}), {len(plan.tasks)} tasks; jobs: {jobs}")
    show_all = table if table is not None else (reporter.verbose or len(statuses) <= 30)
    rows = [s for s in statuses if show_all or s.state != "completed"]
    if rows:
        width = max(len(s.name) for s in rows)
        reporter.say(f"  {'task':>5}  {'input':<{width}}  {'state':<9}  {'exit':>4}  "
                     f"{'time':>7}  host")
        for s in rows:
            seconds = f"{s.seconds:.1f} s" if s.seconds is not None else ""
            code = "" if s.exit is None else str(s.exit)
            reporter.say(f"  {s.index:>5}  {s.name:<{width}}  {s.state:<9}  {code:>4}  "
                         f"{seconds:>7}  {s.host}")
    reporter.say(batchstate.summary(statuses))
    bad = [s for s in statuses if s.state in batchstate.FINISHED_BAD]
    for s in bad:
        error = (slurm_message(plan, s) if s.state != "failed" else "") or last_error(s.log)
        detail = f"exit {s.exit}" if s.state == "failed" else s.reason
        reporter.say(f"  {s.state}: {s.name} (task {s.index}, {detail}); log {short_path(s.log)}"
                     + (f"\n      {error}" if error else ""))
    if bad and batchstate.is_finished(statuses):
        reporter.say("rerun only these with: python build.py batch retry "
                     f"{short_path(plan.folder)}")
    return exit_code(statuses)


def status(folder: Path, reporter: Reporter, as_json: bool = False) -> int:
    plan = load_plan(folder)
    if any(s["mode"] == "slurm" for s in plan.submissions) and not slurm.available():
        reporter.warn("SLURM's squeue is not on PATH here: tasks that have not recorded an end "
                      "show as lost or pending from their records alone; ask on the login "
                      "node for their real state.")
    statuses = batchstate.task_statuses(plan)
    if as_json:
        reporter.say(json.dumps({"folder": str(plan.folder),
                                 "summary": batchstate.counts(statuses),
                                 "tasks": [s.as_dict() for s in statuses]}, indent=2))
        return exit_code(statuses)
    return report(plan, reporter, statuses=statuses)


def wait(folder: Path, reporter: Reporter, timeout: float | None = None,
         poll: float = 3.0) -> int:
    started = time.monotonic()
    last = ""
    while True:
        plan = load_plan(folder)  # a retry or cancel from elsewhere updates it
        statuses = batchstate.task_statuses(plan)
        line = batchstate.summary(statuses)
        if batchstate.is_finished(statuses):
            return report(plan, reporter, statuses=statuses)
        if line != last:
            reporter.say(f"  {time.monotonic() - started:5.0f} s  {line}")
            last = line
        if timeout is not None and time.monotonic() - started > timeout:
            reporter.say(f"still not finished after {timeout:.0f} s: {line}")
            return 3
        time.sleep(poll)


def retry(folder: Path, reporter: Reporter, *, local: bool = False, workers: int | str = 2,
          dry_run: bool = False) -> int:
    workers = _workers(workers)
    plan = load_plan(folder)
    statuses = batchstate.task_statuses(plan)
    going = [s for s in statuses if s.in_flight]
    todo = [s.index for s in statuses if s.needs_submission]
    if not todo:
        reporter.say(f"nothing to retry: {batchstate.summary(statuses)}")
        return exit_code(statuses)
    if going:
        reporter.warn(f"{len(going)} tasks are still pending or running; only the "
                      f"{len(todo)} that ended without completing are resubmitted.")
    names = ", ".join(plan.task(i).name for i in todo[:5]) + (" ..." if len(todo) > 5 else "")
    if dry_run:
        reporter.say(f"would retry {len(todo)} tasks: {names}")
        reporter.say(dry_run_text(plan, local, todo).splitlines()[0])
        return 0
    if not local:
        slurm.require()
    reporter.say(f"retrying {len(todo)} tasks: {names}")
    return _launch(plan, todo, reporter, local=local, workers=workers)


def cancel(folder: Path, reporter: Reporter) -> int:
    plan = load_plan(folder)
    statuses = batchstate.task_statuses(plan)
    active = {batchstate.latest_submission(plan, s.index)["job"] for s in statuses
              if s.in_flight}
    jobs = [job for s in plan.submissions if s["mode"] == "slurm" and s["job"] in active
            for job in batchstate.submission_jobs(s)]
    local = [s for s in plan.submissions if s["job"] in active and s["mode"] == "local"]
    for submission in local:  # as Ctrl-C in its terminal: it stops its tasks and containers
        if batchstate.local_runner_alive(submission):
            os.kill(int(submission["pid"]), signal.SIGINT)
            reporter.say(f"stopping the local run {submission['job']} (pid {submission['pid']})")
    if not jobs:
        if not local:
            reporter.say(f"nothing to cancel: {batchstate.summary(statuses)}")
        return 0
    slurm.cancel(jobs)
    submissions = tuple({**s, "cancelled": True} if s["job"] in active else s
                        for s in plan.submissions)
    save_plan(replace(plan, submissions=submissions))
    reporter.say(f"cancelled SLURM job{'s' if len(jobs) > 1 else ''} {', '.join(jobs)}; "
                 "running tasks stop their containers and record 'killed'")
    return 0
