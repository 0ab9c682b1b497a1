"""Per-task state of a batch, from the task's own record (state/INDEX) and the SLURM queue.

A task writes ``running`` when it starts and ``done`` with its exit code (or ``killed`` from its
signal trap) when it ends; the record names the job that ran it, so a record left by an earlier
attempt is told apart from the current one. What the record cannot say (not started yet, or
died without its trap running) comes from the queue.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import socket
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.batch.plan import Plan, kind
from niriss_pipe.batch.schedulers import slurm
from niriss_pipe.core.errors import UserError, prog
from niriss_pipe.core.progress import short_path

# States, in the order a summary lists them.
STATES = ("completed", "failed", "killed", "lost", "running", "pending")
FINISHED_BAD = ("failed", "killed", "lost")


@dataclass(frozen=True)
class TaskStatus:
    index: int
    name: str
    state: str
    exit: int | None
    seconds: float | None
    job: str
    host: str
    log: Path
    reason: str = ""

    @property
    def submitted(self) -> bool:
        """Some submission includes this task (every state but a never-submitted pending)."""
        return bool(self.job)

    @property
    def in_flight(self) -> bool:
        """Submitted and not ended: SLURM or a local run still has it."""
        return self.submitted and self.state in ("running", "pending")

    @property
    def needs_submission(self) -> bool:
        """What retry submits: ended without completing, or never submitted."""
        return self.state in FINISHED_BAD or not self.submitted

    def as_dict(self) -> dict:
        return {"index": self.index, "input": self.name, "state": self.state, "exit": self.exit,
                "seconds": self.seconds, "job": self.job, "host": self.host,
                "log": str(self.log), "reason": self.reason}


RECORD_STATES = ("running", "done", "killed")


def read_record(folder: Path, index: int) -> dict | None:
    """Task ``index``'s record (state/INDEX, as task.sh writes it), None when it has none
    yet; a UserError naming the file and the fix when it cannot be read or is not a record."""
    path = folder / "state" / str(index)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except OSError as exc:
        what = f"cannot be read: {(exc.strerror or type(exc).__name__).lower()}"
    except (ValueError, RecursionError):  # not JSON (UnicodeDecodeError is a ValueError)
        what = "is damaged: it is not JSON"
    else:
        problem = record_problem(record)
        if not problem:
            return record
        what = f"is damaged: {problem}"
    remove = f"rm {'-r ' if path.is_dir() else ''}{shlex.quote(str(path))}"
    raise UserError(
        f"the record of task {index}, {path}, {what}.",
        "task.sh writes it whole, so it was changed by hand or by something else; remove it "
        f"({remove}): the task then counts as not started (lost once its job has ended), and "
        f"{prog()} batch retry {shlex.quote(short_path(folder))} runs it again.")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def record_problem(record) -> str:
    """What makes ``record`` not a task record, or '' (every field status and report read,
    of the type task.sh's write_state gives it)."""
    if not isinstance(record, dict):
        return f"it holds {kind(record)}, not a record"
    if record.get("state") not in RECORD_STATES:
        return f"its state is not one of {', '.join(RECORD_STATES)}"
    for name in ("job", "host"):
        if not isinstance(record.get(name), str):
            return f"its {name} is {'missing' if name not in record else kind(record[name])}"
    if not _number(record.get("started")):
        return "its start time is missing or not a number"
    if record.get("ended") is not None and not _number(record["ended"]):
        return "its end time is not a number"
    code = record.get("exit")
    if not (code is None or isinstance(code, int) and not isinstance(code, bool)) or \
            record["state"] == "done" and code is None:
        return "its exit code is missing or not a whole number"
    return ""


def latest_submission(plan: Plan, index: int) -> dict | None:
    for record in reversed(plan.submissions):
        if index in record["indices"]:
            return record
    return None


def submission_jobs(submission: dict) -> dict[str, int]:
    """``{SLURM job id: index offset}`` of a submission (one job per MaxArraySize block)."""
    if submission.get("mode") != "slurm":
        return {}
    return {str(job): int(offset) for job, offset in
            (submission.get("jobs") or {submission["job"]: 0}).items()}


def _job_of(record: dict) -> str:
    """``12_3`` -> ``12`` (SLURM); ``local-...`` stays."""
    job = str(record.get("job", ""))
    return job.split("_")[0] if not job.startswith("local") else job


def local_runner_alive(submission: dict) -> bool:
    """Is the ``--local`` run of this submission still going (its process, on this host)?"""
    if submission.get("mode") != "local" or submission.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(submission.get("pid", 0)), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return int(submission.get("pid", 0)) > 0


def task_statuses(plan: Plan, queue: dict[tuple[str, int], str] | None = None
                  ) -> list[TaskStatus]:
    """Every task's state. ``queue`` is slurm.queue() of the batch's jobs (asked when None)."""
    if queue is None:
        queue = slurm.queue({job for s in plan.submissions for job in submission_jobs(s)})
    result = []
    for task in plan.tasks:
        submission = latest_submission(plan, task.index)
        record = read_record(plan.folder, task.index)
        log = plan.folder / "logs" / f"{task.index}.log"
        if submission is None:
            result.append(TaskStatus(task.index, task.name, "pending", None, None, "", "", log,
                                     "never submitted"))
            continue
        job = submission["job"]
        jobs = submission_jobs(submission) or {job: 0}
        current = record is not None and _job_of(record) in jobs
        in_queue = next((queue[(j, task.index - offset)] for j, offset in jobs.items()
                         if (j, task.index - offset) in queue), "")
        state, reason = _state(submission, record if current else None, in_queue,
                               local_runner_alive(submission))
        seconds = None
        if current and record.get("ended") is not None:
            seconds = round(record["ended"] - record["started"], 1)
        result.append(TaskStatus(
            task.index, task.name, state,
            record.get("exit") if current else None, seconds,
            record.get("job", job) if current else job,
            record.get("host", "") if current else "", log, reason))
    return result


def _state(submission: dict, record: dict | None, in_queue: str,
           runner_alive: bool) -> tuple[str, str]:
    if record is None:  # this attempt has not written anything yet
        if in_queue in slurm.ACTIVE or runner_alive:
            return ("running" if in_queue == "RUNNING" else "pending"), ""
        if submission.get("cancelled") or in_queue == "CANCELLED":
            return "killed", "cancelled before it started"
        if in_queue:
            return "lost", f"SLURM says {in_queue} but the task never started"
        if submission["mode"] == "local":
            return "lost", "never started (its local run ended first)"
        return "lost", "never started (job no longer in the queue)"
    if record["state"] == "done":
        return ("completed", "") if record["exit"] == 0 else ("failed", f"exit {record['exit']}")
    if record["state"] == "killed":
        return "killed", "signalled (scancel, time limit or Ctrl-C)"
    # 'running': believe it while SLURM (or this process) has the task
    if in_queue in slurm.ACTIVE or runner_alive:
        return "running", ""
    if in_queue in ("CANCELLED", "TIMEOUT", "DEADLINE", "PREEMPTED"):
        return "killed", f"{in_queue.lower()} before its trap could record it"
    why = f"SLURM says {in_queue}" if in_queue else "its job is gone"
    return "lost", f"died without recording an end ({why}: killed hard, out of memory, node lost?)"


def counts(statuses: list[TaskStatus]) -> Counter:
    return Counter(status.state for status in statuses)


def summary(statuses: list[TaskStatus]) -> str:
    """``8 tasks: 7 completed, 1 failed``."""
    tally = counts(statuses)
    parts = [f"{tally[state]} {state}" for state in STATES if tally[state]]
    return f"{len(statuses)} tasks: " + ", ".join(parts)


def is_finished(statuses: list[TaskStatus]) -> bool:
    return not any(status.state in ("running", "pending") for status in statuses)
