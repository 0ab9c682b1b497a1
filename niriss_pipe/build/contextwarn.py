"""Build layer: after a build, the first part of ``check`` as warnings: the reference types
the new image's jwst asks for that its context's NIRISS imap lacks (a run would stop there),
when the host cache holds the context (or the image bakes it)."""

from __future__ import annotations

from niriss_pipe.core.errors import UserError, prog
from niriss_pipe.crds.hostcache import has_context
from niriss_pipe.crds.refcheck import check_context


def warn_missing_types(engine, image_id: str, spec, cache) -> None:
    """Warn, never fail: the image is built and self-tested; the context may be fixed later."""
    baked = spec.references == "bake"
    if not baked and not has_context(cache, spec.context):
        return
    try:
        result = check_context(engine, image_id, spec.context, None if baked else cache,
                               open_references=False)
    except UserError as err:  # EngineError too: say why, keep the build
        engine.reporter.warn(f"the context check of {spec.context} did not run: {err.what}")
        return
    for reftype, users in sorted(result.missing.items()):
        engine.reporter.warn(f"{spec.context} has no {reftype} for NIRISS, which "
                             f"{', '.join(users[:3])} ask for: a run that needs it stops "
                             f"there ({prog()} check {spec.path} --context {spec.context}).")
