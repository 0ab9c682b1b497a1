"""The batch plan: what a batch runs, checked in full before anything is written.

A batch is one pipeline (``strun`` alias or class) over many exposures, one task per exposure,
in one image under one container runtime, against a read-only CRDS cache. The plan is kept in
its folder as ``batch.json`` next to ``inputs.txt`` (line N = task N = SLURM array index N), so
``status``, ``retry`` and the task scripts themselves need nothing but the folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from niriss_pipe.core.atomic import write_text
from niriss_pipe.core.errors import UserError
from niriss_pipe.runtime.contract import PARAMETER_MOUNTS

RUNTIMES = ("docker", "podman", "charliecloud", "apptainer")
RUNTIME_ALIASES = {"singularity": "apptainer"}  # the same tool under its older name
PLAN_FILE = "batch.json"
INPUTS_FILE = "inputs.txt"
TASK_SCRIPT = "task.sh"
ARRAY_SCRIPT = "array.sbatch"
PLAN_VERSION = 1
# Product suffixes that name the product folder of an input without them (x_uncal -> x).
INPUT_SUFFIXES = ("uncal", "rate", "rateints", "cal", "calints", "trapsfilled", "ramp")
PIPELINE_MAX = 200      # a strun alias or a dotted class path
STRUN_ARG_MAX = 4096    # one strun argument (PATH_MAX: a path in an override fits)


@dataclass(frozen=True)
class SlurmOptions:
    """The ``#SBATCH`` lines a user may set; everything else (array, logs) is the batch's."""

    partition: str | None = None
    time: str | None = None
    mem: str | None = None
    cpus: int | str = 1                 # text from the CLI; check_slurm makes it an int
    throttle: int | str | None = None
    extra: tuple[str, ...] = ()
    job_name: str = "niriss-pipe"
    account: str | None = None
    qos: str | None = None


@dataclass(frozen=True)
class Task:
    index: int  # 1-based: the SLURM array index and the line of inputs.txt
    input: Path

    @property
    def name(self) -> str:
        return self.input.name

    @property
    def product_dir(self) -> str:
        """The task's output folder name: ``jw01_nis_uncal.fits`` -> ``jw01_nis``."""
        return product_dir_name(self.input.name)


@dataclass(frozen=True)
class Plan:
    folder: Path              # absolute
    image: str                # as the user gave it
    image_ref: str            # what the runtime runs: an engine image id or an absolute path
    image_id: str             # the Docker image id where known, else ''
    runtime: str
    pipeline: str
    cache: Path               # absolute
    context: str | None       # CRDS_CONTEXT override; None keeps the image's
    tasks: tuple[Task, ...]
    strun_args: tuple[str, ...] = ()
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    archive: Path | None = None   # podman: load the image from here on a node that lacks it
    submissions: tuple[dict, ...] = ()
    parameters: tuple[Path, ...] = ()  # strun parameter files (absolute), mounted read-only
    preview: bool = True          # each task writes PNG previews of its products
    cores: dict = field(default_factory=dict)  # batch/cores.py record(): threads, maximum_cores

    def task(self, index: int) -> Task:
        return self.tasks[index - 1]

    def path(self, name: str) -> Path:
        return self.folder / name

    def with_submission(self, record: dict) -> Plan:
        return replace(self, submissions=(*self.submissions, record))


def parameter_mounts(plan: Plan) -> list[tuple[str, str]]:
    """``(host folder, mount point)`` of the parameter files' folders, in order: /mnt/1, ..."""
    folders = list(dict.fromkeys(str(path.parent) for path in plan.parameters))
    return [(folder, mount) for folder, mount in zip(folders, PARAMETER_MOUNTS)]


def in_container(plan: Plan, value: str) -> str:
    """A pipeline or strun argument as strun sees it: a parameter file's host path (alone or
    as ``--name=PATH``) becomes its path under its mount point."""
    mounts = dict(parameter_mounts(plan))
    head, equals, path = value.partition("=") if value.startswith("-") else ("", "", value)
    if Path(path) in plan.parameters and str(Path(path).parent) in mounts:
        return f"{head}{equals}{mounts[str(Path(path).parent)]}/{Path(path).name}"
    return value


def product_dir_name(name: str) -> str:
    stem = name[:-len(".fits")] if name.endswith(".fits") else name
    head, _, tail = stem.rpartition("_")
    return head if head and tail in INPUT_SUFFIXES else stem


# -- batch.json --------------------------------------------------------------------------------
def to_json(plan: Plan) -> str:
    data = asdict(plan)
    data["version"] = PLAN_VERSION
    data["folder"] = str(plan.folder)
    data["cache"] = str(plan.cache)
    data["archive"] = str(plan.archive) if plan.archive else None
    data["parameters"] = [str(path) for path in plan.parameters]
    data["tasks"] = len(plan.tasks)
    return json.dumps(data, indent=2, default=str) + "\n"


def inputs_text(plan: Plan) -> str:
    return "".join(f"{task.input}\n" for task in plan.tasks)


def load_plan(folder: Path) -> Plan:
    """The plan of an existing batch folder, or a UserError naming what is missing or what
    in batch.json is not as submit writes it (a hand edit, a damaged file)."""
    folder = Path(os.path.abspath(folder))
    path = folder / PLAN_FILE
    if not path.is_file():
        raise UserError(f"{folder} is not a batch folder (no {PLAN_FILE}).",
                        "give the -o folder of a 'build.py batch submit'.")
    try:
        data = json.loads(path.read_text())
        lines = (folder / INPUTS_FILE).read_text().splitlines()
        check_plan_data(data)
        if data["version"] != PLAN_VERSION or data["tasks"] != len(lines):
            raise ValueError(f"version {data['version']}, {data['tasks']} tasks for "
                             f"{len(lines)} inputs")
        return Plan(folder=folder, image=data["image"], image_ref=data["image_ref"],
                    image_id=data["image_id"], runtime=data["runtime"],
                    pipeline=data["pipeline"], cache=Path(data["cache"]),
                    context=data["context"],
                    tasks=tuple(Task(i, Path(line)) for i, line in enumerate(lines, 1)),
                    strun_args=tuple(data["strun_args"]),
                    slurm=SlurmOptions(**{**data["slurm"],
                                          "extra": tuple(data["slurm"]["extra"])}),
                    archive=Path(data["archive"]) if data["archive"] else None,
                    submissions=tuple(data["submissions"]),
                    parameters=tuple(Path(p) for p in data.get("parameters", ())),
                    preview=data.get("preview", True), cores=data.get("cores") or {})
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise UserError(f"{path} cannot be read ({exc}).",
                        "the batch folder was changed by hand or by another niriss-pipe "
                        "version; submit the batch again into a new folder.") from None


# -- the shape of batch.json -------------------------------------------------------------------
# What submit writes, field by field: (types, required). A value of another type or a missing
# field is refused by load_plan, so nothing that reads a plan meets it; so is a key of slurm
# that SlurmOptions does not have. Other unknown keys are left alone.
_STRING, _COUNT, _TEXTS = (str,), (int,), "a list of strings"
_PLAN_FIELDS = {
    "version": (_COUNT, True), "tasks": (_COUNT, True), "folder": (_STRING, False),
    "image": (_STRING, True), "image_ref": (_STRING, True), "image_id": (_STRING, True),
    "runtime": (_STRING, True), "pipeline": (_STRING, True), "cache": (_STRING, True),
    "context": ((str, type(None)), True), "strun_args": (_TEXTS, True),
    "slurm": ((dict,), True), "archive": ((str, type(None)), True),
    "submissions": ((list,), True), "parameters": (_TEXTS, False),
    "preview": ((bool,), False), "cores": ((dict,), False),
}
_SLURM_FIELDS = {
    "partition": ((str, type(None)), False), "time": ((str, type(None)), False),
    "mem": ((str, type(None)), False), "cpus": ((int, str), False),
    "throttle": ((int, str, type(None)), False), "extra": (_TEXTS, True),
    "job_name": (_STRING, False), "account": ((str, type(None)), False),
    "qos": ((str, type(None)), False),
}
_SUBMISSION_FIELDS = {
    "mode": (_STRING, True), "job": (_STRING, True), "indices": ((list,), True),
    "jobs": ((dict,), False), "at": (_STRING, False), "array": (_STRING, False),
    "host": (_STRING, False), "pid": (_COUNT, False), "cancelled": ((bool,), False),
}
_CORES_FIELDS = {  # batch/cores.py record()
    "cpus": (_COUNT, True), "from": (_STRING, True), "env": (_TEXTS, True),
    "maximum_cores": ((dict,), True), "notes": (_TEXTS, True),
}
SUBMISSION_MODES = ("slurm", "local")


def kind(value) -> str:
    """A JSON value's type in words, for a message about a damaged file."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "a number")


def _fields(data, fields: dict, where: str, *, strict: bool = True) -> None:
    """``data`` is an object holding ``fields`` ({name: (types, required)}), each of its
    types, and no other key (unless not ``strict``); a ValueError names the first that is not."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'it'} is {kind(data)}, not an object")
    prefix = f"{where}." if where else ""
    for name, (types, required) in fields.items():
        if name not in data:
            if required:
                raise ValueError(f"{prefix}{name} is missing")
            continue
        value = data[name]
        if types == _TEXTS:
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise ValueError(f"{prefix}{name} is {kind(value)}, not {_TEXTS}")
        elif isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise ValueError(f"{prefix}{name} is {kind(value)}")
    unknown = sorted(set(data) - set(fields)) if strict else []
    if unknown:
        raise ValueError(f"{prefix}{unknown[0]} is not a field niriss-pipe writes")


def check_plan_data(data) -> None:
    """Raise a ValueError naming the first part of a loaded batch.json that is not as submit
    writes it: every field load_plan, status, retry, cancel and report read, of its type."""
    _fields(data, _PLAN_FIELDS, "", strict=False)
    _fields(data["slurm"], _SLURM_FIELDS, "slurm")
    if data.get("cores"):
        _fields(data["cores"], _CORES_FIELDS, "cores", strict=False)
        if not all(isinstance(v, str) for v in data["cores"]["maximum_cores"].values()):
            raise ValueError("cores.maximum_cores is not {step: grammar}")
    if data["tasks"] < 1:
        raise ValueError(f"tasks is {data['tasks']}")
    for number, submission in enumerate(data["submissions"]):
        where = f"submissions[{number}]"
        _fields(submission, _SUBMISSION_FIELDS, where, strict=False)
        if submission["mode"] not in SUBMISSION_MODES:
            raise ValueError(f"{where}.mode is not one of {', '.join(SUBMISSION_MODES)}")
        if not submission["job"]:
            raise ValueError(f"{where}.job is empty")
        indices = submission["indices"]
        if not all(isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= data["tasks"]
                   for i in indices):
            raise ValueError(f"{where}.indices holds something not a task number "
                             f"(1 to {data['tasks']})")
        offsets = submission.get("jobs", {})
        if not all(job and isinstance(offset, int) and not isinstance(offset, bool)
                   and offset >= 0 for job, offset in offsets.items()):
            raise ValueError(f"{where}.jobs is not {{job id: index offset}}")


def save_plan(plan: Plan) -> None:
    """Rewrite batch.json atomically (a reader never sees half of it)."""
    write_text(plan.path(PLAN_FILE), to_json(plan))  # no temporary file left on failure
