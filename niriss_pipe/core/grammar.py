"""Grammars of the places user values land: Docker references, Debian package names, PEP 508
requirements, URLs, git refs, SLURM values, bind-mount paths, CRDS context names.

Every check matches the *whole* string with ASCII-only classes (``re.fullmatch`` and
``re.ASCII``: no ``$`` that lets a trailing newline through, no ``\\d`` that takes Arabic-Indic
digits). Each ``is_*`` returns a bool; callers raise the error that names their field.
"""

from __future__ import annotations

import datetime as dt
import re

A = re.ASCII

# -- CRDS ------------------------------------------------------------------------------------
PMAP = re.compile(r"jwst_([0-9]{4})\.pmap", A)
PMAP_STEM = re.compile(r"jwst_([0-9]{4})(?:\.pmap)?", A)  # with or without the suffix
NIRISS_IMAP = re.compile(r"jwst_niriss_([0-9]{4})\.imap", A)
# A reference file's name in a CRDS cache (jwst_niriss_dark_0017.fits, jwst_pars-...asdf): one
# path component, so a product's R_* keyword can never name a path outside the cache.
CRDS_REFERENCE = re.compile(r"[a-z][a-z0-9_.-]{0,126}\.(?:fits|asdf|json|yaml)", A)
# A product's CAL_VER: a PEP 440 version as jwst writes it (3.0.0, 1.12.6.dev3+g1a2b3c4).
CAL_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*(?:(?:a|b|rc|\.post|\.dev)[0-9]+)*"
                         r"(?:\+[A-Za-z0-9.]+)?", A)

# -- versions ----------------------------------------------------------------------------------
DOTTED_VERSION = re.compile(r"[0-9]+(?:\.[0-9]+)*", A)
PYTHON_VERSION = re.compile(r"3\.[0-9]{1,2}(?:\.[0-9]{1,3})?", A)

# -- Docker image references (distribution/reference's grammar) ---------------------------------
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_REMOTE_NAME = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
REPOSITORY = re.compile(rf"(?:{_DOMAIN}/)?{_REMOTE_NAME}", A)
TAG = re.compile(_TAG, A)
REFERENCE = re.compile(rf"(?P<name>(?:{_DOMAIN}/)?{_REMOTE_NAME})(?::(?P<tag>{_TAG}))?"
                       rf"(?:@(?P<digest>{_DIGEST}))?", A)
NAME_MAX = 255  # distribution/reference: NameTotalLengthMax

# -- Debian packages (Debian policy 5.6.1 and 5.6.12) ----------------------------------------
DEBIAN_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+"
                            r"(?:=(?:[0-9]+:)?[0-9][A-Za-z0-9.+~-]*(?::[A-Za-z0-9.+~-]+)*)?", A)

# -- URLs: RFC 3986 characters less those that quote or expand somewhere ($ ' " ` \ and space) ---
URL = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<rest>[A-Za-z0-9._~:/?#\[\]@!&()*+,;=%-]+)",
                 A)

# -- wheels (PEP 427 file names, as an index or a wheelhouse names them) --------------------------
# name-version(-build)?-python-abi-platform.whl, one path component of letters, digits and
# ``_ . + !``: what lands in a build context path and a Dockerfile line, never ``/`` or a quote.
WHEEL_FILENAME = re.compile(r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._]*[A-Za-z0-9])?)"
                            r"-(?P<version>[A-Za-z0-9_.!+]+)(?:-(?P<build>[0-9][A-Za-z0-9_.]*))?"
                            r"-(?P<python>[A-Za-z0-9_.]+)-(?P<abi>[A-Za-z0-9_.]+)"
                            r"-(?P<platform>[A-Za-z0-9_.]+)\.whl", A)
SHA256_HEX = re.compile(r"[0-9a-f]{64}", A)

# -- git refs (git check-ref-format) ------------------------------------------------------------
IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}", A)  # an engine's image id, as FROM takes it
FULL_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}", A)
_REF_COMPONENT = r"[A-Za-z0-9_+=][A-Za-z0-9_+=.-]*"
GIT_REF = re.compile(rf"{_REF_COMPONENT}(?:/{_REF_COMPONENT})*", A)
# Names that are branches (or move like them) in every repository that has them.
MOVING_REFS = frozenset({"HEAD", "FETCH_HEAD", "ORIG_HEAD", "main", "master", "develop",
                         "development", "dev", "trunk", "latest", "stable", "nightly"})

# -- SLURM ---------------------------------------------------------------------------------------
SLURM_NAME = re.compile(r"[A-Za-z0-9_.+-]+", A)  # partition, account, qos, job name
SLURM_NAMES = re.compile(r"[A-Za-z0-9_.+-]+(?:,[A-Za-z0-9_.+-]+)*", A)  # a list, e.g. partitions
SLURM_NAME_MAX = 128  # ours: SLURM sets none this low, and no real name comes near it
_MIN, _SS, _DAYS, _HOURS = "[0-9]{1,8}", "[0-9]{2}", "[0-9]{1,5}", "[0-9]{1,2}"
SLURM_TIME = re.compile(rf"{_MIN}|{_MIN}:{_SS}|{_MIN}:{_SS}:{_SS}|{_DAYS}-{_HOURS}"
                        rf"|{_DAYS}-{_HOURS}:{_SS}|{_DAYS}-{_HOURS}:{_SS}:{_SS}"
                        r"|UNLIMITED|INFINITE", A)
SLURM_MEMORY = re.compile(r"[0-9]{1,12}[KMGT]?", A)
COUNT = re.compile(r"[0-9]{1,6}", A)  # --cpus, --throttle, -j: ASCII digits, never '１０'
# One word of an #SBATCH line as sbatch's get_argument reads it, with nothing it would split,
# unquote, unescape or cut as a comment (space, quotes, backslash, '#'), and nothing a reader
# might expect a shell to expand ($, backticks, ~): letters, digits and this punctuation.
SBATCH_PUNCTUATION = "_ . , : = + / @ % * ! | & [ ] -"
SBATCH_WORD = re.compile(r"[A-Za-z0-9_.,:=+/@%*!|&\[\]-]+", A)
SBATCH_OPTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*", A)
# The batch folder lands unquoted in '#SBATCH --output=FOLDER/logs/slurm/%A_%a.out' and in bind
# mounts: an absolute path of POSIX portable file-name characters (and + @), nothing else.
SBATCH_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*", A)

# -- days ----------------------------------------------------------------------------------------
# A lock's resolution day (uv --exclude-newer), as the lock records it and stamps.build_epoch
# reads it back: a calendar day, never a time, a time zone or a relative duration ('P3D').
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", A)

# -- identifiers ---------------------------------------------------------------------------------
DOTTED_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*", A)

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What cannot be one line of a generated text file: C0 and C1 controls, Unicode line and
# paragraph separators, and lone surrogates (bytes that were not UTF-8, surrogate-escaped).
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Characters a bind-mount source cannot hold: ':' splits docker -v, apptainer --bind and ch-run
# --bind; ',' splits apptainer's bind list and docker --mount.
_MOUNT_BREAKERS = re.compile(r"[:,]")
_NAMED = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab", "\x1b": "an escape",
          " ": "a space", "'": "a quote (')", '"': 'a quote (")', "\\": "a backslash"}


def full(pattern: re.Pattern, value) -> bool:
    """True when ``value`` is a str and ``pattern`` matches all of it."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def has_control(value: str) -> bool:
    """A newline, tab, escape or other control character anywhere in ``value``."""
    return bool(_CONTROL.search(value))


def is_day(value) -> bool:
    """A calendar day written YYYY-MM-DD in ASCII digits (2024-06-01; not 2024-02-30)."""
    if not full(DAY, value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_pmap(value) -> bool:
    return full(PMAP, value)


def is_crds_reference(value) -> bool:
    return full(CRDS_REFERENCE, value) and ".." not in value


def is_cal_version(value) -> bool:
    return full(CAL_VERSION, value) and len(value) <= 64


def normalise_pmap(value: str) -> str | None:
    """``jwst_1584`` or ``jwst_1584.pmap`` -> ``jwst_1584.pmap``; None when neither."""
    match = PMAP_STEM.fullmatch(value) if isinstance(value, str) else None
    return f"jwst_{match.group(1)}.pmap" if match else None


def is_repository(value) -> bool:
    """A Docker repository name (``niriss-pipe``, ``registry:5000/team/niriss``)."""
    return full(REPOSITORY, value) and len(value) <= NAME_MAX


def is_tag(value) -> bool:
    return full(TAG, value)


def is_reference(value) -> bool:
    """A Docker image reference: ``name[:tag][@digest]``, the name at most 255 characters."""
    match = REFERENCE.fullmatch(value) if isinstance(value, str) else None
    return match is not None and len(match.group("name")) <= NAME_MAX


def is_pinned_reference(value) -> bool:
    match = REFERENCE.fullmatch(value) if isinstance(value, str) else None
    return match is not None and bool(match.group("digest"))


def is_debian_package(value) -> bool:
    return full(DEBIAN_PACKAGE, value)


def pip_requirement_problem(value) -> str | None:
    """Why ``value`` is not one PEP 508 requirement (None when it is), via ``packaging``."""
    if not isinstance(value, str) or not value.strip():
        return "it is empty"
    if has_control(value):
        return "it holds a control character (a newline, tab or escape)"
    if value != value.strip():
        return "it has leading or trailing spaces"
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(value)
    except InvalidRequirement as exc:
        return str(exc).splitlines()[0]
    return None


def is_url(value, schemes: tuple[str, ...] = ("http", "https")) -> bool:
    match = URL.fullmatch(value) if isinstance(value, str) else None
    return match is not None and match.group("scheme") in schemes


def wheel_filename(value):
    """The parts of a wheel's file name (``name``, ``version``, ``python``, ``abi``,
    ``platform``), or None when it is not one whole, safe, ASCII wheel file name."""
    if not isinstance(value, str) or len(value) > 255:
        return None
    match = WHEEL_FILENAME.fullmatch(value)
    return match.groupdict() if match else None


def is_git_ref(value) -> bool:
    """A name ``git check-ref-format`` accepts (one level or more), or a commit id."""
    if not full(GIT_REF, value):
        return False
    return not (".." in value or value.endswith((".", ".lock")) or "@{" in value
                or value == "@" or "/." in value)


def is_image_id(value) -> bool:
    return full(IMAGE_ID, value)


def is_full_commit(value) -> bool:
    return full(FULL_COMMIT, value)


def is_moving_ref(value: str) -> bool:
    """A branch-like name that is never a pin: HEAD, main, refs/heads/..., origin/..."""
    return (value in MOVING_REFS or value.startswith(("refs/heads/", "refs/remotes/", "origin/"))
            or value.endswith("HEAD"))


def _char(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    if "\ud800" <= char <= "\udfff":
        return "a byte that is not UTF-8"
    return f"'{char}'" if char.isprintable() else f"the control character {char!r}"


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be written as (part of) one line of a text file: 'it holds a
    newline', ... (None when it can)."""
    found = _NOT_TEXT.search(value)
    return f"it holds {_char(found.group())}" if found else None


def one_line(value) -> str:
    """``value`` as one line whatever it holds: what a template puts in a comment line, where
    a line break would start a command. Checks refuse such values first; this is the backstop."""
    return _NOT_TEXT.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace")
                         .decode("ascii"), str(value))


def mount_source_problem(path: str) -> str | None:
    """Why a host path cannot be a bind-mount source for every runtime (None when it can)."""
    problem = text_problem(path)
    if problem:
        return problem
    found = _MOUNT_BREAKERS.search(path)
    if found is None:
        return None
    return f"it holds {_char(found.group())}, which breaks the bind-mount syntax of docker, " \
           "podman, ch-run or apptainer"


def sbatch_word_problem(word: str) -> str | None:
    """Why ``word`` cannot be one word of an #SBATCH line as written (None when it can)."""
    problem = text_problem(word)
    if problem:
        return problem.replace("it holds", "holds")
    for char in word:
        if not SBATCH_WORD.fullmatch(char):
            return f"holds {_char(char)}"
    return None


def sbatch_path_problem(path: str) -> str | None:
    """Why ``path`` cannot follow ``#SBATCH --output=`` and be a bind-mount source."""
    problem = text_problem(path)
    if problem:
        return problem
    if not path.startswith("/"):
        return "it is not absolute"
    for char in path:
        if not SBATCH_PATH.fullmatch("/" + char):
            return f"it holds {_char(char)}"
    return None


def is_slurm_name(value, *, many: bool = False) -> bool:
    """A partition, account, qos or job name (``many``: a comma-separated list of them)."""
    return full(SLURM_NAMES if many else SLURM_NAME, value) and len(value) <= SLURM_NAME_MAX
