"""CRDS layer: ask an image's own jwst what it needs from a context (``runtime/refcheck.py``,
run offline in the image with the cache mounted read-only).

``check_context``: the types the steps declare against the context's NIRISS imap, and every
NIRISS reference of the context in the cache opened with the image's datamodels (``build.py
check``, ``verify``, and as a warning after ``build``). ``select_references``: the references
exposures need, as that jwst's steps ask for them (``sync --references datasets``, bake): the
host needs no jwst, and the choice is the one the image will make.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from niriss_pipe.core import grammar
from niriss_pipe.core.errors import EngineError, UserError, opt, prog, shown
from niriss_pipe.crds.hostcache import has_context
from niriss_pipe.runtime.contract import CRDS_PATH, ENV_PREFIX, SERVERLESS_URL
from niriss_pipe.runtime.refcheck import MARK

DATASET_MOUNT = "/mnt/datasets"  # exposures, one folder mount per parent folder


def source() -> str:
    return resources.files("niriss_pipe.runtime").joinpath("refcheck.py").read_text()


def crds_env(context: str, crds_path: str = CRDS_PATH) -> dict[str, str]:
    """What the image's crds client needs offline (set explicitly: a build stage has no ENV)."""
    return {"CRDS_PATH": crds_path, "CRDS_CONTEXT": context, "CRDS_MODE": "local",
            "CRDS_READONLY_CACHE": "1", "CRDS_SERVER_URL": SERVERLESS_URL,
            "MPLBACKEND": "Agg"}


def mount(path: Path, target: str, what: str) -> dict:
    problem = grammar.mount_source_problem(str(path.resolve()))
    if problem:
        raise UserError(f"{what} {path} cannot be mounted into the image: {problem}.",
                        "give a path without it (move or link the folder).")
    return {str(path.resolve()): {"bind": target, "mode": "ro"}}


def run_refcheck(engine, image: str, opts: dict, *, cache: Path | None, volumes=None) -> dict:
    """Run refcheck in ``image`` (the cache at CRDS_PATH; ``cache`` None: the image's own,
    baked); return its answer."""
    binds = dict(volumes or {})
    if cache is not None:
        binds.update(mount(cache, CRDS_PATH, opt("cache")))
    python = f"{ENV_PREFIX}/bin/python"
    code, stdout, stderr = engine.run_split(  # as the caller: it reads what they can read
        image, [python, "-c", source(), json.dumps(opts)], volumes=binds,
        environment=crds_env(opts["context"]), user=f"{os.getuid()}:{os.getgid()}")
    line = next((t for t in reversed(stdout.splitlines()) if t.startswith(MARK)), None)
    answer = json.loads(line[len(MARK):]) if line else None
    if code != 0 or answer is None or "error" in answer:
        why = (answer or {}).get("error") or "no answer"
        tail = "\n".join(f"    {t}" for t in (stderr or stdout).strip().splitlines()[-15:])
        raise EngineError(f"asking the jwst of {image} what it needs from {opts['context']} "
                          f"failed (exit {code}: {why}).",
                          "run with -v, or check that the image holds jwst and crds "
                          f"(docker run --rm {image} info).\n{tail}")
    return answer


def require_context(cache: Path, context: str) -> None:
    if not grammar.is_pmap(context):
        raise UserError(f"{opt('context')} {shown(context)}: not a CRDS pipeline "
                        "context name.", "give a pmap like jwst_1584.pmap.")
    if not has_context(cache, context):
        raise UserError(f"the CRDS cache {cache} does not hold {context} (its server config "
                        "and mapping closure).",
                        f"sync it first ({prog()} sync {opt('context')} {context} "
                        f"{opt('cache')} {cache}), or give {opt('cache')} a cache that holds "
                        "it.")


# -- the check -----------------------------------------------------------------------------
@dataclass
class ContextCheck:
    """What a context lacks for an image's jwst, and which of its references fail to open."""

    image: str
    context: str
    answer: dict
    missing: dict[str, list[str]] = field(default_factory=dict)  # reftype -> users
    pars_missing: dict[str, list[str]] = field(default_factory=dict)
    unreadable: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unreadable)

    def problems(self) -> list[str]:
        found = [f"{t} (needed by {', '.join(users[:4])}"
                 + (f" and {len(users) - 4} more" if len(users) > 4 else "") + ")"
                 for t, users in sorted(self.missing.items())]
        found += [f"{r['name']} ({r['reftype']}): {r['error']}" for r in self.unreadable]
        return found

    def lines(self, *, types_only: bool = False) -> list[str]:
        a = self.answer
        declared, pars = a["reftypes"], a["pars"]
        lines = [f"  reference types  {len(declared)} declared by {a['steps']} steps of "
                 f"{', '.join(a['pipelines'])}: {len(declared) - len(self.missing)} in "
                 f"{a['imap']}, {len(self.missing)} missing"]
        for reftype, users in sorted(self.missing.items()):
            lines.append(f"    MISSING {reftype}: asked for by {', '.join(users)}")
        lines.append(f"  parameter types  {len(pars) - len(self.pars_missing)} of {len(pars)} "
                     "in the imap" + (" (the other steps run with their built-in parameters)"
                                      if self.pars_missing else ""))
        if types_only:
            return lines
        refs = a["references"]
        lines.append(f"  references       {len(refs)} NIRISS references of {self.context} in "
                     f"the cache: {len(refs) - len(self.unreadable)} open with "
                     f"{a['datamodels']}, {len(self.unreadable)} fail")
        for ref in self.unreadable:
            lines.append(f"    FAILS {ref['name']} ({ref['reftype']}): {ref['error']}")
        noted = [r for r in refs if r["warnings"] and not r["error"]]
        for ref in noted[:10]:
            lines.append(f"    warns {ref['name']}: {ref['warnings'][0]}")
        return lines


def check_context(engine, image: str, context: str, cache: Path | None, *,
                  open_references: bool = True) -> ContextCheck:
    """The check, with ``cache`` mounted (None: the image's own baked cache)."""
    if cache is not None:
        require_context(cache, context)
    answer = run_refcheck(engine, image, {"what": "check", "context": context,
                                          "open": open_references}, cache=cache)
    result = ContextCheck(image, context, answer)
    for reftype, info in answer["reftypes"].items():
        if info["imap"] is None:
            result.missing[reftype] = info["users"]
    for reftype, info in answer["pars"].items():
        if info["imap"] is None:
            result.pars_missing[reftype] = info["users"]
    result.unreadable = [r for r in answer["references"] if r["error"]]
    return result


# -- dataset-scoped selection ----------------------------------------------------------------
@dataclass
class Selection:
    names: list[str]
    per_dataset: dict[str, dict]  # host path -> the image's answer for it


def select_references(engine, image: str, context: str, cache: Path,
                      datasets: list[Path]) -> Selection:
    """The references the exposures need, as the image's jwst asks for them, computed by its
    crds client from the mappings in ``cache`` (synced first), offline."""
    folders = sorted({p.resolve().parent for p in datasets})
    volumes, inside = {}, {}
    for n, folder in enumerate(folders):
        volumes.update(mount(folder, f"{DATASET_MOUNT}/{n}", "dataset folder"))
    for path in datasets:
        inside[f"{DATASET_MOUNT}/{folders.index(path.resolve().parent)}/{path.name}"] = path
    answer = run_refcheck(engine, image, {"what": "select", "context": context,
                                          "datasets": sorted(inside)},
                          cache=cache, volumes=volumes)
    per = {str(inside[k]): v for k, v in answer["datasets"].items()}
    for path, info in sorted(per.items()):
        if "error" in info:
            raise UserError(f"the jwst of {image} cannot read the header of {path}: "
                            f"{info['error']}", "give JWST level-1 exposures (*_uncal.fits).")
    names = sorted({name for info in per.values() for name in info["selected"].values()})
    return Selection(names, per)
