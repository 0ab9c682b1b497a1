"""Every option of a batch checked against the grammar of where it lands (``#SBATCH`` lines,
``task.sh``, bind mounts), before anything is written."""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from pathlib import Path

from niriss_pipe.batch import sbatchopts
from niriss_pipe.batch.plan import (
    PIPELINE_MAX,
    PLAN_FILE,
    RUNTIME_ALIASES,
    RUNTIMES,
    STRUN_ARG_MAX,
    SlurmOptions,
)
from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError, opt, prog, shown
from niriss_pipe.runtime.contract import PARAMETER_MOUNTS

PARAMETER_SUFFIX = ".asdf"  # a strun parameter file: mounted into every task


# -- options -------------------------------------------------------------------------------------
def check_runtime(runtime: str) -> str:
    runtime = RUNTIME_ALIASES.get(runtime, runtime)
    if runtime not in RUNTIMES:
        raise UserError(f"{opt('runtime')} {shown(runtime)} is an unknown runtime.",
                        f"give {opt('runtime')} one of {', '.join(RUNTIMES)}.")
    return runtime



def check_pipeline(pipeline: str) -> str:
    """A strun alias or class, or a parameter file (its absolute path)."""
    if pipeline.endswith(PARAMETER_SUFFIX):
        return str(check_parameter_file(pipeline, "the pipeline parameter file"))
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
                        + (f", or the docker-archive file ({prog()} export IMAGE {opt('to')} "
                           "docker-archive)." if runtime == "podman" else "."))
    problem = grammar.text_problem(image)
    if problem:
        raise UserError(f"the image {shown(image)} cannot be written into the batch scripts: "
                        f"{problem}.", "rename the file, or give a link to it (ln -s TARGET LINK) "
                        "whose name has no control characters.")
    return image



def check_parameter_file(value: str, what: str) -> Path:
    """A strun parameter file: a readable .asdf file whose folder can be bind-mounted
    read-only into every task (for every runtime); its absolute path."""
    path = Path(os.path.abspath(value))
    problem = grammar.text_problem(path.name) or grammar.mount_source_problem(str(path.parent))
    if problem:
        raise UserError(f"{what} {shown(value)} is mounted into every task, and its path "
                        f"cannot be: {problem}.", "move or link it (ln -s) to a path without "
                        "':', ',' or control characters.")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise UserError(f"{what} {shown(value)} is not a readable file.",
                        "give the path of a strun parameter file (write one with: strun "
                        "calwebb_detector1 X_uncal.fits --save-parameters my_det1.asdf).")
    return path


def parameter_files(pipeline: str, strun_args: tuple[str, ...]) -> tuple[Path, ...]:
    """The parameter files among the checked pipeline and strun arguments; at most as many
    folders as there are mount points for them."""
    values = [pipeline, *(arg.partition("=")[2] if arg.startswith("-") else arg
                          for arg in strun_args)]
    files = tuple(dict.fromkeys(Path(v) for v in values if v.endswith(PARAMETER_SUFFIX)))
    if len({path.parent for path in files}) > len(PARAMETER_MOUNTS):
        raise UserError(f"the parameter files are in {len({p.parent for p in files})} folders; "
                        f"at most {len(PARAMETER_MOUNTS)} can be mounted into a task.",
                        "put them in one folder.")
    return files


def check_strun_args(args: tuple[str, ...]) -> tuple[str, ...]:
    """Each is shell-quoted in task.sh; a line break or a control character has no place in
    one, and would break the script's one-command-per-line layout and the logs. A .asdf
    file one names (``--NAME=FILE.asdf`` or ``FILE.asdf``) is a parameter file: checked, and
    kept by its absolute path (each task mounts it read-only)."""
    checked = []
    for arg in args:
        problem = grammar.text_problem(arg) or (
            f"it is {len(arg)} characters long (at most {STRUN_ARG_MAX})"
            if len(arg) > STRUN_ARG_MAX else None) or ("it is empty" if not arg else None)
        if problem:
            raise UserError(f"{opt('strun_arg')} {shown(arg)} cannot be passed to strun: "
                            f"{problem}.",
                            f"give one strun option per {opt('strun_arg')}, e.g. "
                            f"{opt('strun_arg')}=--steps."
                            "jump.rejection_threshold=5 (spaces and quotes are fine: it is "
                            "quoted for the shell).")
        option = arg.split("=", 1)[0]
        if len(option) >= len("--output_d") and "--output_dir".startswith(option):
            raise UserError(f"{opt('strun_arg')} {shown(arg)} sets strun's output folder, which "
                            "the batch sets to each task's products/NAME/ (mounted at /data): "
                            "products written elsewhere in the container are lost.",
                            "leave it out; products are in BATCH_DIR/products/NAME/.")
        head, equals, value = arg.partition("=") if arg.startswith("-") else ("", "", arg)
        if value.endswith(PARAMETER_SUFFIX):
            arg = head + equals + str(check_parameter_file(
                value, f"the parameter file of {opt('strun_arg')} {shown(arg)}"))
        checked.append(arg)
    return tuple(checked)



def check_context(context: str | None) -> str | None:
    """A pmap, with or without its ``.pmap`` (returned with it)."""
    if context is not None:
        context = grammar.normalise_pmap(context) or context
    if context is not None and not grammar.is_pmap(context):
        raise UserError(f"{opt('context')} {shown(context)} is not a JWST context name.",
                        "give it as jwst_NNNN.pmap (ASCII digits), or leave it out to use the "
                        "image's.")
    return context



def check_cache(cache: Path, context: str | None) -> Path:
    cache = Path(os.path.abspath(cache))
    problem = grammar.mount_source_problem(str(cache))
    if problem:
        raise UserError(f"{opt('cache')} {shown(cache)} is bind-mounted into every task, and "
                        f"{problem}.", f"give {opt('cache')} a path without ':' or ',' (a link "
                        "works: ln -s CACHE /shared/crds_cache).")
    if not cache.is_dir():
        raise UserError(f"the CRDS cache {cache} does not exist.",
                        f"give {opt('cache')} the shared cache folder (fill one with {prog()} "
                        "sync SPEC).")
    if context and not (cache / "mappings" / "jwst" / context).is_file():
        raise UserError(f"the CRDS cache {cache} does not hold the context {context}.",
                        f"sync it first: {prog()} sync {opt('context')} {context} {opt('cache')} "
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


SECONDS = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,6})?", re.ASCII)  # wait --timeout: < 32 years


def check_timeout(timeout: float | str | None) -> float | None:
    """``wait --timeout``: seconds, 0 or more, as the CLI's text (ASCII digits and one '.':
    float() would take 'nan', 'inf', '-5', '1e308' and '１０') or a finite number from code.
    0 looks once and does not wait; None waits for as long as it takes."""
    if timeout is None:
        return None
    if isinstance(timeout, str):
        good = grammar.full(SECONDS, timeout)
    else:
        good = isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and \
            math.isfinite(timeout) and timeout >= 0
    if not good:
        raise UserError(f"{opt('timeout')} {shown(timeout)} is not a number of seconds, 0 or "
                        "more (ASCII digits: at most 9, and 6 after a '.').",
                        f"give how long to wait, e.g. {opt('timeout')} 3600 (0 looks once and "
                        f"does not wait), or leave {opt('timeout')} out to wait until every task "
                        "has ended.")
    return float(timeout)


_NAME_FIX = f"letters, digits, '_', '.', '+' and '-', at most {grammar.SLURM_NAME_MAX} " \
            "characters"



def check_slurm(options: SlurmOptions) -> SlurmOptions:
    """The options as they go into #SBATCH lines, each checked against its grammar; the
    counts as ints."""
    if options.partition is not None and not grammar.is_slurm_name(options.partition,
                                                                    many=True):
        raise UserError(f"{opt('partition')} {shown(options.partition)} is not a SLURM partition "
                        "name or a comma-separated list of them.",
                        f"use {_NAME_FIX}, e.g. {opt('partition')} compute (see sinfo).")
    for option, value in (("--account", options.account), ("--qos", options.qos)):
        if value is not None and not grammar.is_slurm_name(value):
            raise UserError(f"{option} {shown(value)} is not a SLURM {option[2:]} name.",
                            f"use {_NAME_FIX}, e.g. {option} jwst (see sacctmgr show assoc "
                            "user=$USER).")
    if options.time is not None and not grammar.full(grammar.SLURM_TIME, options.time):
        raise UserError(f"{opt('time')} {shown(options.time)} is not a SLURM time.",
                        "give minutes, MM:SS, HH:MM:SS or D-HH:MM:SS in ASCII digits, e.g. "
                        f"{opt('time')} 00:30:00.")
    if options.mem is not None and not grammar.full(grammar.SLURM_MEMORY, options.mem):
        raise UserError(f"{opt('mem')} {shown(options.mem)} is not a SLURM memory size.",
                        "give a number in ASCII digits with an optional K, M, G or T suffix, "
                        f"e.g. {opt('mem')} 8G.")
    cpus = count("--cpus", options.cpus, "e.g. --cpus 2.")
    throttle = None if options.throttle is None else count(
        "--throttle", options.throttle, "it is the most tasks that run at once (the %N of "
        "--array), e.g. --throttle 50.")
    if not grammar.is_slurm_name(options.job_name):
        raise UserError(f"{opt('job_name')} {shown(options.job_name)} has characters SLURM does "
                        "not keep, or is too long.", f"use {_NAME_FIX}.")
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
                        f"see it with {prog()} batch status {folder}, rerun its failed "
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
