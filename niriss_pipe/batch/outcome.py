"""How a batch command ended, as a value: only the CLI turns it into an exit code."""

import enum


class Outcome(enum.Enum):
    """How a batch command ended: the CLI turns it into its exit code."""

    COMPLETED = "completed"      # every task completed
    FAILED = "failed"            # some task failed, was killed or lost
    GOING = "going"              # tasks still pending or running, none ended badly yet
    SUBMITTED = "submitted"      # handed to SLURM
    PLANNED = "planned"          # a dry run: nothing written or run
    CANCELLED = "cancelled"      # cancel asked (or nothing was left to cancel)
    INTERRUPTED = "interrupted"  # Ctrl-C stopped a local run
    REPORTED = "reported"        # the report page was written (whatever the tasks' states)
