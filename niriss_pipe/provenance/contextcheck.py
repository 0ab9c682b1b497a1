"""``check IMAGE|SPEC --context PMAP``: does a context serve an image's jwst?

For every step of the pipelines a NIRISS exposure goes through, the reference types it
declares and its ``pars-*`` type are looked up in the context's NIRISS imap; each missing
type is named with the steps and pipelines that ask for it (a stage 1 or 2 pipeline stops
before its first step on one). Then every NIRISS reference of the context that the cache
holds is opened with the image's own datamodels. Exit 0: all well; 1: something missing or
unreadable; 2: bad input (no such image, a cache without the context).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from niriss_pipe.core.errors import UserError, VerificationError, prog
from niriss_pipe.crds.refcheck import ContextCheck, check_context
from niriss_pipe.provenance.inspect import get_image, label_value
from niriss_pipe.render.names import full_tag
from niriss_pipe.spec.load import load_spec


@dataclass
class CheckOutcome:
    reference: str
    cache: Path | None  # None: the image's own baked cache
    result: ContextCheck

    def as_json(self) -> dict:
        a = self.result.answer
        return {"image": self.reference, "context": self.result.context, "imap": a["imap"],
                "jwst": a["jwst"], "cache": str(self.cache) if self.cache else "baked",
                "ok": self.result.ok, "pipelines": a["pipelines"],
                "missing": self.result.missing, "pars_missing": self.result.pars_missing,
                "references": len(a["references"]),
                "unreadable": {r["name"]: r["error"] for r in self.result.unreadable}}

    def raise_for(self) -> None:
        if self.result.ok:
            return
        raise VerificationError(
            f"{self.result.context} does not serve the jwst {self.result.answer['jwst']} of "
            f"{self.reference}: " + "; ".join(
                ([f"its NIRISS imap lacks {plural(len(self.result.missing), 'reference type')}"
                  " the steps ask for"] if self.result.missing else [])
                + ([f"{plural(len(self.result.unreadable), 'reference')} of it do not open "
                    "with the image's datamodels"] if self.result.unreadable else []))
            + ": " + "; ".join(self.result.problems()) + ".",
            f"use a context made for this jwst release ({prog()} new --jwst VERSION names its "
            "tested context), or an image whose jwst matches the context.")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def resolve_target(engine, target: str):
    """``(image reference, ImageInfo)`` of an image name, or of a spec's built image."""
    path = Path(target)
    if target.endswith((".yaml", ".yml")) or path.is_file():
        spec = load_spec(path)
        reference = f"{spec.name}:{full_tag(spec)}"
        if engine.image_info(reference) is None:
            raise UserError(f"{target}'s image {reference} is not in the local engine.",
                            f"build it first: {prog()} build {target}")
        return reference, get_image(engine, reference)
    return target, get_image(engine, target)


def check_target(engine, target: str, context: str | None, cache: Path) -> CheckOutcome:
    say = engine.reporter.say
    reference, image = resolve_target(engine, target)
    labels = image.labels or {}
    own = label_value(labels, "crds.context")
    context = context or own
    baked = label_value(labels, "crds.references") == "bake" and context == own
    where = "its baked cache" if baked else str(cache)
    say(f"checking {context} against {reference} ({image.id[7:19]}), references in {where}")
    result = check_context(engine, image.id, context, None if baked else cache)
    for line in result.lines():
        say(line)
    verdict = "all well" if result.ok else "NOT usable as it is"
    say(f"{context} with jwst {result.answer['jwst']}: {verdict}")
    return CheckOutcome(reference, None if baked else cache, result)
