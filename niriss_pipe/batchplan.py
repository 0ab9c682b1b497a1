"""The batch plan: what a batch runs, checked in full before anything is written.

A batch is one pipeline (``strun`` alias or class) over many exposures, one task per exposure,
in one image under one container runtime, against a read-only CRDS cache. The plan is kept in
its folder as ``batch.json`` next to ``inputs.txt`` (line N = task N = SLURM array index N), so
``status``, ``retry`` and the task scripts themselves need nothing but the folder.
"""

from __future__ import annotations

import glob
import json
import os
import re
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .errors import UserError

RUNTIMES = ("docker", "podman", "charliecloud", "apptainer")
PLAN_FILE = "batch.json"
INPUTS_FILE = "inputs.txt"
TASK_SCRIPT = "task.sh"
ARRAY_SCRIPT = "array.sbatch"
PLAN_VERSION = 1
# Where a task sees its files, in every runtime. The targets exist in an exported Charliecloud
# image (ch-run binds only onto existing paths): /data is the image's WORKDIR, /mnt/0 one of
# ch-convert's mount points, /crds the image's CRDS_PATH.
INPUT_MOUNT, OUTPUT_MOUNT, CACHE_MOUNT = "/mnt/0", "/data", "/crds"
# Product suffixes that name the product folder of an input without them (x_uncal -> x).
INPUT_SUFFIXES = ("uncal", "rate", "rateints", "cal", "calints", "trapsfilled", "ramp")
PIPELINE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
TIME_RE = re.compile(r"^(\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+|\d+-\d+:\d{2}|\d+-\d+:\d{2}:\d{2})$")
MEM_RE = re.compile(r"^\d+[KMGT]?$")
CONTEXT_RE = re.compile(r"^jwst_\d{4}\.pmap$")
MANAGED_SBATCH = ("--array", "-a", "--output", "-o", "--error", "-e", "--open-mode",
                  "--parsable", "--wrap")


@dataclass(frozen=True)
class SlurmOptions:
    """The ``#SBATCH`` lines a user may set; everything else (array, logs) is the batch's."""

    partition: str | None = None
    time: str | None = None
    mem: str | None = None
    cpus: int = 1
    throttle: int | None = None
    extra: tuple[str, ...] = ()
    job_name: str = "niriss-pipe"


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

    def task(self, index: int) -> Task:
        return self.tasks[index - 1]

    def path(self, name: str) -> Path:
        return self.folder / name

    def with_submission(self, record: dict) -> Plan:
        return replace(self, submissions=(*self.submissions, record))


def product_dir_name(name: str) -> str:
    stem = name[:-len(".fits")] if name.endswith(".fits") else name
    head, _, tail = stem.rpartition("_")
    return head if head and tail in INPUT_SUFFIXES else stem


# -- inputs --------------------------------------------------------------------------------------
def expand_inputs(items: list[str], cwd: Path | None = None) -> list[Path]:
    """Files, globs and ``@LIST`` files (one path per line, ``#`` comments, relative to the list)
    as absolute paths in the order given, each once."""
    cwd = cwd or Path.cwd()
    found: list[Path] = []
    for item in items:
        if item.startswith("@"):
            found.extend(_from_list(Path(item[1:]) if Path(item[1:]).is_absolute()
                                    else cwd / item[1:]))
        elif glob.has_magic(item):
            pattern = item if os.path.isabs(item) else str(cwd / item)
            matches = sorted(Path(p) for p in glob.glob(pattern) if os.path.isfile(p))
            if not matches:
                raise UserError(f"the input pattern '{item}' matches no file.",
                                "check the pattern (quote it so the shell does not expand it), "
                                "or give the files or a list file (@LIST).")
            found.extend(matches)
        else:
            found.append(_input_file(Path(item) if os.path.isabs(item) else cwd / item, item))
    unique = list(dict.fromkeys(Path(os.path.abspath(p)) for p in found))
    if not unique:
        raise UserError("no inputs given.", "give exposures as files, globs or @LIST.")
    return unique


def _from_list(path: Path) -> list[Path]:
    if not path.is_file():
        raise UserError(f"the input list {path} does not exist.",
                        "give @LIST with a file that names one exposure per line.")
    paths = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            target = Path(line) if os.path.isabs(line) else path.parent / line
            paths.append(_input_file(target, f"{path}, line {number}"))
    if not paths:
        raise UserError(f"the input list {path} names no file.",
                        "put one exposure path per line in it.")
    return paths


def _input_file(path: Path, given: str) -> Path:
    if not path.is_file():
        raise UserError(f"the input {given} is not a file ({path}).",
                        "give existing exposure files; check the path and its spelling.")
    if not os.access(path, os.R_OK):
        raise UserError(f"the input {path} is not readable.", "fix its permissions.")
    if "\n" in str(path):
        raise UserError(f"the input path {path!r} holds a newline.", "rename the file.")
    return path


def make_tasks(inputs: list[Path]) -> tuple[Task, ...]:
    tasks = tuple(Task(i, path) for i, path in enumerate(inputs, 1))
    seen: dict[str, Task] = {}
    for task in tasks:
        other = seen.setdefault(task.product_dir, task)
        if other is not task:
            raise UserError(f"inputs {other.input} and {task.input} would write the same "
                            f"products (folder products/{task.product_dir}/).",
                            "give each exposure once, or run the two folders as two batches "
                            "(-o elsewhere).")
    return tasks


# -- options -------------------------------------------------------------------------------------
def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise UserError(f"unknown runtime '{runtime}'.",
                        f"give --runtime one of {', '.join(RUNTIMES)}.")
    return runtime


def check_pipeline(pipeline: str) -> str:
    if not PIPELINE_RE.match(pipeline):
        raise UserError(f"'{pipeline}' is not a pipeline or step name.",
                        "give a strun alias (calwebb_detector1, calwebb_image2, ...) or a class "
                        "(jwst.pipeline.Detector1Pipeline).")
    return pipeline


def check_context(context: str | None) -> str | None:
    if context is not None and not CONTEXT_RE.match(context):
        raise UserError(f"--context '{context}' is not a JWST context name.",
                        "give it as jwst_NNNN.pmap, or leave it out to use the image's.")
    return context


def check_cache(cache: Path, context: str | None) -> Path:
    cache = Path(os.path.abspath(cache))
    if not cache.is_dir():
        raise UserError(f"the CRDS cache {cache} does not exist.",
                        "give --cache the shared cache folder (fill one with python build.py "
                        "sync SPEC).")
    if context and not (cache / "mappings" / "jwst" / context).is_file():
        raise UserError(f"the CRDS cache {cache} does not hold the context {context}.",
                        f"sync it first: python build.py sync --context {context} --cache "
                        f"{cache}; tasks run offline and cannot fetch it.")
    return cache


def check_slurm(options: SlurmOptions) -> SlurmOptions:
    if options.time is not None and not TIME_RE.match(options.time):
        raise UserError(f"--time '{options.time}' is not a SLURM time.",
                        "give minutes, MM:SS, HH:MM:SS or D-HH:MM:SS, e.g. --time 00:30:00.")
    if options.mem is not None and not MEM_RE.match(options.mem):
        raise UserError(f"--mem '{options.mem}' is not a SLURM memory size.",
                        "give a number with an optional K, M, G or T suffix, e.g. --mem 8G.")
    if options.cpus < 1:
        raise UserError(f"--cpus {options.cpus} must be at least 1.", "e.g. --cpus 2.")
    if options.throttle is not None and options.throttle < 1:
        raise UserError(f"--throttle {options.throttle} must be at least 1.",
                        "it is the most tasks that run at once (the %N of --array).")
    for line in options.extra:
        option = line.split("=", 1)[0].split()[0] if line.strip() else ""
        if not line.startswith("-") or "\n" in line:
            raise UserError(f"--sbatch '{line}' is not one sbatch option.",
                            "give each option separately, e.g. --sbatch=--account=jwst "
                            "--sbatch=--qos=normal.")
        if option in MANAGED_SBATCH:
            raise UserError(f"--sbatch '{line}' sets {option}, which the batch manages.",
                            "leave it out: the array comes from the inputs and --throttle, "
                            "and logs go to the batch folder's logs/.")
    if not re.match(r"^[A-Za-z0-9_.+-]+$", options.job_name):
        raise UserError(f"the job name '{options.job_name}' has characters SLURM does not "
                        "keep.", "use letters, digits, '_', '.', '+' and '-'.")
    return options


def check_folder(folder: Path) -> Path:
    folder = Path(os.path.abspath(folder))
    if (folder / PLAN_FILE).exists():
        raise UserError(f"{folder} already holds a batch.",
                        f"see it with python build.py batch status {folder}, rerun its failed "
                        "tasks with batch retry, or give -o a new folder.")
    if folder.exists() and not folder.is_dir():
        raise UserError(f"the output folder {folder} is a file.", "give -o a folder.")
    if folder.is_dir() and any(folder.iterdir()):
        raise UserError(f"the output folder {folder} is not empty.",
                        "give -o a new or empty folder: a batch owns its folder.")
    if not folder.parent.is_dir():
        raise UserError(f"the parent of the output folder ({folder.parent}) does not exist.",
                        "create it first, or give -o a path in an existing folder.")
    if re.search(r"[\s%]", str(folder)):
        raise UserError(f"the output folder {folder} has a space or '%' in its path, which "
                        "#SBATCH --output cannot carry.", "give -o a path without them.")
    return folder


# -- batch.json --------------------------------------------------------------------------------
def to_json(plan: Plan) -> str:
    data = asdict(plan)
    data["version"] = PLAN_VERSION
    data["folder"] = str(plan.folder)
    data["cache"] = str(plan.cache)
    data["archive"] = str(plan.archive) if plan.archive else None
    data["tasks"] = len(plan.tasks)
    return json.dumps(data, indent=2, default=str) + "\n"


def inputs_text(plan: Plan) -> str:
    return "".join(f"{task.input}\n" for task in plan.tasks)


def load_plan(folder: Path) -> Plan:
    """The plan of an existing batch folder, or a UserError naming what is missing."""
    folder = Path(os.path.abspath(folder))
    path = folder / PLAN_FILE
    if not path.is_file():
        raise UserError(f"{folder} is not a batch folder (no {PLAN_FILE}).",
                        "give the -o folder of a 'build.py batch submit'.")
    try:
        data = json.loads(path.read_text())
        lines = (folder / INPUTS_FILE).read_text().splitlines()
        if data.get("version") != PLAN_VERSION or data["tasks"] != len(lines):
            raise ValueError(f"version {data.get('version')}, {data['tasks']} tasks for "
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
                    submissions=tuple(data["submissions"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path} cannot be read ({exc}).",
                        "the batch folder was changed by hand or by another niriss-pipe "
                        "version; submit the batch again into a new folder.") from None


def save_plan(plan: Plan) -> None:
    """Rewrite batch.json atomically (a reader never sees half of it)."""
    path = plan.path(PLAN_FILE)
    temp = path.with_name(f".{PLAN_FILE}.{os.getpid()}")
    temp.write_text(to_json(plan))
    os.replace(temp, path)
