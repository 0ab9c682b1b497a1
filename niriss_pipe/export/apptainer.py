"""Apptainer/Singularity: the SIF built from the docker-archive or, where Apptainer is missing,
the archive and a script that builds the SIF on the cluster."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from niriss_pipe import __version__
from niriss_pipe.core import templates
from niriss_pipe.core.errors import UserError, opt
from niriss_pipe.export.facts import ImageFacts
from niriss_pipe.runtime import contract


def sif_builder() -> str | None:
    """``apptainer`` (or the older ``singularity``) on PATH, else None."""
    return shutil.which("apptainer") or shutil.which("singularity")


def sif_companions(out: Path) -> tuple[Path, Path]:
    """Without Apptainer, ``X.sif`` becomes ``X.docker.tar`` plus the script ``X.sif.sh``."""
    stem = out.name[:-len(".sif")] if out.name.endswith(".sif") else out.name
    return out.with_name(stem + ".docker.tar"), out.with_name(out.name + ".sh")


# -- Apptainer -----------------------------------------------------------------------------------
def sif_script(facts: ImageFacts, sif_name: str, archive_name: str) -> str:
    """The shell script that builds the SIF where Apptainer is installed, with how to run it
    (``templates/sif.sh.j2``: values in its comments are kept to one line, the rest quoted)."""
    env = templates.environment(trim=True)
    return env.get_template("sif.sh.j2").render(
        sif_name=sif_name, archive_name=archive_name, script_name=sif_name + ".sh",
        partial_name=sif_name + ".partial", image=facts.name or facts.id, image_id=facts.id,
        reference=facts.reference, version=__version__, env=list(facts.env),
        entry=" ".join([*facts.entrypoint, *facts.cmd]) or "(none)",
        context=facts.env_value("CRDS_CONTEXT", "jwst_NNNN.pmap"),
        crds_path=contract.CRDS_PATH, data_path=contract.DATA_PATH)


def build_sif(builder: str, archive: Path, dest: Path) -> None:
    proc = subprocess.run([builder, "build", str(dest), f"docker-archive:{archive}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise UserError(f"{Path(builder).name} build failed (exit {proc.returncode}): {tail}",
                        f"see its message above; or export {opt('to')} docker-archive and build "
                        "the SIF on the cluster.")
