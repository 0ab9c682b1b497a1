"""build.py batch: one pipeline over many exposures as a SLURM job array or local workers.

``submit`` checks everything (inputs, image, runtime, cache, SLURM options) before writing the
batch folder, then submits ``array.sbatch`` (or runs the tasks here with ``--local``);
``status`` and ``wait`` report each task, ``retry`` resubmits only the tasks that did not
complete, ``cancel`` stops the batch's jobs (their tasks stop their containers).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.batch import cores as batchcores
from niriss_pipe.batch import state as batchstate
from niriss_pipe.batch.checks import (
    check_cache,
    check_context,
    check_folder,
    check_image,
    check_pipeline,
    check_runtime,
    check_slurm,
    check_strun_args,
    check_timeout,
    count,
    parameter_files,
)
from niriss_pipe.batch.images import choose_image
from niriss_pipe.batch.inputs import expand_inputs, make_tasks
from niriss_pipe.batch.outcome import Outcome
from niriss_pipe.batch.plan import (
    ARRAY_SCRIPT,
    INPUTS_FILE,
    PLAN_FILE,
    TASK_SCRIPT,
    Plan,
    SlurmOptions,
    inputs_text,
    load_plan,
    to_json,
)
from niriss_pipe.batch.schedulers import slurm
from niriss_pipe.batch.schedulers.base import all_schedulers, scheduler
from niriss_pipe.batch.scripts import array_script, task_script
from niriss_pipe.batch.summary import outcome, report
from niriss_pipe.core import grammar
from niriss_pipe.core.atomic import make_folders, write_text
from niriss_pipe.core.errors import UserError, opt, shown
from niriss_pipe.core.progress import Reporter, short_path


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
    preview: bool = True


# -- submit ----------------------------------------------------------------------------------------
def plan_batch(request: BatchRequest, reporter: Reporter) -> Plan:
    """Every check, in the order a user fixes things; nothing is written."""
    runtime = check_runtime(request.runtime)
    pipeline = check_pipeline(request.pipeline)
    strun_args = check_strun_args(tuple(request.strun_args))
    parameters = parameter_files(pipeline, strun_args)
    context = check_context(request.context)
    options = check_slurm(request.slurm)
    folder = check_folder(request.output)
    tasks = make_tasks(expand_inputs(list(request.inputs)))
    image = choose_image(runtime, check_image(runtime, request.image), reporter)
    if context is None and image.context is not None and not grammar.is_pmap(image.context):
        raise UserError(f"the image {request.image} sets CRDS_CONTEXT to {shown(image.context)}, "
                        "which is not a JWST context name.", "give the context to run with: "
                        f"{opt('context')} jwst_NNNN.pmap.")
    effective = context or image.context
    cache = check_cache(request.cache, effective)
    if effective is None:
        reporter.warn(f"the image's CRDS context cannot be read here ({runtime}); {cache} is "
                      "checked by each task instead (the entrypoint's cache check).")
    return Plan(folder=folder, image=request.image, image_ref=image.ref, image_id=image.id,
                runtime=runtime, pipeline=pipeline, cache=cache, context=context, tasks=tasks,
                strun_args=strun_args, slurm=options, archive=image.archive,
                parameters=parameters, preview=request.preview,
                cores=_cores(pipeline, parameters, strun_args, options.cpus, image.jwst))


def _cores(pipeline: str, parameters, strun_args, cpus: int, jwst: str | None) -> dict:
    """The task's thread settings and the steps that get maximum_cores (batch/cores.py)."""
    name = pipeline
    if Path(pipeline) in parameters:  # a parameter file as the pipeline
        if batchcores.parameter_file_sets_cores(parameters[0]):
            return batchcores.record(cpus, {}, ["maximum_cores as the parameter file sets it"])
        name = batchcores.parameter_file_class(parameters[0]) or pipeline
    steps, notes = batchcores.maximum_cores(name, jwst, tuple(strun_args))
    return batchcores.record(cpus, steps, notes)


def dry_run_text(plan: Plan, local: bool, indices: list[int] | None = None) -> str:
    indices = indices or [task.index for task in plan.tasks]
    how = scheduler(local).plan_text(plan, indices)
    cores = f"# {batchcores.summary(plan.cores)}\n" if plan.cores else ""
    return f"{how}{cores}# ---- {TASK_SCRIPT}\n{task_script(plan)}"


SUBFOLDERS = ("logs", "logs/slurm", "state", "products")


def write_folder(plan: Plan) -> list[Path]:
    """The scripts, inputs.txt and the empty logs/state/products folders; batch.json last, so
    a folder with batch.json is always complete. Return what this call created, outermost
    first (the batch folder itself only when it was not there).

    When a write fails (a full disk, no inodes left) or is interrupted, what it created is
    removed before the error goes on, and nothing else: a folder or file that was there
    before stays. The user's folder is as it was, so the same submit can simply run again.
    """
    created = make_folders((plan.folder, *(plan.folder / sub for sub in SUBFOLDERS)))
    try:
        for name, text, mode in ((INPUTS_FILE, inputs_text(plan), None),
                                 (TASK_SCRIPT, task_script(plan), 0o755),
                                 (ARRAY_SCRIPT, array_script(plan), 0o755),
                                 (PLAN_FILE, to_json(plan), None)):
            path = plan.folder / name
            existed = path.exists() or path.is_symlink()
            write_text(path, text, mode=mode)  # on failure it leaves no file of its own
            if not existed:
                created.append(path)
    except BaseException:
        _undo(created)
        raise
    return created


def _undo(created: list[Path]) -> None:
    """Remove what write_folder created, newest first: files, then the folders (only when
    empty: anything another process put there meanwhile stays, and so does its folder)."""
    for path in reversed(created):
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
        except OSError:
            pass


def remove_folder(plan: Plan, created: list[Path]) -> None:
    """Undo write_folder after a refused submission (``created`` is what it returned): the
    user's folder is as it was. Its subfolders may hold what the launch wrote meanwhile (a
    local task's log and record), so those go whole; a folder or file that was there before
    the submit stays."""
    for path in reversed(created):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass


def submit(request: BatchRequest, reporter: Reporter, *, local: bool = False,
           workers: int | str = 2, dry_run: bool = False) -> Outcome:
    runner = scheduler(local, _workers(workers))
    if not dry_run:
        runner.require()
    plan = plan_batch(request, reporter)
    if not local and plan.slurm.mem is None:
        hint = mem_hint(plan)
        if hint:
            reporter.say(hint)
    if dry_run:
        reporter.say(dry_run_text(plan, local).rstrip("\n"))
        return Outcome.PLANNED
    created = write_folder(plan)  # on failure it removes what it made
    try:
        return runner.launch(plan, [task.index for task in plan.tasks], reporter)
    except UserError:
        if not load_plan(plan.folder).submissions:  # nothing went to SLURM: leave no trace
            remove_folder(plan, created)
        raise
    except OSError:
        # A local run records its submission before it starts a task, so without that record
        # (a full disk refused it) nothing ran. A SLURM submission is recorded after sbatch
        # answers: an OSError then may follow jobs SLURM has, whose tasks need the folder.
        if local and not load_plan(plan.folder).submissions:
            remove_folder(plan, created)
        raise


def mem_hint(plan: Plan) -> str | None:
    """The --mem suggestion (batch/memory.py) for a SLURM batch submitted without one."""
    from niriss_pipe.batch.memory import suggestion

    pipeline = plan.pipeline
    if Path(pipeline) in plan.parameters:
        pipeline = batchcores.parameter_file_class(Path(pipeline)) or pipeline
    return suggestion(pipeline, [task.input for task in plan.tasks], int(plan.slurm.cpus))


def _workers(workers: int | str) -> int:
    return count("-j/--jobs", workers, "it is how many tasks --local runs at once, e.g. -j 4.")


def _statuses(folder: Path, reporter: Reporter) -> tuple[Plan, list[batchstate.TaskStatus]]:
    plan = load_plan(folder)
    if any(s["mode"] == "slurm" for s in plan.submissions) and not slurm.available():
        reporter.warn("SLURM's squeue is not on PATH here: tasks that have not recorded an end "
                      "show as lost or pending from their records alone; ask on the login "
                      "node for their real state.")
    return plan, batchstate.task_statuses(plan)


def status(folder: Path, reporter: Reporter) -> Outcome:
    plan, statuses = _statuses(folder, reporter)
    return report(plan, reporter, statuses=statuses)


def status_document(folder: Path, reporter: Reporter) -> tuple[dict, Outcome]:
    """What ``status --json`` prints, and the outcome."""
    plan, statuses = _statuses(folder, reporter)
    return ({"folder": str(plan.folder), "summary": batchstate.counts(statuses),
             "tasks": [s.as_dict() for s in statuses]}, outcome(statuses))


def submission_document(folder: Path, result: Outcome) -> dict:
    """What ``submit --json`` prints: the batch and its latest submission (job ids)."""
    plan = load_plan(folder)
    latest = plan.submissions[-1] if plan.submissions else {}
    jobs = list(batchstate.submission_jobs(latest)) or ([latest["job"]] if latest else [])
    document = {"folder": str(plan.folder), "mode": latest.get("mode"), "jobs": jobs,
                "arrays": latest.get("array"), "tasks": len(plan.tasks),
                "pipeline": plan.pipeline, "image": plan.image, "image_id": plan.image_id,
                "runtime": plan.runtime, "outcome": result.name.lower()}
    if latest.get("mode") == "local":
        statuses = batchstate.task_statuses(plan)
        document["summary"] = batchstate.counts(statuses)
        document["tasks"] = [s.as_dict() for s in statuses]
    return document


def report_page(folder: Path, reporter: Reporter, output: Path | None = None) -> Outcome:
    """Write the batch's HTML report (default: DIR/report.html), whatever its tasks' states
    (``status`` says how they ended)."""
    from niriss_pipe.batch.report import write_report

    plan, statuses = _statuses(folder, reporter)
    path = write_report(plan, statuses, output)
    reporter.say(f"wrote {short_path(path)}: {batchstate.summary(statuses)}")
    return Outcome.REPORTED


def wait(folder: Path, reporter: Reporter, timeout: float | str | None = None,
         poll: float = 3.0) -> Outcome:
    """Report until every task has ended; after ``timeout`` seconds (None: never; 0: after
    one look) give up with GOING, the jobs still running."""
    timeout = check_timeout(timeout)
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
        waited = time.monotonic() - started
        if timeout is not None and waited >= timeout:
            reporter.say(f"still not finished after {timeout:g} s: {line}")
            return Outcome.GOING
        # the last look comes at the timeout, not up to a poll after it
        time.sleep(poll if timeout is None else min(poll, timeout - waited))


def retry(folder: Path, reporter: Reporter, *, local: bool = False, workers: int | str = 2,
          dry_run: bool = False) -> Outcome:
    runner = scheduler(local, _workers(workers))
    plan = load_plan(folder)
    statuses = batchstate.task_statuses(plan)
    going = [s for s in statuses if s.in_flight]
    todo = [s.index for s in statuses if s.needs_submission]
    if not todo:
        reporter.say(f"nothing to retry: {batchstate.summary(statuses)}")
        return outcome(statuses)
    if going:
        reporter.warn(f"{len(going)} tasks are still pending or running; only the "
                      f"{len(todo)} that ended without completing are resubmitted.")
    names = ", ".join(plan.task(i).name for i in todo[:5]) + (" ..." if len(todo) > 5 else "")
    if dry_run:
        reporter.say(f"would retry {len(todo)} tasks: {names}")
        reporter.say(dry_run_text(plan, local, todo).splitlines()[0])
        return Outcome.PLANNED
    runner.require()
    reporter.say(f"retrying {len(todo)} tasks: {names}")
    return runner.launch(plan, todo, reporter)


def cancel(folder: Path, reporter: Reporter) -> Outcome:
    """Every in-flight submission stopped by the scheduler that made it."""
    plan = load_plan(folder)
    statuses = batchstate.task_statuses(plan)
    active = {batchstate.latest_submission(plan, s.index)["job"] for s in statuses
              if s.in_flight}
    going = [s for s in plan.submissions if s["job"] in active]
    if not going:
        reporter.say(f"nothing to cancel: {batchstate.summary(statuses)}")
        return Outcome.CANCELLED
    for runner in all_schedulers():
        plan = runner.stop(plan, [s for s in going if s["mode"] == runner.mode], reporter)
    return Outcome.CANCELLED
