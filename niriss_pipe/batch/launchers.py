"""How each container runtime runs one batch task, as shell words for the task script.

Pure: a plan in, words out, so the generated scripts are golden-tested. Every runtime gets the
same contract: the image's own environment (no host PYTHONPATH or CRDS_* leaking in), the input
folder at /mnt/0 and the cache at /crds read-only, the task's product folder at /data (the
working directory), no writes into the image, no network, and the image's entrypoint (it checks
the cache before strun). Words are shell text: literals are quoted, ``"$var"`` expands in the
task script (input_dir, input_name, products, container).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from niriss_pipe.batch.plan import Plan, in_container, parameter_mounts
from niriss_pipe.runtime.contract import CPUS_ENV, INPUT_MOUNT, THREAD_ENV
from niriss_pipe.runtime.contract import CRDS_PATH as CACHE_MOUNT
from niriss_pipe.runtime.contract import DATA_PATH as OUTPUT_MOUNT
from niriss_pipe.runtime.contract import ENTRYPOINT_NAME as ENTRYPOINT


@dataclass(frozen=True)
class RuntimeCommands:
    """What task.sh runs: ``check`` (a shell condition: is the runtime on this node?),
    ``prepare`` lines before the container (each must succeed), ``run`` (the container, in
    the background), ``preview`` (a second container, after a run that succeeded: PNGs of
    the products; empty when the batch has none) and ``stop`` when the task is signalled
    (scancel, time limit, Ctrl-C)."""

    tool: str
    check: str
    run: list[str]
    stop: list[str]
    prepare: list[str]
    notes: str
    preview: list[str] = ()


def q(value: str) -> str:
    return shlex.quote(str(value))


def strun_words(plan: Plan) -> list[str]:
    """``strun PIPELINE /mnt/0/NAME --output_dir=/data ARGS`` inside the container (a
    parameter file by its path under its mount point), then the task's maximum_cores
    arguments (``$cores``, made by task.sh: empty with one core)."""
    return [f"strun {q(in_container(plan, plan.pipeline))}", f'"{INPUT_MOUNT}/$input_name"',
            q(f"--output_dir={OUTPUT_MOUNT}"),
            *(q(in_container(plan, arg)) for arg in plan.strun_args),
            *(['${cores[@]+"${cores[@]}"}'] if (plan.cores or {}).get("maximum_cores") else [])]


def thread_env(flag: str) -> list[str]:
    """The task's core count and thread-pool variables, as ``FLAG "VAR=$cpus"`` words (the
    same value for each: task.sh sets ``$cpus`` from SLURM or --cpus)."""
    return [f'{flag}"{name}=$cpus"' for name in (CPUS_ENV, *THREAD_ENV)]


PREVIEW = ["python -m niriss_pipe.runtime.preview", f"--products {OUTPUT_MOUNT}"]


def _engine_run(plan: Plan, tool: str, preview: bool = False) -> list[str]:
    """docker/podman run; each item is a chunk the script keeps on one line. ``preview``:
    the preview container (the products folder only), else strun's."""
    # docker: --init forwards signals to strun. podman needs no init for that (its stop is
    # rm --force --time 0) and its init binary, catatonit, is often not installed.
    words = [f"{tool} run", "--rm", *(["--init"] if tool == "docker" else []),
             '--name "$container"', "--network none", "--read-only", "--tmpfs /tmp",
             '--user "$(id -u):$(id -g)"']
    if tool == "podman":
        words += ["$userns"]
    if preview:
        words += [f'--volume "$products:{OUTPUT_MOUNT}"', f"--workdir {OUTPUT_MOUNT}"]
        return [*words, q(plan.image_ref), *PREVIEW]
    words += [f'--volume "$input_dir:{INPUT_MOUNT}:ro"',
              f'--volume "$products:{OUTPUT_MOUNT}"',
              f'--volume "$cache:{CACHE_MOUNT}:ro"',
              *(f"--volume {q(f'{folder}:{mount}:ro')}" for folder, mount
                in parameter_mounts(plan)),
              f"--workdir {OUTPUT_MOUNT}"]
    if plan.context:
        words += [f"--env {q(f'CRDS_CONTEXT={plan.context}')}"]
    words += thread_env("--env ")
    return [*words, q(plan.image_ref), *strun_words(plan)]


def docker(plan: Plan) -> RuntimeCommands:
    return RuntimeCommands(
        tool="docker", check="command -v docker >/dev/null", run=_engine_run(plan, "docker"),
        stop=["docker", "rm", "--force", '"$container"'],
        prepare=[], preview=_engine_run(plan, "docker", preview=True) if plan.preview else [],
        notes="the container runs under dockerd, not under this script: on TERM the trap "
              "removes it by name (--init passes signals to strun)")


def podman(plan: Plan) -> RuntimeCommands:
    # Rootless podman: keep-id maps the caller to the same uid inside (products are theirs).
    prepare = ['userns=$([ "$(id -u)" = 0 ] || echo --userns=keep-id)']
    if plan.archive:  # a node whose store lacks the image loads it from the shared archive
        prepare.append(f"podman image exists {q(plan.image_ref)} || podman load --quiet "
                       f"--input {q(plan.archive)} >/dev/null")
    return RuntimeCommands(
        tool="podman", check="command -v podman >/dev/null", run=_engine_run(plan, "podman"),
        stop=["podman", "rm", "--force", "--time", "0", '"$container"'],
        prepare=prepare, preview=_engine_run(plan, "podman", preview=True) if plan.preview
        else [],
        notes="rootless podman maps the caller to the same uid in the container "
              "(--userns=keep-id), so products are the caller's")


def charliecloud(plan: Plan) -> RuntimeCommands:
    start = ["ch-run", "--unset-env='*'", "--set-env", "--private-tmp"]
    words = [*start, *([q(f"--set-env=CRDS_CONTEXT={plan.context}")] if plan.context else []),
             *thread_env("--set-env=")]
    words += [f'--bind="$input_dir:{INPUT_MOUNT}"', f'--bind="$products:{OUTPUT_MOUNT}"',
              f'--bind="$cache:{CACHE_MOUNT}"',
              *(q(f"--bind={folder}:{mount}") for folder, mount in parameter_mounts(plan)),
              f"--cd={OUTPUT_MOUNT}", q(plan.image_ref), "--", ENTRYPOINT, *strun_words(plan)]
    preview = [*start, f'--bind="$products:{OUTPUT_MOUNT}"', f"--cd={OUTPUT_MOUNT}",
               q(plan.image_ref), "--", ENTRYPOINT, *PREVIEW]
    return RuntimeCommands(
        tool="ch-run", check="command -v ch-run >/dev/null", run=words,
        stop=["kill", "-TERM", '"$pid"'], prepare=[], preview=preview if plan.preview else [],
        notes="ch-run 0.31 binds read-write: the inputs and the cache stay unchanged because "
              "the image sets CRDS_READONLY_CACHE=1 and strun writes only to --output_dir; "
              "the image itself is mounted read-only")


def apptainer(plan: Plan) -> RuntimeCommands:
    words = ['"$apptainer" exec', "--containall"]
    if plan.context:
        words += [f"--env {q(f'CRDS_CONTEXT={plan.context}')}"]
    words += thread_env("--env ")
    words += [f'--bind "$input_dir:{INPUT_MOUNT}:ro"', f'--bind "$products:{OUTPUT_MOUNT}"',
              f'--bind "$cache:{CACHE_MOUNT}:ro"',
              *(f"--bind {q(f'{folder}:{mount}:ro')}" for folder, mount
                in parameter_mounts(plan)),
              f"--pwd {OUTPUT_MOUNT}", q(plan.image_ref), ENTRYPOINT, *strun_words(plan)]
    preview = ['"$apptainer" exec', "--containall", f'--bind "$products:{OUTPUT_MOUNT}"',
               f"--pwd {OUTPUT_MOUNT}", q(plan.image_ref), ENTRYPOINT, *PREVIEW]
    return RuntimeCommands(
        tool="apptainer (or singularity)",
        check='apptainer=$(command -v apptainer || command -v singularity)',
        run=words, stop=["kill", "-TERM", '"$pid"'], prepare=[],
        preview=preview if plan.preview else [],
        notes="--containall keeps the host's environment, home and /tmp out; the SIF is "
              "read-only")


COMMANDS = {"docker": docker, "podman": podman, "charliecloud": charliecloud,
            "apptainer": apptainer}


def commands(plan: Plan) -> RuntimeCommands:
    return COMMANDS[plan.runtime](plan)
