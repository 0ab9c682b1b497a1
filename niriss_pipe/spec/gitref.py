"""A git source's ref resolved to the commit it names, asking the repository (``git ls-remote``)."""

from __future__ import annotations

import os
import subprocess

from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError

GIT_TIMEOUT = 120


def resolve_git_ref(url: str, ref: str) -> tuple[str, str]:
    """(commit, how) for a tag or a full commit of the repository at ``url``, asked with
    ``git ls-remote``; a branch is refused (it moves), as is a ref the repository lacks."""
    if grammar.is_full_commit(ref):
        return ref, "a commit"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        proc = subprocess.run(["git", "ls-remote", "--", url], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, env=env)
    except FileNotFoundError:
        raise UserError("locking a git source needs git, which is not installed.",
                        "install git (Debian: apt-get install git).") from None
    except subprocess.TimeoutExpired:
        proc = None
    if proc is None or proc.returncode != 0:
        message = (proc.stderr.strip().splitlines() or ["no answer"])[-1] if proc else \
            f"no answer within {GIT_TIMEOUT} s"
        raise UserError(f"cannot ask {url} for its refs ({message}).",
                        "check the URL and the network (proxy variables); locking a git "
                        "source needs the repository.")
    refs = {}
    for line in proc.stdout.splitlines():
        commit, _, name = line.partition("\t")
        refs[name] = commit
    tag = f"refs/tags/{ref}"
    if tag in refs:
        return refs.get(tag + "^{}", refs[tag]), f"tag {ref}"
    if f"refs/heads/{ref}" in refs:
        raise UserError(f"{ref} is a branch of {url}, not a tag: a branch moves, so the "
                        "image could not be rebuilt the same.",
                        "set jwst.ref to a tag or a full 40-character commit hash.")
    raise UserError(f"{url} has no tag {ref}.",
                    "check jwst.ref against the repository's tags (git ls-remote --tags URL), "
                    "or give a full 40-character commit hash.")
