"""Fast pre-flight check that a CRDS cache holds everything a context needs offline.

It runs before every `strun` in the image entrypoint, so it is standard library only (the
image's Python may be 3.7; importing crds takes seconds) and opens no reference file. It
checks the cached server config, the context's mapping closure (pmap -> imaps -> rmaps),
and that each reference the context needs is present where the crds client looks for it.

Which references are needed: the sync's record of the context (``niriss-pipe-contexts.json``:
the exact names the crds client selected, the only source for ``datasets`` scope) when its
scope covers the one asked for; else, for scope ``instrument``, every name the cached NIRISS
rmaps select. Without either (``datasets`` with no record, or ``none``) only mappings are
checked, and the result says so. The host's verify-cache and cache commands reuse it.
"""

import json
import os
import re
import sys

from niriss_pipe.runtime.contract import SCOPE_ENV

EXIT_INCOMPLETE = 3
EXIT_USAGE = 2
LIST_AT_MOST = 5
USAGE = "usage: python -m niriss_pipe.runtime.cachecheck [--quiet] [CRDS_PATH] [CONTEXT]"
SCOPES = ("none", "datasets", "instrument")  # each covers the references of those before it
RECORD = os.path.join("config", "jwst", "niriss-pipe-contexts.json")
SUBDIR_MODE = os.path.join("config", "jwst", "ref_cache_subdir_mode")
SERVER_CONFIG = os.path.join("config", "jwst", "server_config")
INSTRUMENTS = ("fgs", "miri", "nircam", "niriss", "nirspec", "system")  # crds.jwst's folders
FLAT_GUESS_OVER = 20  # crds: no subdir mode file and more entries than this means 'flat'
SELECTOR = re.compile(r"^selector\s*=", re.MULTILINE)
STRING = re.compile(r"'([^'\n]*)'|\"([^\"\n]*)\"")
# A quoted reference name (crds.jwst's reference EXTENSIONS): in an rmap's selector these are
# exactly the choices; match keys and UseAfter dates never have that shape.
REFERENCE = re.compile(r"""['"]([A-Za-z0-9][\w.\-]*\.(?:fits|asdf|json|yaml))['"]""")


def _selector_strings(text):
    """String literals of the selector (headers name parents in 'derived_from')."""
    match = SELECTOR.search(text)
    body = text[match.end():] if match else ""
    return [single or double for single, double in STRING.findall(body)]


def _referenced(text, ext):
    """Mapping names of type `ext` that a mapping's selector names."""
    suffix = "." + ext
    return sorted({s for s in _selector_strings(text) if s.endswith(suffix) and "/" not in s})


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def _mapdir(crds_path):
    return os.path.join(crds_path, "mappings", "jwst")


def missing_mappings(crds_path, context):
    """Mappings of `context`'s closure absent from the cache; a missing imap hides its rmaps."""
    mapdir = _mapdir(crds_path)
    pmap = _read(os.path.join(mapdir, context))
    if pmap is None:
        return [context]
    missing = []
    for imap_name in _referenced(pmap, "imap"):
        imap = _read(os.path.join(mapdir, imap_name))
        if imap is None:
            missing.append(imap_name)
            continue
        missing += [rmap for rmap in _referenced(imap, "rmap")
                    if not os.path.isfile(os.path.join(mapdir, rmap))]
    return missing


def instrument_imap(crds_path, context, instrument):
    """The imap `context` selects for `instrument`, or None when the pmap is not cached."""
    pmap = _read(os.path.join(_mapdir(crds_path), context))
    match = SELECTOR.search(pmap or "")
    if not match:
        return None
    key = re.escape(instrument.upper())
    found = re.search(r"""['"]""" + key + r"""['"]\s*:\s*['"]([\w.\-]+\.imap)['"]""",
                      pmap[match.end():], re.IGNORECASE)
    return found.group(1) if found else None


def rmap_references(crds_path, context, instrument="niriss"):
    """Every reference name the cached rmaps of `instrument` select (N/A and OMIT are not
    names), as ``imap.reference_names()`` computes it; None when the imap is not cached."""
    mapdir = _mapdir(crds_path)
    imap_name = instrument_imap(crds_path, context, instrument)
    imap = _read(os.path.join(mapdir, imap_name)) if imap_name else None
    if imap is None:
        return None
    names = set()
    for rmap_name in _referenced(imap, "rmap"):
        text = _read(os.path.join(mapdir, rmap_name))
        match = SELECTOR.search(text or "")
        if match:
            names.update(REFERENCE.findall(text, match.end()))
    return sorted(names)


def read_records(crds_path):
    """{context: record} the syncs wrote (written whole by rename: never half a file)."""
    text = _read(os.path.join(crds_path, RECORD))
    try:
        records = json.loads(text) if text else {}
    except ValueError:
        return {}
    return records if isinstance(records, dict) else {}


def subdir_mode(crds_path):
    """'instrument' or 'flat': the cache's config, else the crds client's own guess."""
    text = _read(os.path.join(crds_path, SUBDIR_MODE))
    if text is not None:
        return text.strip()
    try:
        entries = [n for n in os.listdir(os.path.join(crds_path, "references", "jwst"))
                   if not n.startswith(".")]
    except OSError:
        entries = []
    return "flat" if len(entries) > FLAT_GUESS_OVER else "instrument"


def _files_in(folder):
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries if not e.name.startswith(".") and e.is_file()}
    except OSError:
        return set()


def missing_references(crds_path, names, instrument="niriss"):
    """The `names` the crds client would not find: in 'instrument' mode it looks in every
    instrument folder (the instrument's own first), in 'flat' mode in references/jwst."""
    root = os.path.join(crds_path, "references", "jwst")
    if subdir_mode(crds_path) == "flat":
        present = _files_in(root)
        return [n for n in names if n not in present]
    present = _files_in(os.path.join(root, instrument))
    others = [os.path.join(root, i) for i in INSTRUMENTS if i != instrument]
    return [n for n in names if n not in present
            and not any(os.path.isfile(os.path.join(folder, n)) for folder in others)]


class Status:
    """What a context needs from a cache and what of it is missing."""

    def __init__(self, crds_path, context, scope):
        self.crds_path, self.context, self.scope = crds_path, context, scope
        self.problems = []  # cache-wide, e.g. no server_config
        self.missing_mappings = []
        self.missing_references = []
        self.references = None  # how many were checked; None: not checked (see `unchecked`)
        self.source = ""  # where the needed names came from
        self.unchecked = ""  # why references were not checked
        self.record = None
        self.imap = None

    @property
    def complete(self):
        return not (self.problems or self.missing_mappings or self.missing_references)

    def missing_text(self):
        """'2 mappings missing: a, b; 1 reference missing: c' (the first few of each)."""
        parts = list(self.problems)
        for items, noun in ((self.missing_mappings, "mapping"),
                            (self.missing_references, "reference")):
            if items:
                shown = ", ".join(items[:LIST_AT_MOST]) + (
                    ", ..." if len(items) > LIST_AT_MOST else "")
                plural = "" if len(items) == 1 else "s"
                parts.append(f"{len(items)} {noun}{plural} missing: {shown}")
        return "; ".join(parts)

    def sync_command(self, cache="<host dir>"):
        """The niriss-pipe command that completes the cache."""
        command = f"python build.py sync --context {self.context} --cache {cache}"
        if self.scope == "datasets":
            command += " --scope datasets --datasets <exposures>"
        elif self.scope == "none":
            command += " --scope none"
        return command


def check(crds_path, context, scope=None, instrument="niriss"):
    """Status of `context` in the cache at `crds_path`. `scope` None: the record's, else
    'instrument' (what host commands do); the image passes its own crds.scope."""
    record = read_records(crds_path).get(context)
    record = record if isinstance(record, dict) else None
    scope = scope or (record or {}).get("scope")
    status = Status(crds_path, context, scope if scope in SCOPES else "instrument")
    status.record = record
    if not os.path.isfile(os.path.join(crds_path, SERVER_CONFIG)):
        status.problems.append("config/jwst/server_config is missing")
    missing = missing_mappings(crds_path, context)
    mapdir = _mapdir(crds_path)
    unreadable = [m for m in missing if os.path.exists(os.path.join(mapdir, m))]
    if unreadable:  # there, but a sync cannot help: say so
        status.problems.append(f"not readable by uid {os.getuid()}: {', '.join(unreadable)}")
    status.missing_mappings = [m for m in missing if m not in unreadable]
    status.imap = instrument_imap(crds_path, context, instrument)
    names = _needed_references(status, record, instrument)
    if names is not None:
        status.references = len(names)
        status.missing_references = missing_references(crds_path, names, instrument)
    return status


def _covers(have, want):
    return have in SCOPES and SCOPES.index(have) >= SCOPES.index(want)


def _needed_references(status, record, instrument):
    """The reference names to check, setting where they came from; None when unknown."""
    if status.scope == "none":
        status.unchecked = "scope none: the context is used for its mappings only"
        return None
    if (record and _covers(record.get("scope"), status.scope)
            and record.get("instrument", instrument) == instrument
            and isinstance(record.get("references"), list)):
        status.source = f"the sync record ({record.get('scope')})"
        return [str(n) for n in record["references"]]
    if status.scope == "instrument":
        names = rmap_references(status.crds_path, status.context, instrument)
        if names is None:
            status.unchecked = f"the {instrument.upper()} imap of {status.context} is not cached"
            return None
        status.source = f"the cached {instrument.upper()} rmaps"
        return names
    status.unchecked = ("scope datasets, and no sync record says which references the "
                        "datasets select (a sync with --datasets writes it)")
    return None


def problem_report(crds_path, context, scope=None):
    """One paragraph describing what is missing and how to fix it, or None when complete."""
    unreadable = _unreadable(crds_path)
    return unreadable or _report(check(crds_path, context, scope))


def _unreadable(crds_path):
    if os.path.isdir(crds_path) and not os.access(crds_path, os.R_OK | os.X_OK):
        return (f"niriss-pipe: the CRDS cache at {crds_path} is not readable by uid "
                f"{os.getuid()}. Make it readable on the host (chmod -R a+rX <host dir>) or run "
                "the container with --user set to its owner.")
    return None


def _report(status):
    if status.complete:
        return None
    context = status.context
    alternative = "CRDS_PATH=<host dir> CRDS_SERVER_URL=https://jwst-crds.stsci.edu crds sync "
    if status.missing_references and status.imap:
        alternative += f"--contexts {context} {status.imap} --fetch-references"
    else:
        alternative += f"--contexts {context}"
    return (f"niriss-pipe: the CRDS cache at {status.crds_path} cannot serve context {context} "
            f"offline ({status.missing_text()}). The image has no network access to fetch them. "
            f"Sync it on a machine with network: `{status.sync_command()}` (niriss-pipe), or "
            f"`{alternative}`, then mount it with `-v <host dir>:/crds:ro`.")


def success_line(status):
    """What a complete check says when asked (check-cache); nothing is said before `strun`."""
    if status.references is None:
        return (f"niriss-pipe: the CRDS cache at {status.crds_path} has every mapping of "
                f"{status.context}; references not checked ({status.unchecked}).")
    return (f"niriss-pipe: the CRDS cache at {status.crds_path} serves {status.context} offline: "
            f"every mapping and all {status.references} references (scope {status.scope}, named "
            f"by {status.source}) are present.")


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    quiet = "--quiet" in args
    args = [a for a in args if a != "--quiet"]
    if len(args) > 2 or any(a.startswith("-") for a in args):
        print(USAGE, file=sys.stderr)
        return EXIT_USAGE
    crds_path = args[0] if args else os.environ.get("CRDS_PATH", "")
    context = args[1] if len(args) > 1 else os.environ.get("CRDS_CONTEXT", "")
    scope = os.environ.get(SCOPE_ENV) or "instrument"
    if not crds_path or not context.endswith(".pmap"):
        print("cachecheck: need a CRDS_PATH and a CRDS_CONTEXT naming a .pmap "
              f"(got {crds_path or 'none'!r}, {context or 'none'!r})", file=sys.stderr)
        return EXIT_USAGE
    if scope not in SCOPES:
        print(f"cachecheck: {SCOPE_ENV}={scope!r} is not one of {', '.join(SCOPES)}",
              file=sys.stderr)
        return EXIT_USAGE
    unreadable = _unreadable(crds_path)
    status = None if unreadable else check(crds_path, os.path.basename(context), scope)
    report = unreadable or _report(status)
    if report is not None:
        print(report, file=sys.stderr)
        return EXIT_INCOMPLETE
    if not quiet:
        print(success_line(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
