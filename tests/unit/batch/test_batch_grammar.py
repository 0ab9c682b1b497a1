"""The grammars batch values are checked against, the --sbatch option parser (every spelling
of the options the batch manages), and the templates' backstop for comment lines."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from niriss_pipe.batch import sbatchopts
from niriss_pipe.batch.plan import Plan, SlurmOptions, Task
from niriss_pipe.batch.scripts import array_script, task_script
from niriss_pipe.core import grammar
from niriss_pipe.core.errors import UserError, shown
from niriss_pipe.core.templates import TEMPLATE_DIR as TEMPLATES

OURS = sorted(set(sbatchopts.MANAGED) | set(sbatchopts.OWN_FLAG))
OUR_LETTERS = sorted(letter for letter, (name, _) in sbatchopts.SHORT.items() if name in OURS)


def refused(word: str) -> UserError:
    with pytest.raises(UserError) as err:
        sbatchopts.check(word)
    assert err.value.fix, word
    assert err.value.what.startswith(f"--sbatch {shown(word)} "), err.value.what
    return err.value


# -- the table ---------------------------------------------------------------------------------
def test_the_option_table_holds_what_sbatch_has():
    """Spot checks against sbatch --help of 22.05 and slurm_opt.c (the integration test
    compares the table with the installed sbatch)."""
    table = sbatchopts.LONG
    assert len(table) > 100
    assert table["array"] == table["output"] == table["partition"] == sbatchopts.REQUIRED
    assert table["parsable"] == table["hold"] == table["test-only"] == sbatchopts.NONE
    assert table["exclusive"] == table["no-kill"] == table["nice"] == sbatchopts.OPTIONAL
    assert sbatchopts.SHORT["k"] == ("no-kill", sbatchopts.OPTIONAL)
    assert sbatchopts.SHORT["Q"] == ("quiet", sbatchopts.NONE)
    assert set(OURS) <= set(table)
    assert {name for name, _ in sbatchopts.SHORT.values()} <= set(table)
    assert OUR_LETTERS == sorted("AJMVWacehnopqt")


# -- every spelling of the batch's options is refused ---------------------------------------
@pytest.mark.parametrize("name", OURS)
def test_every_prefix_of_a_managed_long_option_is_refused(name):
    for length in range(1, len(name) + 1):
        prefix = name[:length]
        for word in (f"--{prefix}", f"--{prefix}=1", f"--{prefix}=/tmp/x"):
            err = refused(word)  # it names the option of ours it sets (--cluster: an alias)
            assert any(f"--{ours}" in err.what for ours in OURS if ours.startswith(prefix)), \
                (word, err.what)


@pytest.mark.parametrize("letter", OUR_LETTERS)
def test_every_short_form_of_a_managed_option_is_refused(letter):
    name = sbatchopts.SHORT[letter][0]
    for word in (f"-{letter}", f"-{letter}1-3", f"-{letter}/tmp/x.log", f"-Q{letter}x",
                 f"-vH{letter}", f"-vQ{letter}1"):
        err = refused(word)
        assert f"sets --{name} (sbatch reads -{letter} as --{name})" in err.what, err.what


def test_the_fix_names_the_flag_to_use():
    assert refused("-Ajwst-cal").fix == "give it as --account jwst-cal."
    assert refused("--qos=normal").fix == "give it as --qos normal."
    assert refused("-c4").fix == "give it as --cpus 4."
    assert refused("--parti=compute").fix == "give it as --partition compute."
    assert "for --partition use --partition" in refused("--par=compute").fix
    assert refused("--mem=8G").fix == "give it as --mem 8G."
    assert refused("-t10").fix == "give it as --time 10."
    assert refused("-Jx").fix == "give it as --job-name x."
    assert "--throttle" in refused("--arr=1-3").fix
    assert "which the batch manages" in refused("--out=x").what
    assert "batch wait" in refused("-W").fix
    assert "--dry-run" in refused("--test-only").fix
    assert "cannot pass on" in refused("--usage").what


def test_an_ambiguous_prefix_names_the_options_it_could_be():
    err = refused("--ti=5")
    assert "ambiguous" in err.what and "--time, --time-min" in err.what
    assert "for --time use --time" in err.fix
    err = refused("--acc=x")  # --account or --acctg-freq: sbatch refuses it, so do we
    assert "ambiguous" in err.what and err.fix.startswith("spell the option in full")
    err = refused("--cpu=2")
    assert "--cpus-per-task cannot be given with --sbatch" in err.what


def test_a_value_after_a_short_flag_is_not_an_option():
    """getopt_long takes the rest of the word as the value of a short option that has one:
    ``-C-a`` asks for the feature '-a', it sets no array."""
    assert [s.names for s in sbatchopts.settings("-C-a")] == [("constraint",)]
    assert [s.value for s in sbatchopts.settings("-QvCa1")] == [None, None, "a1"]


# -- legitimate options pass -----------------------------------------------------------------
@pytest.mark.parametrize("word", [
    "--exclusive", "--exclusive=user", "-N1", "--nodes=1", "--nodes=2-4", "-Q", "-vv", "-H",
    "--hold", "--constraint=haswell", "-Chaswell", "--constraint=intel&ib",
    "--constraint=[rack1*2|rack2*4]", "--gres=gpu:1", "--gres=gpu:a100:2", "--time-min=10",
    "--mem-per-cpu=4G", "--mail-user=jdoe@stsci.edu", "--mail-type=END,FAIL",
    "--dependency=afterok:123:456", "--nodelist=node[01-04]", "--exclude=n1,n2",
    "--begin=now+1hour", "--requeue", "--get-user-env",
    "--reservation=maint", "--comment=nis-det1", "--chdir=/shared/runs", "-k", "--nice=10",
    "--x11",  # not in the table: a site's SPANK plugin may add it
])
def test_legitimate_options_pass(word):
    assert sbatchopts.check(word) == word


# -- malformed words -------------------------------------------------------------------------
@pytest.mark.parametrize("word, says", [
    ("--qos normal", "holds a space"),
    ("--comment=a b", "holds a space"),
    ("--constraint=haswell\n#SBATCH --array=1-9", "holds a newline"),
    ("--constraint=haswell\n", "holds a newline"),
    ("--constraint=a\rb", "holds a carriage return"),
    ("--constraint=a\tb", "holds a tab"),
    ("--comment=\x1b[2J", "holds an escape"),
    ("--comment=\x00", "the control character '\\x00'"),
    ("--comment=\u2028x", "the control character '\\u2028'"),
    ("--comment=\udcff", "a byte that is not UTF-8"),
    ("--comment=$(id)", "holds '$'"),
    ("--comment=`id`", "holds '`'"),
    ("--comment=a;b", "holds ';'"),
    ("--comment='x'", "a quote (')"),
    ('--comment="x"', 'a quote (")'),
    ("--comment=a#b", "holds '#'"),
    ("--comment=a\\b", "holds a backslash"),
    ("--chdir=~/runs", "holds '~'"),
    ("--nodes=\uff11", "holds '\uff11'"),
    ("--n\u043edes=1", "holds '\u043e'"),
    ("--comment=" + "x" * 2000, "characters long (at most 1024)"),
    ("", "is empty"),
    ("exclusive", "is not an sbatch option"),
    ("-", "is not an sbatch option"),
    ("--", "is not an sbatch option name"),
    ("---x", "is not an sbatch option name"),
    ("--=x", "is not an sbatch option name"),
    ("-Z", "-Z, which is not an sbatch option"),
    ("-N", "gives -N (--nodes) no value"),
    ("-C=haswell", "sbatch keeps the '='"),
    ("--hold=yes", "gives --hold a value, which it does not take"),
    ("--comment", "gives --comment no value"),
    ("--comment=", "gives --comment no value"),
    ("--no=1", "is ambiguous"),
])
def test_malformed_words_are_refused_with_the_reason(word, says):
    assert says in refused(word).what


def test_the_fix_for_a_word_says_what_a_value_may_hold():
    err = refused("--qos normal")
    assert "no spaces, quotes" in err.fix and "--sbatch=--constraint=haswell" in err.fix


# -- grammars ----------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern, good, bad", [
    (grammar.SLURM_TIME, ["10", "00:30", "01:00:00", "1-02", "1-02:00", "1-02:00:00",
                          "UNLIMITED"],
     ["10\n", "1h", "\uff11\uff10", "\u0661\u0660", "10;id", "9" * 9, "1-02:0", " 10"]),
    (grammar.SLURM_MEMORY, ["8G", "512", "100M", "2T"],
     ["8G\n", "8GB", "\uff18G", "8g", "9" * 13, "8 G"]),
    (grammar.COUNT, ["1", "16", "999999"], ["1\n", " 1", "\u0661", "\uff11", "1_0", "-1",
                                             "+1", "1234567", ""]),
    (grammar.SLURM_NAMES, ["compute", "a,b", "gpu-a100", "x.y+z_1"],
     ["a\nb", "a b", "a,", ",a", "a,,b", "a;b", "$(id)", "\uff41"]),
])
def test_slurm_grammars_match_whole_ascii_strings(pattern, good, bad):
    assert all(grammar.full(pattern, value) for value in good), good
    assert not any(grammar.full(pattern, value) for value in bad), bad


def test_slurm_names_have_a_length_limit():
    assert grammar.is_slurm_name("x" * grammar.SLURM_NAME_MAX)
    assert not grammar.is_slurm_name("x" * (grammar.SLURM_NAME_MAX + 1))
    assert not grammar.is_slurm_name("a,b") and grammar.is_slurm_name("a,b", many=True)


@pytest.mark.parametrize("path, says", [
    ("/shared/runs/det1", None), ("/shared/runs/a+b@c.d_e-f", None),
    ("/a b", "a space"), ("/a%j", "'%'"), ("/a:b", "':'"), ("/a,b", "','"), ("/a#b", "'#'"),
    ("/a'b", "a quote (')"), ("/a$b", "'$'"), ("/a;b", "';'"), ("/a\nb", "a newline"),
    ("/m\u00fcller", "'\u00fc'"), ("relative", "not absolute"),
])
def test_the_batch_folder_grammar(path, says):
    problem = grammar.sbatch_path_problem(path)
    assert problem is None if says is None else says in problem


@pytest.mark.parametrize("path, says", [
    ("/shared/crds cache/$(x);`y`'z\"", None),  # quoted in task.sh: fine as a mount source
    ("/a:b", "':'"), ("/a,b", "','"), ("/a\nb", "a newline"), ("/a\tb", "a tab"),
    ("/a\x1bb", "an escape"), ("/a\udcffb", "not UTF-8"),
])
def test_mount_sources(path, says):
    problem = grammar.mount_source_problem(path)
    assert problem is None if says is None else says in problem


def test_one_line_escapes_what_would_break_a_line():
    assert grammar.one_line("plain /a b:c") == "plain /a b:c"
    assert grammar.one_line("a\nb\r\x1b\u2028\udcff") == "a\\nb\\r\\x1b\\u2028\\udcff"
    assert grammar.one_line(40) == "40"


def test_values_in_messages_are_shown_not_obeyed():
    assert shown("compute") == "'compute'"
    assert shown("a\nb") == "'a\\nb'"
    long = shown("x" * 500)
    assert "(500 characters)" in long and len(long) < 100


# -- the templates' backstop -----------------------------------------------------------------
def test_every_value_in_a_template_comment_line_goes_through_the_comment_filter():
    for template in TEMPLATES.glob("*.j2"):
        for number, line in enumerate(template.read_text().splitlines(), 1):
            body = re.sub(r"^(\{%.*?%\})+", "", line)  # '{% if x %}#SBATCH ...'
            if not body.startswith("#"):
                continue
            for expression in re.findall(r"\{\{(.*?)\}\}", body):
                assert re.search(r"\|\s*comment\s*$", expression), \
                    f"{template.name}:{number}: {{{{{expression}}}}} without | comment"


HOSTILE = "x\ntouch PWNED #\r\x1b[2J"


def hostile_plan(value: str, folder: str = "/b") -> Plan:
    return Plan(folder=Path(folder), image=f"img{value}", image_ref="/img.sqfs", image_id="",
                runtime="charliecloud", pipeline=f"calwebb{value}", cache=Path("/c"),
                context=None, tasks=(Task(1, Path("/r/a_uncal.fits")),),
                slurm=SlurmOptions(partition=f"p{value}", account=f"a{value}", qos=f"q{value}",
                                   time=f"1{value}", mem=f"1{value}", job_name=f"j{value}",
                                   extra=(f"--x{value}",)))


def test_a_hostile_value_that_got_past_the_checks_stays_on_its_comment_line():
    """The plan's checks refuse these; built directly, array.sbatch still holds each value on
    its own '#' line (every one of its values lands in a comment or #SBATCH line)."""
    clean, hostile = array_script(hostile_plan("")), array_script(hostile_plan(HOSTILE))
    assert len(hostile.splitlines()) == len(clean.splitlines())
    for ours, theirs in zip(clean.splitlines(), hostile.splitlines()):
        assert ours.startswith("#") == theirs.startswith("#"), (ours, theirs)
    assert "\x1b" not in hostile and "\r" not in hostile
    assert "#SBATCH --partition=px\\ntouch PWNED #\\r\\x1b[2J\n" in hostile


def test_a_hostile_value_that_got_past_the_checks_runs_nothing(tmp_path):
    """Both scripts run with every value hostile (in comments, escaped; elsewhere quoted):
    nothing but the scripts' own commands runs."""
    plan = hostile_plan(HOSTILE, folder=str(tmp_path / f"b{HOSTILE}"))
    for render in (array_script, task_script):
        script = tmp_path / "script.sh"
        script.write_text(render(plan))
        subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, timeout=30)
        assert not (tmp_path / "PWNED").exists(), render.__name__


@pytest.mark.parametrize("word", ["--signal=B:USR1@60", "--sig=TERM@30", "--signal=USR2"])
def test_signal_is_refused_because_only_term_stops_a_task_cleanly(word):
    with pytest.raises(UserError, match="leaving the container running"):
        sbatchopts.check(word)


@pytest.mark.parametrize("arg", ["--output_dir=/tmp", "--output_d=x", "--output_di",
                                 "--output_dir"])
def test_strun_output_folder_is_the_batch_s(arg):
    from niriss_pipe.batch.checks import check_strun_args

    with pytest.raises(UserError, match="sets strun's output folder"):
        check_strun_args((arg,))
    assert check_strun_args(("--output_file=x", "--steps.jump.skip=true"))
