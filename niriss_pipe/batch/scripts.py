"""The batch's two scripts, rendered from templates: ``task.sh`` (one exposure, any runtime,
under SLURM or a local worker) and ``array.sbatch`` (the SLURM job array that runs it).

Pure and deterministic: a plan in, text out (golden-tested like the Dockerfile).
"""

from __future__ import annotations

import shlex
import textwrap

import jinja2

from niriss_pipe import __version__
from niriss_pipe.batch.launchers import commands
from niriss_pipe.batch.plan import INPUT_SUFFIXES, Plan
from niriss_pipe.core import templates
from niriss_pipe.runtime.contract import THREAD_ENV


def _environment() -> jinja2.Environment:
    env = templates.environment(trim=False)
    return env


def array_spec(indices: list[int], throttle: int | None) -> str:
    """``1-5``, ``2,7-9``: contiguous runs collapsed, with ``%THROTTLE`` when given."""
    runs: list[list[int]] = []
    for index in sorted(set(indices)):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    text = ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in runs)
    return f"{text}%{throttle}" if throttle else text


def context(plan: Plan) -> dict:
    """What the templates see: the plan's facts and the runtime's shell words."""
    runtime = commands(plan)
    return {
        "version": __version__, "pipeline": plan.pipeline, "image": plan.image,
        "runtime": plan.runtime, "tasks": len(plan.tasks), "folder": str(plan.folder),
        "folder_q": shlex.quote(str(plan.folder)), "cache_q": shlex.quote(str(plan.cache)),
        "suffixes": INPUT_SUFFIXES, "tool": runtime.tool, "check": runtime.check,
        "prepare": runtime.prepare, "run": _wrap(runtime.run),
        "preview": _wrap(runtime.preview) if runtime.preview else "",
        "stop": " ".join(runtime.stop), "slurm": plan.slurm,
        "notes": textwrap.fill(runtime.notes, 96, initial_indent="# ", subsequent_indent="# "),
        "array": array_spec([task.index for task in plan.tasks], plan.slurm.throttle),
        "cpus": int((plan.cores or {}).get("cpus", plan.slurm.cpus)),
        "steps": (plan.cores or {}).get("maximum_cores", {}),
        "threads": "=$cpus ".join(THREAD_ENV),
    }


def _wrap(words: list[str], width: int = 92) -> str:
    """A long command as continued lines, breaking only between words."""
    lines, line = [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = "    " + word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return " \\\n".join(lines)


def task_script(plan: Plan) -> str:
    return _environment().get_template("task.sh.j2").render(context(plan))


def array_script(plan: Plan) -> str:
    return _environment().get_template("array.sbatch.j2").render(context(plan))
