"""Values a user can type by mistake that once meant something else, or broke the one-paragraph
rule: an empty path (an unset shell variable) that meant the current folder, a resolution day
that was not a day, a value with a newline printed as it is, and files that are not regular
files called "does not exist"."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from niriss_pipe.cli import main as cli
from niriss_pipe.core.errors import UserError, file_problem, shown_path
from tests.helpers import ROOT

SPEC = str(ROOT / "images" / "default.yaml")


def refused(argv: list[str], capsys) -> str:
    """The command's one paragraph (exit 2, no traceback), whitespace as printed."""
    assert cli.main(argv, prog="python build.py") == 2
    lines = capsys.readouterr().err.splitlines(keepends=True)
    err = "".join(line for line in lines if not line.startswith("warning: "))
    assert err.startswith("error: ") and err.count("\n") == 1, lines
    assert " Fix: " in err and "Traceback" not in err
    return err


# -- empty paths --------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, named", [
    (["validate", ""], "argument SPEC"),
    (["validate", "--json", ""], "argument SPEC"),
    (["new", "--jwst", "0.14.2", "-o", ""], "argument -o/--output"),
    (["sync", "--context", "jwst_1584", "--cache", ""], "argument --cache"),
    (["verify-cache", "--cache", ""], "argument --cache"),
    (["cache", "--cache", ""], "argument --cache"),
    (["render", ""], "argument SPEC"),
    (["batch", "status", ""], "argument DIR"),
    (["batch", "report", "somewhere", "-o", ""], "argument -o/--output"),
])
def test_an_empty_path_is_refused_naming_the_option(argv, named, capsys, tmp_path,
                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)  # were it taken as '.', nothing here would be a spec or a cache
    err = refused(argv, capsys)
    assert f"{named}: an empty path ('') would quietly mean the current folder." in err
    assert "Fix: give the path, or . if the current folder is meant." in err


def test_every_path_option_refuses_an_empty_value():
    """Every option and argument typed as a path, in every command, refuses ''."""
    from niriss_pipe.cli.parser import build_parser

    def walk(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from walk(sub)
            elif action.type is Path:
                yield parser, action

    found = list(walk(build_parser()))
    assert len(found) > 20
    for parser, action in found:
        with pytest.raises(argparse.ArgumentError, match="an empty path"):
            parser._get_value(action, "")
        assert parser._get_value(action, "x") == Path("x")


# -- lock --exclude-newer ----------------------------------------------------------------------
@pytest.mark.parametrize("day", [
    "P3D",  # a relative duration: the lock could not be resolved again the same
    "2024-01-01T00:00:00Z", "2024-01-01 00:00", "-1", "", "2024-01-01\n",
    " 2024-01-01", "\u0662\u0660\u0662\u0664-\u0660\u0661-\u0660\u0661",  # Arabic-Indic digits
    "\uff12\uff10\uff12\uff14-01-01", "2024-02-30", "20240101", "2024-1-1", "2024-W01-1",
])
def test_lock_refuses_a_day_that_is_not_yyyy_mm_dd_before_anything_runs(day, capsys):
    # The spec does not exist: the day is checked first, before any spec is read.
    err = refused(["lock", "missing/nowhere.yaml", "--exclude-newer", day], capsys)
    assert err.startswith("error: --exclude-newer '") or err.startswith("error: --exclude-newer \"")
    assert "is not a calendar day written YYYY-MM-DD." in err and "nowhere" not in err
    assert "Fix: give a day like 2024-06-01" in err


def test_make_lock_refuses_a_bad_day_before_resolving(tmp_path, monkeypatch):
    import shutil

    from niriss_pipe.spec import lock
    from niriss_pipe.spec.load import load_spec

    shutil.copy(SPEC, tmp_path / "default.yaml")
    spec = load_spec(tmp_path / "default.yaml")
    monkeypatch.setattr(lock, "_compile", lambda want: pytest.fail("uv ran"))
    with pytest.raises(UserError, match="'P3D' is not a calendar day"):
        lock.make_lock(spec, exclude_newer="P3D")
    assert not (tmp_path / "locks").exists()
    assert lock.check_day("2024-06-01") == "2024-06-01"


def test_uv_is_never_given_a_day_that_is_not_one():
    from niriss_pipe.spec import lock

    want = lock.LockInputs(("jwst==3.0.0",), "3.11", "x86_64-manylinux_2_36", "-1")
    with pytest.raises(UserError, match="is not a calendar day written YYYY-MM-DD"):
        lock._compile(want)


# -- a user's value with a newline, in a message ---------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["new", "--jwst", "1.0\n", "-o", "-"], "jwst '1.0\\n' is not in the release catalog."),
    (["new", "--pmap", "jwst_0579\n", "-o", "-"], "'jwst_0579\\n' is not a CRDS pipeline"),
    (["new", "--jwst", "0.14.2", "-o", "x\n.yaml"], "--output 'x\\n.yaml': a spec's file"),
    (["sync", "--context", "jwst_1584.pmap\n"], "'jwst_1584.pmap\\n' is not a CRDS pipeline"),
    (["lock", SPEC, "--exclude-newer", "2024-01-01\n"], "--exclude-newer '2024-01-01\\n' is"),
    (["validate", "a\nb.yaml"], "'a\\nb.yaml': the spec file does not exist."),
])
def test_a_value_with_a_newline_is_shown_not_obeyed(argv, words, capsys, tmp_path,
                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [*argv, "--cache", str(tmp_path / "cache")] if argv[0] == "sync" else argv
    assert words in refused(argv, capsys)


def test_the_whole_log_in_a_folder_with_a_newline_is_one_line(tmp_path, monkeypatch):
    from niriss_pipe.cli.buildlog import LOGS_ENV, build_log
    from niriss_pipe.core.progress import Reporter

    folder = tmp_path / "lo\ngs"
    monkeypatch.setenv(LOGS_ENV, str(folder))
    with pytest.raises(UserError) as info:
        with build_log(Reporter(out=open(os.devnull, "w")), "x") as path:
            raise UserError("it failed.", "try again.")
    message = info.value.paragraph()
    assert "\n" not in message and f"The whole log: {shown_path(path)}" in message
    assert repr(str(path)) in message  # whole: the file's name is not cut
    assert path.parent == folder


def test_shown_path_keeps_a_plain_path_as_it_is():
    assert shown_path(Path("build/logs/x y.log")) == "build/logs/x y.log"
    long = "/tmp/" + "a" * 200 + "\n/x.log"
    assert shown_path(long) == repr(long)


# -- files that are not regular files ---------------------------------------------------------
def test_file_problem_names_what_a_path_is(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "dangling").symlink_to("gone")
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to("file")
    assert file_problem(tmp_path / "file") is None and file_problem(tmp_path / "link") is None
    assert file_problem(tmp_path / "fifo") == "is a FIFO (a named pipe), not a regular file"
    assert file_problem(tmp_path / "loop").startswith("is a symlink loop")
    assert file_problem(tmp_path / "dangling") == "is a symlink to gone, which does not exist"
    assert file_problem(tmp_path / "missing") == "does not exist"
    assert file_problem(tmp_path / "file" / "x").startswith("does not exist (a part of")
    assert file_problem(tmp_path) == "is a folder"
    assert file_problem("/dev/null") == "is a character device, not a regular file"
    assert file_problem(tmp_path / ("x" * 300)).startswith("cannot be read (")


@pytest.fixture
def odd_paths(tmp_path):
    """In ``tmp_path``: a FIFO, a symlink loop and a folder, none of them a regular file."""
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop").symlink_to("loop")
    (tmp_path / "folder").mkdir()


@pytest.mark.parametrize("name, words", [
    ("fifo", "is a FIFO (a named pipe), not a regular file."),
    ("loop", "is a symlink loop"),
    ("missing.pem", "no such file."),
    ("", "is a folder."),
])
def test_ca_bundle_says_what_the_path_is(name, words, tmp_path, odd_paths):
    from niriss_pipe.build.network import find_ca_bundle

    with pytest.raises(UserError) as info:
        find_ca_bundle(str(tmp_path / name) if name else str(tmp_path), {})
    assert info.value.paragraph().startswith(f"--ca-bundle {tmp_path / name if name else tmp_path}"
                                             f": {words}")


def test_an_empty_ca_bundle_is_refused_not_taken_as_unset(tmp_path):
    from niriss_pipe.build.network import find_ca_bundle

    (tmp_path / "ca.pem").write_text("x")
    with pytest.raises(UserError, match="--ca-bundle '' is empty"):
        find_ca_bundle("", {"SSL_CERT_FILE": str(tmp_path / "ca.pem")})
    assert find_ca_bundle(None, {"SSL_CERT_FILE": str(tmp_path / "ca.pem")}) == tmp_path / "ca.pem"


@pytest.mark.parametrize("name, words", [
    ("fifo", "is a FIFO (a named pipe), not a regular file."),
    ("loop", "is a symlink loop (following its links never reaches a file)."),
    ("missing", "does not exist."),
    ("folder", "is a folder."),
])
def test_an_input_list_says_what_the_path_is(name, words, tmp_path, odd_paths):
    from niriss_pipe.batch.inputs import expand_inputs

    with pytest.raises(UserError) as info:
        expand_inputs([f"@{name}"], cwd=tmp_path)
    assert info.value.paragraph().startswith(f"the input list {tmp_path / name} {words} Fix:")
