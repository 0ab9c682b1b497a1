"""Export formats and their outputs, checked before any work: the format, where it goes, the
tools it needs."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

from niriss_pipe.core.errors import UserError, opt
from niriss_pipe.export.apptainer import sif_builder, sif_companions
from niriss_pipe.export.facts import ImageFacts

FORMATS = {  # name -> default suffix of the output
    "docker-archive": ".tar",
    "oci": ".oci.tar",
    "dir": "",
    "squashfs": ".sqfs",
    "sif": ".sif",
}


# -- options -----------------------------------------------------------------------------------
def check_format(fmt: str) -> str:
    if fmt in FORMATS:
        return fmt
    close = difflib.get_close_matches(fmt, FORMATS, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise UserError(f"unknown export format '{fmt}'.",
                    f"{hint}give {opt('to')} one of {', '.join(FORMATS)}.")


def default_output(facts: ImageFacts, fmt: str) -> Path:
    """``niriss-pipe:jwst_1584`` -> ``niriss-pipe_jwst_1584.sqfs`` in the current directory."""
    stem = facts.name or f"image-{facts.id.split(':')[-1][:12]}"
    for char in "/:@":
        stem = stem.replace(char, "_")
    return Path(stem + FORMATS[fmt])


def planned_outputs(fmt: str, out: Path) -> list[Path]:
    if fmt == "sif" and not sif_builder():
        return list(sif_companions(out))
    return [out]


def check_outputs(paths: list[Path], force: bool) -> None:
    for path in paths:
        if not path.parent.is_dir():
            raise UserError(f"the output folder {path.parent} does not exist.",
                            "create it, or give -o a path in an existing folder.")
        if (path.exists() or path.is_symlink()) and not force:
            raise UserError(f"{path} exists.",
                            f"give -o another path, or {opt('force')} to replace it once the new "
                            "export is complete.")


def check_tools(fmt: str) -> None:
    if fmt == "squashfs" and not shutil.which("mksquashfs"):
        raise UserError(f"export {opt('to')} squashfs needs mksquashfs, which is not on PATH.",
                        "install squashfs-tools (Debian/Ubuntu: apt-get install squashfs-tools; "
                        f"RHEL: dnf install squashfs-tools), or export {opt('to')} dir and pack "
                        "it on the cluster (ch-convert DIR IMAGE.sqfs, or run ch-run on the dir).")
    if shutil.which("tar") is None and fmt in ("dir", "squashfs"):
        raise UserError(f"export {opt('to')} {fmt} needs GNU tar on PATH.", "install tar.")
