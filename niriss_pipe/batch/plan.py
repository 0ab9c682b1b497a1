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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from niriss_pipe.batch import sbatchopts
from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError, shown

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
                raise UserError(f"the input pattern {shown(item)} matches no file.",
                                "check the pattern (quote it so the shell does not expand it), "
                                "or give the files or a list file (@LIST).")
            found.extend(_input_file(match, str(match)) for match in matches)
        else:
            found.append(_input_file(Path(item) if os.path.isabs(item) else cwd / item, item))
    unique = list(dict.fromkeys(found))
    if not unique:
        raise UserError("no inputs given.", "give exposures as files, globs or @LIST.")
    return unique


def _from_list(path: Path) -> list[Path]:
    problem = grammar.text_problem(str(path))
    if problem:
        raise UserError(f"the input list {shown(path)} cannot be read: {problem}.",
                        "give @LIST with a file name without control characters.")
    if not path.is_file():
        raise UserError(f"the input list {path} does not exist.",
                        "give @LIST with a file that names one exposure per line.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"the input list {path} cannot be read ({exc}).",
                        "make it a readable UTF-8 text file, one exposure path per line."
                        ) from None
    paths = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            target = Path(line) if os.path.isabs(line) else path.parent / line
            paths.append(_input_file(target, f"{path}, line {number}"))
    if not paths:
        raise UserError(f"the input list {path} names no file.",
                        "put one exposure path per line in it.")
    return paths


def _input_file(path: Path, given: str) -> Path:
    """The input as an absolute path, checked for where it lands: a line of inputs.txt (no
    control characters, UTF-8) and, its folder, a bind-mount source (no ':' or ',')."""
    path = Path(os.path.abspath(path))
    problem = grammar.text_problem(str(path))
    if problem:
        raise UserError(f"the input {shown(path)} (given as {shown(given)}) cannot be a line of "
                        f"inputs.txt: {problem}.", "rename the file.")
    if not path.is_file():
        raise UserError(f"the input {shown(given)} is not a file ({path}).",
                        "give existing exposure files; check the path and its spelling.")
    if not os.access(path, os.R_OK):
        raise UserError(f"the input {path} is not readable.", "fix its permissions.")
    problem = grammar.mount_source_problem(str(path.parent))
    if problem:
        raise UserError(f"the folder of the input {path} is bind-mounted into its task, and "
                        f"{problem}.", "move or link the exposures into a folder whose path "
                        "has no ':' or ',' (ln -s works: the link's path is what is mounted).")
    return path


def make_tasks(inputs: list[Path]) -> tuple[Task, ...]:
    tasks = tuple(Task(i, path) for i, path in enumerate(inputs, 1))
    seen: dict[str, Task] = {}
    for task in tasks:
        _check_product_dir(task)
        other = seen.setdefault(task.product_dir, task)
        if other is not task:
            raise UserError(f"inputs {other.input} and {task.input} would write the same "
                            f"products (folder products/{task.product_dir}/).",
                            "give each exposure once, or run the two folders as two batches "
                            "(-o elsewhere).")
    return tasks


def _check_product_dir(task: Task) -> None:
    """products/NAME is the task's /data bind mount and is emptied before each attempt: NAME
    must be one real folder name that the runtimes' mount syntax keeps whole."""
    name = task.product_dir
    if name in ("", ".", ".."):
        raise UserError(f"the input {task.input} gives no product folder name (its name is "
                        f"only {shown(task.name)}).", "rename the file, e.g. jw01_nis_uncal.fits.")
    problem = grammar.mount_source_problem(name)
    if problem:
        raise UserError(f"the input {task.input} writes its products to products/{name}/, "
                        f"which is bind-mounted into its task, and {problem}.",
                        "rename the file without ':' or ','.")


# -- options -------------------------------------------------------------------------------------
def check_runtime(runtime: str) -> str:
    if runtime not in RUNTIMES:
        raise UserError(f"--runtime {shown(runtime)} is an unknown runtime.",
                        f"give --runtime one of {', '.join(RUNTIMES)}.")
    return runtime


def check_pipeline(pipeline: str) -> str:
    if not grammar.full(grammar.DOTTED_IDENTIFIER, pipeline) or len(pipeline) > PIPELINE_MAX:
        raise UserError(f"the pipeline {shown(pipeline)} is not a pipeline or step name.",
                        "give a strun alias (calwebb_detector1, calwebb_image2, ...) or a class "
                        f"(jwst.pipeline.Detector1Pipeline): ASCII letters, digits, '_' and '.', "
                        f"at most {PIPELINE_MAX} characters.")
    return pipeline


def check_image(runtime: str, image: str) -> str:
    """The image as given goes into the scripts' header comments, batch.json and status
    lines; docker and podman names are references (a leading '-' would be an option)."""
    is_file = runtime != "docker" and os.path.lexists(image)
    if not is_file and runtime in ("docker", "podman") and not grammar.is_reference(image):
        raise UserError(f"the image {shown(image)} is not a {runtime} image name or id"
                        + (" nor an image archive file." if runtime == "podman" else "."),
                        f"give a tag (niriss-pipe:jwst_1584) or an id from '{runtime} images'"
                        + (", or the docker-archive file (python build.py export IMAGE --to "
                           "docker-archive)." if runtime == "podman" else "."))
    problem = grammar.text_problem(image)
    if problem:
        raise UserError(f"the image {shown(image)} cannot be written into the batch scripts: "
                        f"{problem}.", "rename the file, or give a link to it (ln -s TARGET LINK) "
                        "whose name has no control characters.")
    return image


def check_strun_args(args: tuple[str, ...]) -> tuple[str, ...]:
    """Each is shell-quoted in task.sh; a line break or a control character has no place in
    one, and would break the script's one-command-per-line layout and the logs."""
    for arg in args:
        problem = grammar.text_problem(arg) or (
            f"it is {len(arg)} characters long (at most {STRUN_ARG_MAX})"
            if len(arg) > STRUN_ARG_MAX else None) or ("it is empty" if not arg else None)
        if problem:
            raise UserError(f"--strun-arg {shown(arg)} cannot be passed to strun: {problem}.",
                            "give one strun option per --strun-arg, e.g. --strun-arg=--steps."
                            "jump.rejection_threshold=5 (spaces and quotes are fine: it is "
                            "quoted for the shell).")
        option = arg.split("=", 1)[0]
        if len(option) >= len("--output_d") and "--output_dir".startswith(option):
            raise UserError(f"--strun-arg {shown(arg)} sets strun's output folder, which the "
                            "batch sets to each task's products/NAME/ (mounted at /data): "
                            "products written elsewhere in the container are lost.",
                            "leave it out; products are in BATCH_DIR/products/NAME/.")
    return tuple(args)


def check_context(context: str | None) -> str | None:
    if context is not None and not grammar.is_pmap(context):
        raise UserError(f"--context {shown(context)} is not a JWST context name.",
                        "give it as jwst_NNNN.pmap (ASCII digits), or leave it out to use the "
                        "image's.")
    return context


def check_cache(cache: Path, context: str | None) -> Path:
    cache = Path(os.path.abspath(cache))
    problem = grammar.mount_source_problem(str(cache))
    if problem:
        raise UserError(f"--cache {shown(cache)} is bind-mounted into every task, and "
                        f"{problem}.", "give --cache a path without ':' or ',' (a link works: "
                        "ln -s CACHE /shared/crds_cache).")
    if not cache.is_dir():
        raise UserError(f"the CRDS cache {cache} does not exist.",
                        "give --cache the shared cache folder (fill one with python build.py "
                        "sync SPEC).")
    if context and not (cache / "mappings" / "jwst" / context).is_file():
        raise UserError(f"the CRDS cache {cache} does not hold the context {context}.",
                        f"sync it first: python build.py sync --context {context} --cache "
                        f"{cache}; tasks run offline and cannot fetch it.")
    return cache


def count(option: str, value: int | str, fix: str) -> int:
    """A positive whole number from the CLI's text (ASCII digits only: int() would take
    '１０' and ' 10\\n') or from code."""
    if isinstance(value, bool) or not (isinstance(value, int)
                                       or grammar.full(grammar.COUNT, value)):
        raise UserError(f"{option} {shown(value)} is not a whole number.",
                        f"give it in ASCII digits (at most 6); {fix}")
    if int(value) < 1:
        raise UserError(f"{option} {int(value)} must be at least 1.", fix)
    return int(value)


_NAME_FIX = f"letters, digits, '_', '.', '+' and '-', at most {grammar.SLURM_NAME_MAX} " \
            "characters"


def check_slurm(options: SlurmOptions) -> SlurmOptions:
    """The options as they go into #SBATCH lines, each checked against its grammar; the
    counts as ints."""
    if options.partition is not None and not grammar.is_slurm_name(options.partition,
                                                                    many=True):
        raise UserError(f"--partition {shown(options.partition)} is not a SLURM partition name "
                        "or a comma-separated list of them.",
                        f"use {_NAME_FIX}, e.g. --partition compute (see sinfo).")
    for option, value in (("--account", options.account), ("--qos", options.qos)):
        if value is not None and not grammar.is_slurm_name(value):
            raise UserError(f"{option} {shown(value)} is not a SLURM {option[2:]} name.",
                            f"use {_NAME_FIX}, e.g. {option} jwst (see sacctmgr show assoc "
                            "user=$USER).")
    if options.time is not None and not grammar.full(grammar.SLURM_TIME, options.time):
        raise UserError(f"--time {shown(options.time)} is not a SLURM time.",
                        "give minutes, MM:SS, HH:MM:SS or D-HH:MM:SS in ASCII digits, e.g. "
                        "--time 00:30:00.")
    if options.mem is not None and not grammar.full(grammar.SLURM_MEMORY, options.mem):
        raise UserError(f"--mem {shown(options.mem)} is not a SLURM memory size.",
                        "give a number in ASCII digits with an optional K, M, G or T suffix, "
                        "e.g. --mem 8G.")
    cpus = count("--cpus", options.cpus, "e.g. --cpus 2.")
    throttle = None if options.throttle is None else count(
        "--throttle", options.throttle, "it is the most tasks that run at once (the %N of "
        "--array), e.g. --throttle 50.")
    if not grammar.is_slurm_name(options.job_name):
        raise UserError(f"--job-name {shown(options.job_name)} has characters SLURM does not "
                        "keep, or is too long.", f"use {_NAME_FIX}.")
    extra = tuple(sbatchopts.check(word) for word in options.extra)
    return replace(options, cpus=cpus, throttle=throttle, extra=extra)


def check_folder(folder: Path) -> Path:
    folder = Path(os.path.abspath(folder))
    problem = grammar.sbatch_path_problem(str(folder))
    if problem:
        raise UserError(f"the output folder {shown(folder)} cannot hold a batch: {problem}, and "
                        "its path is written into '#SBATCH --output=' and bind-mounted into "
                        "every task.", "give -o a path of ASCII letters, digits and . _ - + @ "
                        "only (no space, '%', ':', ',', quotes or other punctuation).")
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
