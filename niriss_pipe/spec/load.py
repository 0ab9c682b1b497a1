"""Spec layer: load an image spec (``images/*.yaml``) and validate all of it before any build.

Every problem is a ``SpecError`` naming the file, the field and the fix, so a
user never meets a traceback or a half-built image because of a typo.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from niriss_pipe.core import errors, grammar
from niriss_pipe.core.errors import SpecError, file_problem, shown_path
from niriss_pipe.spec import catalog
from niriss_pipe.spec.model import (
    DEFAULT_MIRROR,
    MANAGERS,
    REFERENCE_MODES,
    REFERENCE_SCOPES,
    SUITE_PYTHON,
    BaseSpec,
    ImageSpec,
    JwstSpec,
)

PMAP_RE = re.compile(r"\Ajwst_([0-9]{4})\.pmap\Z", re.ASCII)  # whole string, ASCII digits
SPEC_FILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*\.ya?ml", re.ASCII)
GIT_SCHEMES = ("https", "http", "ssh", "git", "file")
NAME_MAX = 200  # a repository name leaves room for ':' and a 128-character tag within 255
MAX_DEPTH = 32  # levels of YAML nesting read at all; a spec's deepest field is 3 levels down


ALLOWED_KEYS: dict[str, tuple[str, ...]] = {
    "": ("name", "crds", "jwst", "python", "base", "packages"),
    "crds": ("context", "niriss_imap", "references", "scope", "datasets"),
    "jwst": ("version", "git", "ref"),
    "python": ("version", "manager"),
    "base": ("suite", "image", "mirror", "variant"),
    "packages": ("apt", "pip"),
}


def load_spec(path: str | Path) -> ImageSpec:
    """Read and validate ``path``; raise SpecError on the first problem found."""
    path = Path(path)
    shown = shown_path(path)
    problem = file_problem(path)
    if problem == "is a folder":
        raise SpecError(shown, "", "is a folder, not an image spec.",
                        "give the path of a spec file, e.g. images/default.yaml.")
    if problem and "does not exist" in problem:  # or is a link to nothing
        hint = ", ".join(sorted(p.name for p in Path("images").glob("*.yaml"))) or "none"
        what = "the spec file does not exist" if problem == "does not exist" else problem
        raise SpecError(shown, "", f"{what}.",
                        f"give the path of an image spec (specs in images/: {hint}).")
    if problem and problem.startswith("cannot"):  # EACCES on a folder of it, a long name
        raise SpecError(shown, "", f"{problem}.",
                        "check the path and its folders' permissions (the spec must be a file "
                        "readable by you).")
    if problem:  # a FIFO, a device, a symlink loop
        raise SpecError(shown, "", f"{problem}.",
                        "give the path of a spec file (a regular YAML file), e.g. "
                        "images/default.yaml.")
    if not SPEC_FILE_RE.fullmatch(path.name):
        raise SpecError(shown, "", f"the file name {path.name!r} cannot name an image's lock "
                        "and labels (they are derived from it).",
                        "rename it with letters, digits and . _ + - only, ending in .yaml "
                        "(e.g. images/jwst_1584.yaml).")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(shown, "", f"cannot be read ({exc.strerror or exc}).",
                        "check the file's permissions (it must be readable by you).") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SpecError(shown, "", f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at line "
                        f"{line}).", "save the spec as UTF-8 (plain ASCII is enough).") from None
    try:
        _refuse_aliases_and_depth(text, shown)  # before anything walks the tree
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
        duplicate = _duplicate_key(tree)
        data = yaml.safe_load(text)
        written = _scalar_texts(tree)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(shown, "", f"is not valid YAML{at} ({getattr(exc, 'problem', exc)}).",
                        "fix the YAML syntax (indentation, quotes, colons).") from None
    except RecursionError:  # a backstop: the depth check above keeps yaml's recursion short
        raise SpecError(shown, "", "nests too deeply for YAML to read.",
                        "write the spec as sections of 'key: value' lines, as "
                        "images/default.yaml does.") from None
    if duplicate:
        field_, first, line = duplicate
        raise SpecError(shown, field_, f"is given twice (lines {first} and {line}).",
                        "keep one of them: YAML would silently use the last.")
    return validate(data, shown, path, written=written)


def _refuse_aliases_and_depth(text: str, shown: str) -> None:
    """Refuse YAML anchors and aliases, and nesting deeper than ``MAX_DEPTH``, from yaml's
    event stream (flat: no recursion, no node graph). A spec never needs an alias, and one
    makes the composed tree a graph: a cycle (``&a {x: *a}``) or aliases of aliases (a few
    hundred bytes that expand to billions of nodes) would recurse or run forever in every
    walk of it. yaml's composer recurses once per level, so deep nesting ends in a
    RecursionError."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        line = event.start_mark.line + 1 if event.start_mark else None
        at = f" at line {line}" if line else ""
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            used = ("*" if isinstance(event, yaml.AliasEvent) else "&") + str(event.anchor)
            raise SpecError(shown, "", f"uses the YAML {'alias' if used[0] == '*' else 'anchor'}"
                            f" {errors.shown(used)}{at}: a spec takes no anchors (&name), "
                            "aliases (*name) or merges (<<: *name).",
                            "write each value out in full where it is used, and remove the "
                            "anchors and aliases.")
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise SpecError(shown, "", f"nests deeper than {MAX_DEPTH} levels{at}: a "
                                "spec's fields are at most 3 levels deep.",
                                "write the spec as sections of 'key: value' lines, as "
                                "images/default.yaml does.")
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1


def _scalar_texts(node, where: str = "") -> dict[str, str]:
    """``{dotted field: the scalar as written}`` of a composed YAML tree: what the user typed
    (``3.10``) where the parsed value lost it (``3.1``)."""
    found: dict[str, str] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            dotted = f"{where}.{key_node.value}" if where else str(key_node.value)
            if isinstance(value_node, yaml.ScalarNode):
                found[dotted] = value_node.value
            else:
                found.update(_scalar_texts(value_node, dotted))
    return found


def _duplicate_key(node, where: str = "") -> tuple[str, int, int] | None:
    """The first key given twice in one mapping of a composed YAML tree: (dotted field, first
    line, second line). YAML itself keeps the last silently, so a second ``context:`` would
    override the one the user reads."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            dotted = f"{where}.{key}" if where else key
            if key in seen:
                return dotted, seen[key], key_node.start_mark.line + 1
            seen[key] = key_node.start_mark.line + 1
            found = _duplicate_key(value_node, dotted)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _duplicate_key(item, where)
            if found:
                return found
    return None


def validate(data: Any, shown: str, path: Path | None = None,
             written: dict[str, str] | None = None) -> ImageSpec:
    """Validate parsed spec data; ``shown`` is the file name used in messages, ``written``
    the scalars as the file spells them (for messages). Every string that reaches the
    Dockerfile, the lock or a label is checked against the grammar of where it lands (see
    ``grammar``), whole-string."""
    v = _Validator(shown, written or {})
    top = v.mapping(data, "")
    name = v.string(top, "name", default="niriss-pipe")
    if not grammar.is_repository(name) or len(name) > NAME_MAX or ":" in name:
        v.fail("name", f"{name!r} is not a valid image repository name.",
               "use lower-case letters, digits and . _ - / (for example 'niriss-pipe'), "
               f"at most {NAME_MAX} characters.")

    crds = v.mapping(v.required(top, "crds"), "crds")
    context = v.string(crds, "context", required=True, where="crds.context")
    context = grammar.normalise_pmap(context) or context  # jwst_1584 is jwst_1584.pmap
    if not grammar.is_pmap(context):
        v.fail("crds.context", f"{context!r} is not a CRDS pipeline context name.",
               "write a JWST pmap name like 'jwst_1584.pmap' (four digits, lower case).")
    imap = v.string(crds, "niriss_imap", where="crds.niriss_imap")
    if imap is not None and not grammar.full(grammar.NIRISS_IMAP, imap):
        v.fail("crds.niriss_imap", f"{imap!r} is not a NIRISS instrument context name.",
               "write a name like 'jwst_niriss_0123.imap', or leave the field out to derive it "
               "from the pmap.")
    references = v.choice(crds, "references", REFERENCE_MODES, default="mount",
                          where="crds.references")
    scope = v.choice(crds, "scope", REFERENCE_SCOPES, default="instrument", where="crds.scope")
    datasets = _datasets(v, crds, scope, (path or Path(shown)).parent)

    jwst = _jwst(v, v.mapping(v.required(top, "jwst"), "jwst"))
    python = v.mapping(v.required(top, "python"), "python")
    manager = v.choice(python, "manager", MANAGERS, default="venv", where="python.manager")
    py_version = v.string(python, "version", required=True, where="python.version")
    if not grammar.full(grammar.PYTHON_VERSION, py_version):
        v.fail("python.version", f"{py_version!r} is not a Python version.",
               "write it as a quoted string like \"3.11\" (YAML reads 3.10 as 3.1).")

    base = _base(v, v.mapping(v.required(top, "base"), "base"))
    _check_python(v, jwst, py_version, manager, base)

    packages = v.mapping(top.get("packages", {}), "packages")
    apt = v.string_list(packages, "apt", grammar.is_debian_package,
                        "a Debian package name like 'gcc' or 'gcc=4:12.2.0-3'")
    pip = v.string_list(packages, "pip", lambda item: grammar.pip_requirement_problem(item)
                        is None, "a requirement (PEP 508) like 'astroquery==0.4.7'",
                        why=grammar.pip_requirement_problem)
    return ImageSpec(path=path or Path(shown), name=name, context=context, niriss_imap=imap,
                     references=references, jwst=jwst, python_version=py_version,
                     manager=manager, base=base, apt_packages=tuple(apt),
                     pip_packages=tuple(pip), scope=scope, datasets=datasets,
                     warnings=tuple(v.warnings))


def _datasets(v: _Validator, crds: dict, scope: str, folder: Path) -> tuple[Path, ...]:
    raw = crds.get("datasets") or []
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        v.fail("crds.datasets", "must be a list of file or folder paths.",
               "write it as a YAML list: datasets: [data/jw..._uncal.fits, data/].")
    if scope == "datasets" and not raw:
        v.fail("crds.datasets", "is empty, but crds.scope is 'datasets'.",
               "list the exposures (or folders of *_uncal.fits) whose references to sync.")
    if raw and scope != "datasets":
        v.fail("crds.datasets", f"is only used with scope 'datasets' (scope is '{scope}').",
               "set crds.scope: datasets, or remove crds.datasets.")
    paths = []
    for item in raw:
        path = (folder / item) if not Path(item).is_absolute() else Path(item)
        if not path.exists():
            v.fail("crds.datasets", f"names {item}, which does not exist (looked for {path}).",
                   "fix the path; relative paths are read from the spec's folder.")
        paths.append(path)
    return tuple(paths)


def _jwst(v: _Validator, jwst: dict) -> JwstSpec:
    version = v.string(jwst, "version", where="jwst.version")
    git = v.string(jwst, "git", where="jwst.git")
    ref = v.string(jwst, "ref", where="jwst.ref")
    if version and (git or ref):
        v.fail("jwst", "gives both a PyPI 'version' and a 'git' source.",
               "keep either 'version' or 'git' with 'ref'.")
    if version:
        if not grammar.full(grammar.DOTTED_VERSION, version):
            v.fail("jwst.version", f"{version!r} is not a release number.",
                   "write a PyPI release like \"3.0.0\" (quoted), or use 'git' and 'ref'.")
        if catalog.release(version) is None:
            v.warnings.append(f"jwst {version} is not in the release catalog: its Python "
                              "support and CRDS context could not be checked.")
        return JwstSpec(version=version)
    if not git:
        v.fail("jwst", "names no jwst to install.",
               "add 'version: \"3.0.0\"' (PyPI) or 'git: <url>' with 'ref: <tag or commit>'.")
    if git.startswith("git@") and not grammar.has_control(git):
        host, _, repo = git[len("git@"):].partition(":")
        v.fail("jwst.git", f"{git!r} is an scp-style address, which pip cannot install from.",
               f"write it as a URL: 'ssh://git@{host}/{repo}'.")
    if not grammar.is_url(git.removeprefix("git+"), GIT_SCHEMES):
        v.fail("jwst.git", f"{git!r} is not a git URL.",
               "write e.g. 'https://github.com/spacetelescope/jwst' (schemes: "
               f"{', '.join(GIT_SCHEMES)}; no spaces, quotes or '$').")
    if not ref:
        v.fail("jwst.ref", "is missing: a git source must be pinned.",
               "add 'ref:' with a tag (e.g. '0.14.2') or a full 40-character commit hash.")
    if not grammar.is_git_ref(ref):
        v.fail("jwst.ref", f"{ref!r} is not a git tag or commit.",
               "write a tag like '0.14.2' or a full commit hash.")
    if grammar.is_moving_ref(ref):
        v.fail("jwst.ref", f"{ref!r} is a branch, which moves: an image built from it cannot "
               "be rebuilt the same.",
               "pin a tag (e.g. '0.14.2') or a full 40-character commit hash; 'build.py lock' "
               "resolves a tag to its commit and records it.")
    if ref.startswith("refs/tags/"):
        ref = ref[len("refs/tags/"):]
    return JwstSpec(git=git, ref=ref)


def _base(v: _Validator, base: dict) -> BaseSpec:
    suite = v.choice(base, "suite", tuple(SUITE_PYTHON), default=None, where="base.suite")
    image = v.string(base, "image", where="base.image")
    mirror = v.string(base, "mirror", where="base.mirror")
    variant = v.choice(base, "variant", ("minbase", "buildd"), default="minbase",
                       where="base.variant")
    if image:
        for key in ("mirror", "variant"):
            if key in base:
                v.fail(f"base.{key}", f"applies only to bases made with debootstrap, but "
                       f"'image: {image}' is pulled from a registry.",
                       f"remove 'base.{key}', or remove 'base.image' to make the base locally.")
        if not grammar.is_reference(image):
            v.fail("base.image", f"{image!r} is not a Docker image reference.",
                   f"write NAME[:TAG]@sha256:DIGEST, e.g. 'debian:{suite}-slim@sha256:<64 hex "
                   "digits>' (lower-case name, at most 255 characters).")
        if not grammar.is_pinned_reference(image):
            v.warnings.append(f"base image '{image}' is not pinned by digest: a later pull "
                              "may give different bytes; write it as NAME@sha256:DIGEST.")
        return BaseSpec(suite=suite, image=image)
    if mirror is not None and not grammar.is_url(mirror, ("http", "https", "file")):
        v.fail("base.mirror", f"{mirror!r} is not a Debian mirror URL.",
               f"write e.g. '{DEFAULT_MIRROR}' or a snapshot.debian.org URL (http, https or "
               "file; no spaces, quotes or '$').")
    return BaseSpec(suite=suite, mirror=mirror or DEFAULT_MIRROR, variant=variant)


def _check_python(v: _Validator, jwst: JwstSpec, py: str, manager: str, base: BaseSpec) -> None:
    if manager == "venv":
        suite_py = SUITE_PYTHON.get(base.suite)
        if suite_py is None:
            v.fail("base.suite", f"'{base.suite}' has no known system Python for a venv.",
                   f"use a suite among {', '.join(SUITE_PYTHON)}, or python.manager: conda.")
        if catalog.version_tuple(py)[:2] != catalog.version_tuple(suite_py):
            suites = [s for s, p in SUITE_PYTHON.items() if p == ".".join(py.split(".")[:2])]
            alt = f"base.suite: {suites[0]}" if suites else "python.manager: conda"
            v.fail("python.version", f"Python {py} cannot be had from Debian {base.suite} "
                   f"(a venv uses the suite's Python, {suite_py}).",
                   f"set python.version: \"{suite_py}\", or use {alt}.")
    release = catalog.release(jwst.version or jwst.ref or "")
    if release and release.python_requires and not release.supports_python(py):
        fitting = [p for p in ("3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13",
                               "3.14") if release.supports_python(p)]
        field_ = "jwst.version" if jwst.version else "jwst.ref"
        v.fail("python.version", f"jwst {release.tag} does not support Python {py} "
               f"(it requires Python {release.python_requires}; {field_}).",
               f"use one of Python {', '.join(fitting)}"
               + (f" (STScI delivered it with {release.delivery_python})"
                  if release.delivery_python else "") + ", or another jwst release.")


class _Validator:
    """Small typed accessors that raise SpecError naming the field."""

    def __init__(self, shown: str, written: dict[str, str]):
        self.shown, self.written = shown, written
        self.warnings: list[str] = []

    def fail(self, field_: str, what: str, fix: str):
        raise SpecError(self.shown, field_, what, fix)

    def required(self, data: dict, key: str):
        if key not in data or data[key] is None:
            self.fail(key, "is missing.", f"add a '{key}:' section (see images/default.yaml).")
        return data[key]

    def mapping(self, data: Any, where: str) -> dict:
        if not isinstance(data, dict):
            kind = type(data).__name__ if data is not None else "empty"
            self.fail(where or "(top level)", f"must be a mapping of keys, not {kind}.",
                      "write it as 'key: value' lines (see images/default.yaml).")
        allowed = ALLOWED_KEYS[where]
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                path = f"{where}.{key}" if where else str(key)
                self.fail(path, "is not a known key.",
                          f"{hint}known keys here: {', '.join(allowed)}.")
        return data

    def string(self, data: dict, key: str, *, required: bool = False, default=None,
               where: str = "") -> str | None:
        where = where or key
        value = data.get(key)
        if value is None:
            if required:
                self.fail(where, "is missing.", f"add '{key}:' (see images/default.yaml).")
            return default
        if isinstance(value, float):
            typed = self.written.get(where, repr(value))
            self.fail(where, f"{typed} was read as the number {value!r}, which loses digits.",
                      f"quote it: {key}: \"{typed}\" (YAML reads an unquoted {typed} as a "
                      "number).")
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            self.fail(where, f"must be text, not {type(value).__name__}.",
                      f"write '{key}: <text>'.")
        text = str(value)
        self.plain_text(text, where)
        return text

    def plain_text(self, text: str, where: str) -> None:
        """No control characters (a newline would end a Dockerfile line) and no padding:
        every value is used exactly as written, so it is checked exactly as written."""
        if grammar.has_control(text):
            self.fail(where, f"{text!r} holds a control character (a newline, tab or escape).",
                      "write the value on one line, without control characters.")
        if text != text.strip() or not text:
            self.fail(where, f"{text!r} is empty or has leading or trailing spaces.",
                      "write the value without surrounding spaces.")

    def choice(self, data: dict, key: str, options: tuple[str, ...], *, default: str | None,
               where: str) -> str:
        value = self.string(data, key, default=default, where=where, required=default is None)
        if value not in options:
            self.fail(where, f"{value!r} is not one of {', '.join(options)}.",
                      f"use one of: {', '.join(options)}.")
        return value

    def string_list(self, data: dict, key: str, accept, example: str, why=None) -> list[str]:
        value = data.get(key) or []
        where = f"packages.{key}"
        if not isinstance(value, list):
            self.fail(where, "must be a list.", f"write it as a YAML list: {key}: [name, ...].")
        for item in value:
            if not isinstance(item, str) or not accept(item):
                reason = why(item) if why and isinstance(item, str) else None
                self.fail(where, f"entry {item!r} is not {example}"
                          + (f" ({reason})." if reason else "."),
                          "fix or remove that entry (no spaces, quotes or shell characters).")
        return sorted(set(value))
