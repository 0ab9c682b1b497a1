"""SLURM through its commands (sbatch, squeue, scancel): submit an array, read the queue, cancel;
and the SLURM scheduler of a batch (one job array per MaxArraySize block).

No accounting database is assumed (many clusters and test setups have none): a task's outcome
comes from the batch folder's own state files; the queue says only what is pending or running.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from niriss_pipe.batch.outcome import Outcome
from niriss_pipe.batch.plan import ARRAY_SCRIPT, Plan, save_plan
from niriss_pipe.batch.scripts import array_script, array_spec
from niriss_pipe.core.errors import UserError, opt, prog
from niriss_pipe.core.progress import Reporter, short_path

# squeue states of a task that has not finished.
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED", "REQUEUE_HOLD", "REQUEUE_FED",
          "RESV_DEL_HOLD"}


def available() -> bool:
    return shutil.which("sbatch") is not None and shutil.which("squeue") is not None


def require() -> None:
    if not available():
        raise UserError("SLURM's sbatch and squeue are not on PATH here.",
                        "run this on a SLURM login node (module load slurm, if your site uses "
                        f"modules), or run the batch on this machine with {opt('local')}.")


def max_array_size() -> int:
    """The cluster's MaxArraySize: array indices must stay below it (SLURM's default 1001)."""
    if not shutil.which("scontrol"):
        return 1001
    proc = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "MaxArraySize" and value.strip().isdigit():
            return int(value.strip())
    return 1001


def blocks(indices: list[int], max_array_size: int) -> list[tuple[int, list[int]]]:
    """Task indices as ``(offset, indices)`` blocks whose array indices (index - offset) run
    from 1 to below ``max_array_size``: one job array per block."""
    size = max(1, max_array_size - 1)
    grouped: dict[int, list[int]] = {}
    for index in sorted(set(indices)):
        grouped.setdefault((index - 1) // size * size, []).append(index)
    return sorted(grouped.items())


def submit(script: Path, array: str, cwd: Path, offset: int = 0) -> str:
    """``sbatch --array=ARRAY SCRIPT`` (tasks = array index + offset); return the job id."""
    require()
    args = ["sbatch", "--parsable", f"--array={array}"]
    if offset:
        args.append(f"--export=ALL,NIRISS_PIPE_INDEX_OFFSET={offset}")
    proc = subprocess.run([*args, str(script)], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip()
        raise UserError(f"sbatch refused the job array: {message}",
                        f"fix the SLURM option it names ({opt('partition')}, {opt('account')}, "
                        f"{opt('qos')}, {opt('time')}, "
                        f"{opt('mem')}, {opt('cpus')}, {opt('sbatch')}), or ask your site which "
                        "limits apply.")
    return proc.stdout.strip().split(";")[0]


def queue(job_ids: set[str]) -> dict[tuple[str, int], str]:
    """``{(job id, array index): state}`` of the given array jobs' tasks that SLURM still
    knows (pending, running, and finished ones within MinJobAge); empty without SLURM."""
    if not job_ids or not available():
        return {}
    base = ["squeue", "--noheader", "--array", "--states=all", "--format=%F|%K|%T"]
    proc = subprocess.run([*base, f"--jobs={','.join(sorted(job_ids))}"],
                          capture_output=True, text=True)
    if proc.returncode != 0 and "Invalid job id" in proc.stderr:
        # A job SLURM has forgotten (MinJobAge) makes --jobs fail: ask for everything.
        proc = subprocess.run(base, capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"squeue failed: {(proc.stderr or proc.stdout).strip()}",
                        "check that slurmctld answers (sinfo), then ask again.")
    found = {}
    for line in proc.stdout.splitlines():
        job, _, rest = line.strip().partition("|")
        index, _, state = rest.partition("|")
        if job in job_ids and index.isdigit():
            found[(job, int(index))] = state
    return found


def cancel(job_ids: list[str]) -> None:
    require()
    proc = subprocess.run(["scancel", *job_ids], capture_output=True, text=True)
    if proc.returncode != 0:
        raise UserError(f"scancel failed: {(proc.stderr or proc.stdout).strip()}",
                        "check the job ids with squeue; jobs that already ended need no "
                        "cancel.")


class SlurmScheduler:
    """Job arrays of array.sbatch: one per MaxArraySize block, with the block's index offset
    exported to its tasks."""

    mode = "slurm"

    def require(self) -> None:
        require()

    def arrays(self, plan: Plan, indices: list[int]) -> list[tuple[int, list[int], str]]:
        """``(offset, task indices, --array spec)`` per job array, its array indices being
        the task indices minus the offset."""
        return [(offset, block, array_spec([i - offset for i in block], plan.slurm.throttle))
                for offset, block in blocks(indices, max_array_size())]

    def plan_text(self, plan: Plan, indices: list[int]) -> str:
        how = ""
        for offset, _, array in self.arrays(plan, indices):
            export = f" --export=ALL,NIRISS_PIPE_INDEX_OFFSET={offset}" if offset else ""
            how += f"# would submit: sbatch --array={array}{export} {plan.folder}/{ARRAY_SCRIPT}\n"
        return how + f"# ---- {ARRAY_SCRIPT}\n{array_script(plan)}"

    def launch(self, plan: Plan, indices: list[int], reporter: Reporter) -> Outcome:
        at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        jobs: dict[str, int] = {}  # job id -> index offset
        arrays, submitted = [], []
        try:
            for offset, block, array in self.arrays(plan, indices):
                jobs[submit(plan.folder / ARRAY_SCRIPT, array, plan.folder, offset)] = offset
                arrays.append(array if not offset else f"{array} +{offset}")
                submitted += block
        except UserError as err:
            if not jobs:
                raise UserError(err.what, f"{err.fix} Nothing was submitted.") from None
            raise UserError(f"{err.what} Tasks {array_spec(submitted, None)} went to SLURM as "
                            f"job{'s' if len(jobs) > 1 else ''} {', '.join(jobs)}; the other "
                            f"{len(indices) - len(submitted)} did not.",
                            f"{err.fix} Then submit the rest with: {prog()} batch retry "
                            f"{short_path(plan.folder)}") from None
        finally:  # what was submitted is recorded even when a later block is refused; the
            if jobs:  # rest stays 'never submitted', which batch retry submits
                save_plan(plan.with_submission({"mode": self.mode, "job": next(iter(jobs)),
                                                "jobs": jobs, "indices": submitted, "at": at,
                                                "array": "; ".join(arrays)}))
        names = ", ".join(f"{job} (--array={array})" for job, array in zip(jobs, arrays))
        reporter.say(f"submitted SLURM job{'s' if len(jobs) > 1 else ''} {names}: "
                     f"{len(indices)} tasks, {plan.pipeline} in {plan.image} ({plan.runtime})")
        reporter.say(f"  follow it: {prog()} batch status {short_path(plan.folder)}   "
                     f"(or: batch wait)")
        return Outcome.SUBMITTED

    def stop(self, plan: Plan, submissions: list[dict], reporter: Reporter) -> Plan:
        jobs = [job for s in submissions if s["mode"] == self.mode
                for job in (s.get("jobs") or {s["job"]: 0})]
        if not jobs:
            return plan
        cancel(jobs)
        stopped = {s["job"] for s in submissions}
        plan = replace(plan, submissions=tuple({**s, "cancelled": True} if s["job"] in stopped
                                               and s["mode"] == self.mode else s
                                               for s in plan.submissions))
        save_plan(plan)
        reporter.say(f"cancelled SLURM job{'s' if len(jobs) > 1 else ''} {', '.join(jobs)}; "
                     "running tasks stop their containers and record 'killed'")
        return plan
