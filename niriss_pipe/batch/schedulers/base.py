"""One scheduler interface, as submitit has one executor interface: SLURM job arrays and
local workers run the same ``task.sh``, so ``submit``, ``retry`` and ``cancel`` need not know
which one they drive."""

from __future__ import annotations

from typing import Protocol

from niriss_pipe.batch.outcome import Outcome
from niriss_pipe.batch.plan import Plan
from niriss_pipe.batch.schedulers.local import LocalScheduler
from niriss_pipe.batch.schedulers.slurm import SlurmScheduler
from niriss_pipe.core.progress import Reporter


class Scheduler(Protocol):
    mode: str  # how its submissions are recorded in batch.json: "slurm" or "local"

    def require(self) -> None:
        """Raise a UserError when it cannot run here (no sbatch on PATH, say)."""

    def plan_text(self, plan: Plan, indices: list[int]) -> str:
        """What it would run or submit for ``indices``: the dry run's first lines."""

    def launch(self, plan: Plan, indices: list[int], reporter: Reporter) -> Outcome:
        """Run or submit ``indices``, recording the submission in batch.json."""

    def stop(self, plan: Plan, submissions: list[dict], reporter: Reporter) -> Plan:
        """Stop these in-flight submissions of its mode; return the plan as it now is."""


def scheduler(local: bool, workers: int = 2) -> Scheduler:
    return LocalScheduler(workers) if local else SlurmScheduler()


def all_schedulers() -> list[Scheduler]:
    return [scheduler(False), scheduler(True)]
