"""SLURM through its commands (sbatch, squeue, scancel): submit an array, read the queue, cancel.

No accounting database is assumed (many clusters and test setups have none): a task's outcome
comes from the batch folder's own state files; the queue says only what is pending or running.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from niriss_pipe.core.errors import UserError

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
                        "fix the SLURM option it names (--partition, --account, --qos, --time, "
                        "--mem, --cpus, --sbatch), or ask your site which limits apply.")
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
