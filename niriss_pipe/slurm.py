"""SLURM through its commands (sbatch, squeue, scancel): submit an array, read the queue, cancel.

No accounting database is assumed (many clusters and test setups have none): a task's outcome
comes from the batch folder's own state files; the queue says only what is pending or running.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .errors import UserError

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
                        "modules), or run the batch on this machine with --local.")


def submit(script: Path, array: str, cwd: Path) -> str:
    """``sbatch --array=ARRAY SCRIPT``; return the job id."""
    require()
    proc = subprocess.run(["sbatch", "--parsable", f"--array={array}", str(script)],
                          cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip()
        raise UserError(f"sbatch refused the job array: {message}",
                        "fix the SLURM option it names (--partition, --time, --mem, --cpus, "
                        "--sbatch), or ask your site which limits apply; nothing was submitted.")
    return proc.stdout.strip().split(";")[0]


def queue(job_ids: set[str]) -> dict[tuple[str, int], str]:
    """``{(job id, array index): state}`` of the given array jobs' tasks that SLURM still
    knows (pending, running, and finished ones within MinJobAge); empty without SLURM."""
    if not job_ids or not available():
        return {}
    proc = subprocess.run(["squeue", "--noheader", "--array", "--states=all",
                           "--format=%F|%K|%T"], capture_output=True, text=True)
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
