"""A batch's inputs: files, globs and ``@LIST`` files as absolute paths, one task each, with
product folders that cannot collide."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from niriss_pipe.batch.plan import Task
from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError, file_problem, shown, shown_path


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
    problem = file_problem(path)  # a FIFO or a symlink loop is not "does not exist"
    if problem:
        raise UserError(f"the input list {shown_path(path)} {problem}.",
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
