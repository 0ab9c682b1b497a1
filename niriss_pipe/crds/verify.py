"""``verify-cache``: offline, every context a cache holds is complete (its mapping closure and
the references its scope needs), then every file a sync verified still has its verified sha1."""

from __future__ import annotations

from pathlib import Path

from niriss_pipe.core.errors import UserError, VerificationError, opt, os_error, prog
from niriss_pipe.core.progress import Reporter
from niriss_pipe.crds import hostcache
from niriss_pipe.crds.manifest import Manifest
from niriss_pipe.crds.paths import check_readable
from niriss_pipe.crds.sync import MANIFEST


def verify_cache(cache: Path, reporter: Reporter) -> int:
    """Report each context and each problem; raise VerificationError naming them. Return how
    many recorded files were verified."""
    check_readable(cache)
    try:
        return _checks(cache, reporter)
    except OSError as exc:
        raise os_error(exc, opt("cache"), "make the cache readable by this user (or run as its "
                       "owner), then check it again.") from None


def _checks(cache: Path, reporter: Reporter) -> int:
    incomplete = []
    for pmap in hostcache.contexts(cache):
        state = hostcache.status(cache, pmap)
        reporter.say(f"  {pmap}: {hostcache.describe(state, cache)}")
        if not state.complete:
            incomplete.append(state)
    if incomplete:
        first = incomplete[0]
        raise VerificationError(
            f"{len(incomplete)} context{'s' if len(incomplete) > 1 else ''} in {cache} cannot "
            f"be served offline: {first.context}: {first.missing_text()}.",
            "; ".join(state.sync_command(str(cache)) for state in incomplete)
            + " (a sync fetches only what is missing).")
    manifest = Manifest(cache / MANIFEST, cache)
    if not manifest.entries:
        raise UserError(f"{cache} has no record of verified downloads ({MANIFEST}).",
                        f"fill it with {prog()} sync, or check it against the server with "
                        f"{prog()} sync {opt('verify')}.")
    problems = manifest.problems()
    for key, problem in problems.items():
        reporter.say(f"  {key}: {problem}")
    if problems:
        raise VerificationError(f"{len(problems)} of {len(manifest.entries)} files in {cache} "
                                "fail verification.", f"repair them with {prog()} sync "
                                f"{opt('verify')} (re-fetches only those).")
    reporter.say(f"{cache}: all {len(manifest.entries)} recorded files verified")
    return len(manifest.entries)
