"""What users expect of the command line, typed as they type it (``python build.py ...`` in a
new interpreter): $CRDS_PATH is the default cache, pmaps with or without ``.pmap``, one word
per idea (--scope, with --references kept), the YAML float hint in the user's own digits,
singularity as apptainer, choices, -v on either side of the command, and shell completion."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

SPEC = (ROOT / "images" / "default.yaml").read_text()


def typed(*args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python build.py ARGS`` as a user runs it; CRDS_PATH only when the test sets it."""
    base = {k: v for k, v in os.environ.items() if k != "CRDS_PATH"}
    return subprocess.run([sys.executable, str(ROOT / "build.py"), *args], cwd=cwd,
                          capture_output=True, text=True, env={**base, **(env or {})},
                          timeout=120)


def one_paragraph(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and " Fix: " in proc.stderr
    return proc.stderr


# -- CRDS_PATH ----------------------------------------------------------------------------------
def test_crds_path_is_the_default_cache_of_every_host_command(monkeypatch, tmp_path):
    from niriss_pipe.cli.parser import build_parser

    commands = [["sync", "--context", "jwst_1584"], ["verify-cache"], ["cache"], ["clean"],
                ["build"], ["render", "images/default.yaml"], ["demo"], ["repro"],
                ["verify", "IMAGE"], ["check", "IMAGE"],
                ["reproduce", "x_rate.fits", "--input", "x_uncal.fits"],
                ["batch", "submit", "IMAGE", "calwebb_detector1", "x.fits", "-o", "out"]]
    monkeypatch.setenv("CRDS_PATH", str(tmp_path / "stsci_cache"))
    for argv in commands:
        assert build_parser().parse_args(argv).cache == tmp_path / "stsci_cache", argv
    monkeypatch.delenv("CRDS_PATH")
    for argv in commands:
        assert build_parser().parse_args(argv).cache == Path("crds_cache"), argv
    # Every command that has --cache is in the list above.
    parser = build_parser()
    with_cache = {" ".join(argv[:2] if argv[0] == "batch" else argv[:1]) for argv in commands}
    assert with_cache == set(_commands_with(parser, "--cache"))


def _commands_with(parser, flag: str, prefix: str = "") -> list[str]:
    import argparse

    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _commands_with(sub, flag, f"{prefix} {name}".strip())
        elif flag in action.option_strings:
            found.append(prefix)
    return found


def test_crds_path_as_a_user_sets_it(tmp_path):
    cache = tmp_path / "stsci_cache"
    cache.mkdir()
    proc = typed("cache", cwd=tmp_path, env={"CRDS_PATH": str(cache)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{cache}: 0 contexts"), proc.stdout
    missing = typed("cache", cwd=tmp_path)  # unset: crds_cache/ here, which is not there
    assert "crds_cache" in one_paragraph(missing)


# -- pmap names ---------------------------------------------------------------------------------
def test_pmap_names_with_or_without_the_suffix(tmp_path):
    spec = tmp_path / "images" / "short.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC.replace("context: jwst_1584.pmap", "context: jwst_1584"))
    (tmp_path / "images" / "locks").mkdir()
    shutil.copy(ROOT / "images" / "locks" / "default.txt", tmp_path / "images/locks/short.txt")
    proc = typed("validate", str(spec), cwd=tmp_path)
    assert proc.returncode == 0 and "-> niriss-pipe:jwst_1584," in proc.stdout, proc.stderr
    # sync takes it and goes on to the server (an unreachable one here).
    proc = typed("sync", "--context", "jwst_1584", "--server", "https://127.0.0.1:9",
                 "--cache", str(tmp_path / "c"), cwd=tmp_path)
    assert "cannot reach the CRDS server" in one_paragraph(proc)
    # cache --keep takes it as a pmap (not as a spec file named jwst_0042).
    (tmp_path / "c").mkdir(exist_ok=True)
    proc = typed("cache", "--prune", "--keep", "jwst_0042", "--cache", str(tmp_path / "c"),
                 cwd=tmp_path)
    assert "does not hold jwst_0042.pmap" in one_paragraph(proc)
    # new --pmap: the same spec either way.
    short, full = (typed("new", "--pmap", name, "-o", "-", cwd=tmp_path)
                   for name in ("jwst_0579", "jwst_0579.pmap"))
    assert short.returncode == 0 and short.stdout == full.stdout, short.stderr


def test_batch_context_without_the_suffix(tmp_path):
    from tests.unit.batch.test_batch_cli import Submit

    submit = Submit(tmp_path, extra=["--context", "jwst_9999"])
    proc = typed(*submit.argv(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert " --set-env=CRDS_CONTEXT=jwst_9999.pmap " in proc.stdout


# -- one word for one idea ------------------------------------------------------------------------
def test_scope_is_the_spec_word_references_stays_an_alias_and_datasets_implies_it():
    from niriss_pipe.cli.crds import sync_scope
    from niriss_pipe.cli.parser import build_parser

    def scope(*argv):
        return sync_scope(build_parser().parse_args(["sync", "--context", "jwst_1584", *argv]))

    assert scope() == "instrument"
    assert scope("--scope", "none") == scope("--references", "none") == "none"
    assert scope("--datasets", "raw/") == "datasets"
    assert scope("--scope", "datasets", "--datasets", "raw/") == "datasets"


def test_datasets_with_another_scope_is_one_paragraph(tmp_path):
    proc = typed("sync", "--context", "jwst_1584", "--scope", "none", "--datasets", "x.fits",
                 cwd=tmp_path)
    text = one_paragraph(proc)
    assert "--datasets selects references by exposure, but --scope is none" in text


@pytest.mark.parametrize("argv, names", [
    (["sync", "--context", "jwst_1584", "--scope", "all"], "--scope/--references"),
    (["sync", "--context", "jwst_1584", "--references", "all"], "--scope/--references"),
    (["export", "IMAGE", "--to", "tar"], "--to"),
    (["batch", "submit", "IMAGE", "calwebb_detector1", "x.fits", "-o", "out",
      "--runtime", "shifter"], "--runtime"),
    (["completion", "fish"], "shell"),
    (["frobnicate"], "COMMAND"),
])
def test_enumerations_are_choices_refused_in_one_paragraph(tmp_path, argv, names):
    text = one_paragraph(typed(*argv, cwd=tmp_path))
    assert f"argument {names}: invalid choice" in text and "--help" in text


def test_singularity_is_apptainer(tmp_path):
    from tests.unit.batch.test_batch_cli import Submit, sqfs

    image = sqfs(tmp_path / "image.sif")
    proc = typed(*Submit(tmp_path, image=str(image), runtime="singularity").argv(), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "(apptainer)" in proc.stdout and '"$apptainer" exec --containall' in proc.stdout


# -- the YAML float hint ------------------------------------------------------------------------
@pytest.mark.parametrize("written, field", [("3.10", "python.version"),
                                            ("3.0", "jwst.version")])
def test_the_float_hint_quotes_what_the_user_wrote(tmp_path, written, field):
    key = field.split(".")[1]
    text = SPEC.replace('version: "3.11"' if field == "python.version" else 'version: "3.0.0"',
                        f"version: {written}")
    assert text != SPEC
    spec = tmp_path / "x.yaml"
    spec.write_text(text)
    message = one_paragraph(typed("validate", str(spec), cwd=tmp_path))
    assert f"field '{field}': {written} was read as the number {float(written)!r}" in message
    assert f'quote it: {key}: "{written}"' in message


# -- -v either side -------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["-v", "validate", "images/default.yaml"],
                                  ["validate", "images/default.yaml", "-v"],
                                  ["validate", "-v", "images/default.yaml"]])
def test_verbose_before_or_after_the_command(argv):
    proc = typed(*argv)
    assert proc.returncode == 0, proc.stderr
    assert "  io.niriss-pipe.crds.context=jwst_1584.pmap" in proc.stdout


def test_verbose_reaches_batch_actions_from_either_side():
    from niriss_pipe.cli.parser import build_parser

    parser = build_parser()
    for argv in (["-v", "batch", "status", "d"], ["batch", "-v", "status", "d"],
                 ["batch", "status", "d", "-v"]):
        assert parser.parse_args(argv).verbose is True, argv
    assert parser.parse_args(["batch", "status", "d"]).verbose is False


def test_help_names_the_program_typed():
    proc = typed("--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: python build.py ")
    installed = subprocess.run([sys.executable, "-m", "niriss_pipe", "sync", "--help"],
                               capture_output=True, text=True, cwd=ROOT)
    assert installed.stdout.startswith("usage: python -m niriss_pipe sync ")


# -- shell completion ---------------------------------------------------------------------------
def complete_in_bash(script: str, line: str) -> list[str]:
    """What bash offers after ``line`` (the cursor at its end), with the generated script
    loaded as a user's ~/.bashrc would load it."""
    words = line.split(" ")
    driver = (f"source {script}\n"
              f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
              f"COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}\n"
              "_shtab_niriss_pipe niriss-pipe \"${COMP_WORDS[COMP_CWORD]}\" "
              "\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
              'printf "%s\\n" "${COMPREPLY[@]}"\n')
    proc = subprocess.run(["bash", "--norc", "-c", driver], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_bash_completion_knows_commands_options_and_choices(tmp_path):
    proc = typed("completion", "bash")
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "niriss-pipe.bash"
    script.write_text(proc.stdout)
    assert set(complete_in_bash(script, "niriss-pipe ba")) == {"base", "batch"}
    assert "report" in complete_in_bash(script, "niriss-pipe batch ")
    assert complete_in_bash(script, "niriss-pipe sync --sc") == ["--scope"]
    assert complete_in_bash(script, "niriss-pipe sync --scope ") == [
        "none", "instrument", "datasets"]
    assert set(complete_in_bash(script, "niriss-pipe batch submit --runtime ")) == {
        "docker", "podman", "charliecloud", "apptainer", "singularity"}
    assert "--parsable" in complete_in_bash(script, "niriss-pipe batch submit --pa")


def test_zsh_completion_loads_in_zsh(tmp_path):
    assert shutil.which("zsh"), "zsh is missing: .ci/run installs it"
    proc = typed("completion", "zsh")
    assert proc.returncode == 0, proc.stderr
    script = tmp_path / "_niriss-pipe"
    script.write_text(proc.stdout)
    assert subprocess.run(["zsh", "-n", str(script)]).returncode == 0
    check = subprocess.run(
        ["zsh", "-f", "-c", f"fpath=({tmp_path} $fpath); autoload -U compinit; "
         "compinit -u -D; print -r -- $_comps[niriss-pipe]"],
        capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)})
    assert check.stdout.strip() == "_niriss-pipe", check.stdout + check.stderr  # found
    # -D: no dump file. 'compinit -d /dev/null' (before) renamed its dump over /dev/null and
    # left root's machine a regular file there.
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null is no longer a device"
    assert '{--scope,--references}"[' in proc.stdout
    assert ":scope:(none instrument datasets)" in proc.stdout
