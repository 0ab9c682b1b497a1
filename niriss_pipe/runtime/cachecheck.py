"""Fast pre-flight check that a mounted CRDS cache can serve a context offline.

It runs before every `strun` in the image entrypoint, so it must not import
crds (seconds) and must not stat thousands of references: it only checks the
cached server config and the context's mapping closure (pmap -> imaps -> rmaps),
which is what the CRDS client loads first and fails on most confusingly.
"""

import os
import re
import sys

EXIT_INCOMPLETE = 3
EXIT_USAGE = 2
LIST_AT_MOST = 5
USAGE = "usage: python -m niriss_pipe.runtime.cachecheck [CRDS_PATH] [CONTEXT]"
SELECTOR = re.compile(r"^selector\s*=", re.MULTILINE)


def _referenced(text, ext):
    """Mapping names of type `ext` in the selector (headers name parents in 'derived_from')."""
    match = SELECTOR.search(text)
    body = text[match.end():] if match else ""
    return sorted(set(re.findall(r"['\"]([\w.\-]+\." + ext + r")['\"]", body)))


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def missing_mappings(crds_path, context):
    """Mappings of `context`'s closure absent from the cache; a missing imap hides its rmaps."""
    mapdir = os.path.join(crds_path, "mappings", "jwst")
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


def problem_report(crds_path, context):
    """One paragraph describing what is missing and how to fix it, or None when complete."""
    if os.path.isdir(crds_path) and not os.access(crds_path, os.R_OK | os.X_OK):
        return (f"niriss-pipe: the CRDS cache at {crds_path} is not readable by uid {os.getuid()}. "
                f"Make it readable on the host (chmod -R a+rX <host dir>) or run the container "
                f"with --user set to its owner.")
    problems = []
    if not os.path.isfile(os.path.join(crds_path, "config", "jwst", "server_config")):
        problems.append("config/jwst/server_config is missing")
    missing = missing_mappings(crds_path, context)
    if missing:
        shown = ", ".join(missing[:LIST_AT_MOST]) + (", ..." if len(missing) > LIST_AT_MOST else "")
        noun = "mapping" if len(missing) == 1 else "mappings"
        problems.append(f"{len(missing)} {noun} missing: {shown}")
    if not problems:
        return None
    return (f"niriss-pipe: the CRDS cache at {crds_path} cannot serve context {context} offline "
            f"({'; '.join(problems)}). The image has no network access to fetch them. Sync it on "
            f"a machine with network: `python build.py sync --context {context} --cache <host "
            f"dir>` (niriss-pipe), or `CRDS_PATH=<host dir> "
            f"CRDS_SERVER_URL=https://jwst-crds.stsci.edu crds sync --contexts {context}`, then "
            f"mount it with `-v <host dir>:/crds:ro`.")


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 2 or any(a.startswith("-") for a in args):
        print(USAGE, file=sys.stderr)
        return EXIT_USAGE
    crds_path = args[0] if args else os.environ.get("CRDS_PATH", "")
    context = args[1] if len(args) > 1 else os.environ.get("CRDS_CONTEXT", "")
    if not crds_path or not context.endswith(".pmap"):
        print("cachecheck: need a CRDS_PATH and a CRDS_CONTEXT naming a .pmap "
              f"(got {crds_path or 'none'!r}, {context or 'none'!r})", file=sys.stderr)
        return EXIT_USAGE
    report = problem_report(crds_path, os.path.basename(context))
    if report is None:
        return 0
    print(report, file=sys.stderr)
    return EXIT_INCOMPLETE


if __name__ == "__main__":
    sys.exit(main())
