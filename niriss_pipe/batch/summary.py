"""What ``status`` and ``wait`` tell of a batch: a table of tasks, a summary line, the error
line of each failure, and the outcome."""

from __future__ import annotations

import re
from pathlib import Path

from niriss_pipe.batch import state as batchstate
from niriss_pipe.batch.outcome import Outcome
from niriss_pipe.batch.plan import Plan
from niriss_pipe.core.errors import prog
from niriss_pipe.core.progress import Reporter, short_path


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


def outcome(statuses: list[batchstate.TaskStatus]) -> Outcome:
    states = {status.state for status in statuses}
    if states & set(batchstate.FINISHED_BAD):
        return Outcome.FAILED
    return Outcome.COMPLETED if states == {"completed"} else Outcome.GOING


def report(plan: Plan, reporter: Reporter, *, header: bool = True, table: bool | None = None,
           statuses: list[batchstate.TaskStatus] | None = None) -> Outcome:
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
        reporter.say(f"rerun only these with: {prog()} batch retry "
                     f"{short_path(plan.folder)}")
    return outcome(statuses)
