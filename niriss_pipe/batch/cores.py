"""The cores a batch task may use, and the settings that keep numpy, scipy and jwst inside
them: tasks sharing a node would otherwise each start as many BLAS/OpenMP threads (and jwst
processes) as the node has cores.

The count is decided when the task starts (SLURM's ``SLURM_CPUS_PER_TASK`` when set, else
``--cpus``), so the scripts carry shell words; what depends on the image (which steps take
``maximum_cores`` and in what grammar) is decided here, at submit, from its jwst version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from niriss_pipe.runtime.contract import CPUS_ENV, THREAD_ENV

INTEGER, FRACTIONS = "integer", "fractions"


@dataclass(frozen=True)
class CoreStep:
    """One step with ``maximum_cores``: the jwst releases checked to take it, and from which
    one it takes a number of cores (before that only none/quarter/half/all)."""

    step: str
    since: tuple[int, ...]
    integer_since: tuple[int, ...] | None
    pipelines: frozenset[str]


def _version(text: str) -> tuple[int, ...] | None:
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(part or 0) for part in found.groups()) if found else None


def core_steps() -> list[CoreStep]:
    """``data/maximum_cores.tsv``: which steps have the parameter, in which pipelines."""
    text = resources.files("niriss_pipe").joinpath("data/maximum_cores.tsv").read_text()
    steps = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            step, since, integer_since, pipelines = line.split("\t")
            steps.append(CoreStep(step, _version(since), _version(integer_since),
                                  frozenset(pipelines.split(","))))
    return steps


def maximum_cores(pipeline: str, jwst_version: str | None,
                  strun_args: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """``{step: integer|fractions}`` for the steps of ``pipeline`` that get ``maximum_cores``
    from the task's cores, and notes on those that do not (the user set it, the image's jwst
    is unknown here or older than any checked)."""
    chosen, notes = {}, []
    version = _version(jwst_version or "")
    for step in core_steps():
        if pipeline not in step.pipelines:
            continue
        if any(arg.startswith((f"--steps.{step.step}.maximum_cores=", f"--steps.{step.step}."
                               "maximum_cores")) for arg in strun_args):
            notes.append(f"{step.step}: maximum_cores as given (--strun-arg)")
        elif version is None:
            notes.append(f"{step.step}: jwst's default maximum_cores (the image's jwst version "
                         "cannot be read here; pass --strun-arg=--steps."
                         f"{step.step}.maximum_cores=N)")
        elif version < step.since:
            notes.append(f"{step.step}: jwst's default maximum_cores (jwst {jwst_version} is "
                         "older than any release checked)")
        else:
            integer = step.integer_since is not None and version >= step.integer_since
            chosen[step.step] = INTEGER if integer else FRACTIONS
    return chosen, notes


def parameter_file_sets_cores(path: Path) -> bool:
    """Does a strun parameter file (ASDF: a YAML text header) set maximum_cores itself?"""
    try:
        with open(path, "rb") as stream:
            return b"maximum_cores" in stream.read(1 << 20)
    except OSError:
        return False


def parameter_file_class(path: Path) -> str | None:
    """The pipeline class a strun parameter file names (``class: jwst.pipeline....``)."""
    try:
        with open(path, "rb") as stream:
            found = re.search(rb"^class: ([A-Za-z0-9_.]+)", stream.read(1 << 20), re.MULTILINE)
    except OSError:
        return None
    return found.group(1).decode() if found else None


def record(cpus: int, steps: dict[str, str], notes: list[str]) -> dict:
    """What batch.json keeps: the default count, where a task takes it from, what it sets."""
    return {"cpus": cpus, "from": "SLURM_CPUS_PER_TASK when set, else --cpus",
            "env": [CPUS_ENV, *THREAD_ENV], "maximum_cores": steps, "notes": notes}


def summary(cores: dict) -> str:
    """One line for --dry-run and the submit output."""
    steps = ", ".join(f"{step} ({grammar})" for step, grammar in cores["maximum_cores"].items())
    text = (f"cores: {cores['cpus']} per task ({cores['from']}) -> {', '.join(THREAD_ENV)}; "
            f"maximum_cores: {steps or 'none set'} (only with more than 1 core)")
    return "; ".join([text, *cores["notes"]])
