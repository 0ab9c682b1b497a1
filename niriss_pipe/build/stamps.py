"""Build-time label values (creation time, revision, source, base digest): what the Dockerfile
leaves to ``ARG``s, known only when the build runs."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from pathlib import Path

from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError

REPO_DIR = Path(__file__).resolve().parents[2]  # the checkout, when run from one
PROJECT_URL = "https://github.com/niriss-pipe/niriss-pipe"


def source_date_epoch(environ=os.environ) -> str | None:
    """SOURCE_DATE_EPOCH when set (whole seconds since 1970, ASCII digits), else None."""
    value = environ.get("SOURCE_DATE_EPOCH")
    if value is None or value == "":
        return None
    if not grammar.full(grammar.DOTTED_VERSION, value) or "." in value:
        raise UserError(f"SOURCE_DATE_EPOCH={value!r} is not a number of seconds since "
                        "1970-01-01 (reproducible-builds.org).",
                        "set it to whole seconds, e.g. SOURCE_DATE_EPOCH=$(git log -1 "
                        "--format=%ct), or unset it.")
    return value


def build_epoch(lock_text: str, environ=os.environ) -> str:
    """The image's SOURCE_DATE_EPOCH: the variable when set, else midnight (UTC) of the day
    its lock was resolved as of, so the same lock gives the same times in the image."""
    given = source_date_epoch(environ)
    if given is not None:
        return given
    match = re.search(r'"exclude_newer": "([0-9]{4}-[0-9]{2}-[0-9]{2})"', lock_text)
    if match is None:
        raise UserError("the lock records no resolution day (exclude_newer), so the image's "
                        "times cannot be derived from it.",
                        "lock the spec again, or set SOURCE_DATE_EPOCH.")
    day = dt.datetime.strptime(match.group(1), "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    return str(int(day.timestamp()))


def label_args(base_digest: str, epoch: str | None = None, *, revision_label: str | None = None,
               source_label: str | None = None) -> dict[str, str]:
    """Build-time label values: creation time (SOURCE_DATE_EPOCH wins), git revision, base.
    ``revision_label`` and ``source_label`` stand for this checkout's own (``verify --rebuild``
    rebuilds an image under the labels of the tool that built it, as it takes its time)."""
    when = dt.datetime.fromtimestamp(int(epoch), dt.timezone.utc) if epoch \
        else dt.datetime.now(dt.timezone.utc)
    return {
        "NIRISS_PIPE_CREATED": when.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "NIRISS_PIPE_REVISION": revision() if revision_label is None else revision_label,
        "NIRISS_PIPE_SOURCE": public_source(_git("config", "--get", "remote.origin.url"))
        if source_label is None else source_label,
        "NIRISS_PIPE_BASE_DIGEST": base_digest,
    }


def checked_tool_labels(revision_label: str | None, source_label: str | None, where: str
                        ) -> tuple[str | None, str | None]:
    """An image's revision and source labels, to build under again: a revision is a full
    commit id (or empty: the tool knew none), a source is what ``public_source`` writes (a
    network URL without credentials, or ``git@host:path``). Anything else is refused: this
    tool never wrote it, so no build of it can give that image."""
    if revision_label and not grammar.full(grammar.FULL_COMMIT, revision_label):
        raise UserError(f"{where}: its label org.opencontainers.image.revision "
                        f"({revision_label[:60]!r}) is not a git revision (a full commit id: "
                        "40 or 64 hex digits), so no build of this tool made it.",
                        "rebuild only images this tool built (inspect shows their labels).")
    if source_label is not None and source_label != public_source(source_label):
        raise UserError(f"{where}: its label org.opencontainers.image.source "
                        f"({source_label[:80]!r}) is not a source this tool writes (a network "
                        "URL without credentials, or git@host:path).",
                        "rebuild only images this tool built (inspect shows their labels).")
    return revision_label, source_label


def public_source(remote: str) -> str:
    """The checkout's remote as the ``source`` label, when it is a network URL: credentials
    (``https://user:token@host/...``) are dropped, and a local path (a clone of a folder on
    the build host) gives the project's URL instead: no host path goes into an image."""
    match = grammar.URL.fullmatch(remote) if remote else None
    if match and match.group("scheme") in ("https", "http", "ssh", "git"):
        rest = match.group("rest")
        host, slash, path = rest.partition("/")
        host = host.rsplit("@", 1)[-1]
        return f"{match.group('scheme')}://{host}{slash}{path}"
    if re.fullmatch(r"git@[A-Za-z0-9.-]+:[A-Za-z0-9._/-]+", remote or "", re.ASCII):
        return remote
    return PROJECT_URL


def revision() -> str:
    """The tool's git revision: the checkout's HEAD, or for an installed wheel the revision
    it was built from (setup.py writes ``data/revision``); empty when neither is known."""
    return _git("rev-parse", "HEAD") or _recorded_revision()


def _recorded_revision() -> str:
    try:
        text = (Path(__file__).resolve().parents[1] / "data" / "revision").read_text().strip()
    except OSError:
        return ""
    return text if grammar.full(grammar.FULL_COMMIT, text) else ""


def _git(*args: str) -> str:
    """git in the tool's own checkout; "" for an installed copy (its folder may lie inside
    some other repository, whose revision is not the tool's)."""
    if not (REPO_DIR / ".git").exists():
        return ""
    try:
        return subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""
