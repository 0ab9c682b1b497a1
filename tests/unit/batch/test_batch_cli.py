"""Hostile values for every option and path of ``batch submit``, typed as a user types them:
``python build.py batch submit ... --dry-run`` in a subprocess. Each is refused with exit 2
and one ``error:`` paragraph that names the option and the fix, and nothing is written.

No engine or SLURM is needed: the image is a stand-in Charliecloud image folder (its
ch/environment names the synthetic context, which the stand-in cache holds); docker and
podman names are refused by their grammar before any engine is asked.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import ROOT

SYNTHETIC = "jwst_9999.pmap"
EXPOSURE = "jw01_nis_uncal.fits"


def ch_image(path: Path) -> Path:
    (path / "ch").mkdir(parents=True)
    (path / "ch" / "environment").write_text(f"PATH=/usr/bin\nCRDS_CONTEXT={SYNTHETIC}\n")
    return path


def crds_cache(path: Path) -> Path:
    (path / "mappings" / "jwst").mkdir(parents=True)
    (path / "mappings" / "jwst" / SYNTHETIC).write_text("")
    return path


def exposure(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"SIMPLE")
    return path


def sqfs(path: Path) -> Path:
    path.write_bytes(b"hsqs" + bytes(60))
    return path


@dataclass
class Submit:
    """One ``batch submit --dry-run`` in ``area``, good in every part but those changed."""

    area: Path
    image: str = ""
    pipeline: str = "calwebb_detector1"
    inputs: list[str] = field(default_factory=list)
    out: str = ""
    cache: str = ""
    runtime: str = "charliecloud"
    extra: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.image = self.image or str(ch_image(self.area / "image"))
        self.inputs = self.inputs or [str(exposure(self.area / "raw" / EXPOSURE))]
        self.out = self.out or str(self.area / "out")
        self.cache = self.cache or str(crds_cache(self.area / "crds_cache"))

    def argv(self) -> list[str]:
        """Options first, then '--' and the positionals: an image or input named '-rf'
        reaches the checks (without '--' argparse takes it as an option)."""
        return ["batch", "submit", "-o", self.out, "--cache", self.cache, "--runtime",
                self.runtime, *self.extra, "--dry-run", "--", self.image, self.pipeline,
                *self.inputs]

    def run(self) -> subprocess.CompletedProcess:
        """The command as a user types it: a new interpreter running build.py."""
        env = {**os.environ, "PATH": "/usr/bin:/bin"}  # no sbatch needed for a dry run
        return subprocess.run([sys.executable, str(ROOT / "build.py"), *self.argv()],
                              cwd=self.area, capture_output=True, text=True, timeout=60,
                              env=env)

    def run_here(self) -> subprocess.CompletedProcess:
        """The same command through ``cli.main`` in this process (what build.py calls), for
        the hundreds of table cases: a new interpreter each would take a minute."""
        from niriss_pipe.cli import main as cli

        out, err = io.StringIO(), io.StringIO()
        cwd, path = os.getcwd(), os.environ.get("PATH", "")
        os.chdir(self.area)
        os.environ["PATH"] = "/usr/bin:/bin"
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = cli.main(self.argv(), prog="python build.py")
                except SystemExit as exc:  # argparse's own refusals
                    code = exc.code if isinstance(exc.code, int) else 2
        finally:
            os.chdir(cwd)
            os.environ["PATH"] = path
        return subprocess.CompletedProcess(self.argv(), code, out.getvalue(), err.getvalue())


# Values that must never reach a SLURM value, a name or a number unchecked.
HOSTILE = {
    "newline": "x\n#SBATCH --array=1-9", "trailing-newline": "10\n", "cr": "x\rnormal",
    "tab": "x\ty", "escape": "x\x1b[2J", "semicolon": "x;touch PWNED", "subst": "$(touch PWNED)",
    "backtick": "`touch PWNED`", "quote": "x'y", "dquote": 'x"y', "space": "x y",
    "fullwidth-digits": "\uff11\uff10", "arabic-indic-digits": "\u0661\u0660",
    "overlong": "9" * 300, "empty": "",
}
VALUE_OPTIONS = {"--partition": "--partition", "--account": "--account", "--qos": "--qos",
                 "--job-name": "--job-name", "--time": "--time", "--mem": "--mem",
                 "--cpus": "--cpus", "--throttle": "--throttle", "-j": "-j/--jobs",
                 "--context": "--context", "--runtime": "--runtime"}
SBATCH_SPELLINGS = [
    "--array=1-9", "--arr=1-9", "--a=1-9", "-a1-9", "-Qa1-9", "-vHa1-9",
    "--output=/tmp/x", "--out=/tmp/x", "--o=/tmp/x", "-o/tmp/x", "-Qo/tmp/x", "-Qo",
    "--error=/tmp/x", "--err=/tmp/x", "-e/tmp/x", "--open-mode=append", "--open=append",
    "--parsable", "--pars", "--wrap=id", "--wr=id", "--w=id", "--export=NONE", "--exp=NONE",
    "--export-file=/tmp/e", "--ntasks=2", "--nta=2", "-n2", "--partition=debug",
    "--parti=debug", "-pdebug", "--time=10", "--ti=10", "-t10", "--mem=8G", "--me=8G",
    "--cpus-per-task=4", "--cpus-p=4", "-c4", "--job-name=x", "--job=x", "-Jx",
    "--account=jwst", "--acco=jwst", "-Ajwst", "--qos=normal", "--qo=normal", "-qnormal",
    "--clusters=other", "-Mother", "--wait", "-W", "--test-only", "--help", "-h", "--usage",
    "--version", "-V",
]
SBATCH_HOSTILE = ["--constraint=a\n#SBATCH --array=1-9", "--constraint=a\n", "--comment=a\rb",
                  "--comment=a\tb", "--comment=\x1b[2J", "--comment=$(touch PWNED)",
                  "--comment=`touch PWNED`", "--comment=a;b", "--comment='a'",
                  '--comment="a"', "--qos normal", "--comment=a#b", "--nodes=\uff11",
                  "--comment=" + "x" * 2000, "", "exclusive", "--hold=x", "-C=x"]


@dataclass(frozen=True)
class Case:
    id: str
    names: str                   # what the error paragraph must name
    build: object                # area -> Submit


def _cases() -> list[Case]:
    cases = []
    for option, names in VALUE_OPTIONS.items():
        for label, value in HOSTILE.items():
            cases.append(Case(f"{option}-{label}", names,
                              lambda a, o=option, v=value: Submit(a, extra=[f"{o}={v}"]
                                                                  if o != "-j" else [o, v])))
    for label, value in {**HOSTILE, "option": "--help"}.items():
        cases.append(Case(f"pipeline-{label}", "the pipeline",
                          lambda a, v=value: Submit(a, pipeline=v)))
    for label, value in {"jwst-arabic": "jwst_\u0661\u0662\u0663\u0664.pmap",
                         "jwst-fullwidth": "jwst_\uff19\uff19\uff19\uff19.pmap",
                         "jwst-newline": f"{SYNTHETIC}\n"}.items():
        cases.append(Case(f"--context-{label}", "--context",
                          lambda a, v=value: Submit(a, extra=[f"--context={v}"])))
    for label, value in {"newline": "--x=1\n--y=2", "cr": "--x=1\r", "tab": "--x=\t",
                         "escape": "--x=\x1b[2J", "empty": "",
                         "overlong": "-" + "x" * 5000}.items():
        cases.append(Case(f"--strun-arg-{label}", "--strun-arg",
                          lambda a, v=value: Submit(a, extra=[f"--strun-arg={v}"])))
    cases += _parameter_file_cases()
    for word in SBATCH_SPELLINGS + SBATCH_HOSTILE:
        cases.append(Case(f"--sbatch={word!r}", "--sbatch",
                          lambda a, w=word: Submit(a, extra=[f"--sbatch={w}"])))
    cases += _image_cases() + _path_cases()
    return cases


def _image_cases() -> list[Case]:
    def link(area: Path) -> Submit:
        target = sqfs(area / "real\nname.sqfs")
        (area / "image.sqfs").symlink_to(target)
        return Submit(area, image=str(area / "image.sqfs"))

    cases = [
        Case("image-ch-dir-newline", "the image",
             lambda a: Submit(a, image=str(ch_image(a / "img\n#SBATCH --array=1-9")))),
        Case("image-ch-dir-escape", "the image",
             lambda a: Submit(a, image=str(ch_image(a / "img\x1b[2J")))),
        Case("image-sqfs-newline", "the image",
             lambda a: Submit(a, image=str(sqfs(a / "jwst_1584\ntouch PWNED.sqfs")))),
        Case("image-sqfs-tab", "the image",
             lambda a: Submit(a, image=str(sqfs(a / "jwst\t1584.sqfs")))),
        Case("image-sqfs-cr", "the image",
             lambda a: Submit(a, image=str(sqfs(a / "jwst\r1584.sqfs")))),
        Case("image-link-to-a-newline-name", "the image", link),
    ]
    for runtime in ("docker", "podman"):
        for label, value in {"newline": "niriss-pipe:jwst_1584\n", "upper": "Niriss-Pipe",
                             "semicolon": "niriss;touch PWNED", "subst": "$(touch PWNED)",
                             "option": "-rf", "space": "niriss pipe",
                             "overlong": "n" * 300}.items():
            cases.append(Case(f"image-{runtime}-{label}", "the image",
                              lambda a, v=value, r=runtime: Submit(a, image=v, runtime=r)))
    return cases


def _path_cases() -> list[Case]:
    cases = []
    for label, name in {"newline": "out\n#SBATCH --array=1-9", "cr": "out\rx", "tab": "out\tx",
                        "escape": "out\x1bx", "space": "out x", "percent": "out%j",
                        "colon": "out:x", "comma": "out,x", "hash": "out#x", "quote": "out'x",
                        "dquote": 'out"x', "subst": "out$(touch PWNED)", "semicolon": "out;x",
                        "backtick": "out`id`", "backslash": "out\\x", "non-ascii": "\u00f6ut",
                        "arabic-digits": "out\u0661"}.items():
        cases.append(Case(f"output-{label}", "the output folder",
                          lambda a, n=name: Submit(a, out=str(a / n))))
    for label, name in {"newline": "runs\nx", "colon": "runs:x", "space": "my runs"}.items():
        cases.append(Case(f"output-parent-{label}", "the output folder",  # the whole path
                          lambda a, n=name: Submit(a, out=str(_folder(a / n) / "out"))))
    for label, name in {"colon": "crds:x", "comma": "crds,x", "newline": "crds\nx",
                        "tab": "crds\tx", "escape": "crds\x1bx"}.items():
        cases.append(Case(f"cache-{label}", "--cache",
                          lambda a, n=name: Submit(a, cache=str(crds_cache(a / n)))))
        cases.append(Case(f"input-folder-{label}", "the input",
                          lambda a, n=name: Submit(a, inputs=[str(exposure(a / n / EXPOSURE))])))
    for label, name in {"newline": "jw01\ntouch PWNED_uncal.fits", "cr": "jw01\r_uncal.fits",
                        "tab": "jw01\t_uncal.fits", "escape": "jw01\x1b_uncal.fits"}.items():
        cases.append(Case(f"input-name-{label}", "the input",
                          lambda a, n=name: Submit(a, inputs=[str(exposure(a / "raw" / n))])))
        cases.append(Case(f"input-glob-{label}", "the input",
                          lambda a, n=name: Submit(a, inputs=[str(_glob(a, n))])))
    for label, name in {"colon": "jw01:x_uncal.fits", "comma": "jw01,x_uncal.fits",
                        "empty": ".fits", "dot": "..fits", "dotdot": "...fits"}.items():
        cases.append(Case(f"input-product-folder-{label}", "the input",
                          lambda a, n=name: Submit(a, inputs=[str(exposure(a / "raw" / n))])))
    cases.append(Case("input-list-control-line", "the input",
                      lambda a: Submit(a, inputs=["@" + _write(a, "raw/jw01\x1b_uncal.fits")])))
    cases.append(Case("input-list-not-utf8", "the input list",
                      lambda a: Submit(a, inputs=["@" + _write(a, b"raw/jw01_\xff")])))
    cases.append(Case("input-list-name-newline", "the input list",
                      lambda a: Submit(a, inputs=["@list\n.txt"])))
    return cases


def _parameters(path: Path) -> str:
    """A strun parameter file (what strun --save-parameters writes, in short)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#ASDF 1.0.0\n%YAML 1.1\n--- !core/asdf-1.1.0\n"
                    "class: jwst.pipeline.Detector1Pipeline\nname: Detector1Pipeline\n...\n")
    return str(path)


def _parameter_file_cases() -> list[Case]:
    """A parameter file is mounted into every task: it must exist, be readable, and have a
    folder every runtime can bind (and there are only nine mount points for them)."""
    cases = []
    for label, path in {"missing": "nowhere/det1.asdf", "colon": "par:ams/det1.asdf",
                        "comma": "par,ams/det1.asdf", "newline": "par\nams/det1.asdf",
                        "name-newline": "params/det\n1.asdf"}.items():
        make = (lambda a, p=path: str(a / p)) if label == "missing" else \
            (lambda a, p=path: _parameters(a / p))
        cases.append(Case(f"pipeline-asdf-{label}", "the pipeline parameter file",
                          lambda a, m=make: Submit(a, pipeline=m(a))))
        cases.append(Case(f"--strun-arg-asdf-{label}", "--strun-arg",
                          lambda a, m=make: Submit(a, extra=[
                              f"--strun-arg=--steps.jump.override_x={m(a)}"])))
    cases.append(Case("pipeline-asdf-a-folder", "the pipeline parameter file",
                      lambda a: Submit(a, pipeline=str(_folder(a / "dir.asdf")))))
    cases.append(Case("--strun-arg-asdf-ten-folders", "parameter files",
                      lambda a: Submit(a, extra=[f"--strun-arg={_parameters(a / str(i) / 'p.asdf')}"
                                                 for i in range(10)])))
    return cases


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def _glob(area: Path, name: str) -> str:
    exposure(area / "raw2" / name)
    return str(area / "raw2" / "*.fits")


def _write(area: Path, content: str | bytes) -> str:
    """A list file holding ``content``; its path."""
    path = area / "list.txt"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


CASES = _cases()


def tree(area: Path) -> set[str]:
    return {str(path.relative_to(area)) for path in area.rglob("*")}


@dataclass
class Outcome:
    area: Path
    before: set[str]
    proc: subprocess.CompletedProcess


SUBPROCESS_EVERY = 25  # every 25th case also runs as a new interpreter, as a user types it


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    """Every case run once through cli.main; every SUBPROCESS_EVERY-th also through build.py
    in a new interpreter (both must refuse it the same way)."""
    prepared = {}
    for number, case in enumerate(CASES):
        area = tmp_path_factory.mktemp(f"case{number}")
        submit = case.build(area)
        prepared[case.id] = (area, tree(area), submit)
    procs = {key: submit.run_here() for key, (_, _, submit) in prepared.items()}
    typed = list(prepared)[::SUBPROCESS_EVERY]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for key, proc in zip(typed, pool.map(lambda key: prepared[key][2].run(), typed)):
            assert (proc.returncode, proc.stderr) == (procs[key].returncode, procs[key].stderr)
    return {key: Outcome(area, before, procs[key])
            for key, (area, before, _) in prepared.items()}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_hostile_values_are_refused_before_anything_is_written(outcomes, case):
    outcome = outcomes[case.id]
    proc, tmp_path = outcome.proc, outcome.area
    before = outcome.before
    err = proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], err)
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert err.count("\n") == 1, err  # one paragraph: control characters shown, not obeyed
    assert case.names in err and " Fix: " in err, err
    assert proc.stdout == ""
    assert tree(tmp_path) == before  # no batch folder, nothing else either
    assert not (tmp_path / "PWNED").exists()


def test_there_is_a_case_for_every_submit_option():
    """A new option of batch submit needs its hostile cases here."""
    from niriss_pipe.cli.parser import build_parser as _parser

    def choices(parser, name):
        return next(action for action in parser._actions if action.dest in ("command", "action")
                    ).choices[name]

    submit = choices(choices(_parser(), "batch"), "submit")
    options = {action.option_strings[0] for action in submit._actions if action.option_strings}
    flags = {"-h", "-v", "--local", "--dry-run", "--json", "--parsable",
             "--no-preview"}  # take no value
    prefixes = {**{option: option + "-" for option in VALUE_OPTIONS}, "-o": "output-",
                "--cache": "cache-", "--strun-arg": "--strun-arg-", "--sbatch": "--sbatch="}
    assert options - flags == set(prefixes)
    for prefix in prefixes.values():
        assert sum(case.id.startswith(prefix) for case in CASES) >= 5, prefix
    for prefix in ("image-", "pipeline-", "input-"):  # and the positionals
        assert sum(case.id.startswith(prefix) for case in CASES) >= 5, prefix


# -- good values still give the expected scripts ----------------------------------------------
def test_good_values_give_the_expected_dry_run(tmp_path):
    submit = Submit(tmp_path, extra=[
        "--partition", "compute,debug", "--account", "jwst-cal", "--qos", "normal",
        "--time", "01:00:00", "--mem", "8G", "--cpus", "2", "--throttle", "3",
        "--job-name", "nis-det1", "--context", SYNTHETIC, "-j", "4",
        "--sbatch=--constraint=haswell", "--sbatch=--gres=gpu:1", "--sbatch=-N1",
        "--sbatch=--exclusive", "--sbatch=--time-min=30", "--sbatch=--mail-user=jdoe@stsci.edu",
        "--strun-arg=--steps.jump.rejection_threshold=5",
        "--strun-arg=--steps.x.override_y=/ref dir/it's $(x).fits"])
    proc = submit.run()
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"# would submit: sbatch --array=1%3 {tmp_path}/out/array.sbatch\n" in out
    assert (f"#SBATCH --job-name=nis-det1\n#SBATCH --array=1%3\n"
            f"#SBATCH --output={tmp_path}/out/logs/slurm/%A_%a.out\n#SBATCH --ntasks=1\n"
            "#SBATCH --cpus-per-task=2\n#SBATCH --partition=compute,debug\n"
            "#SBATCH --account=jwst-cal\n#SBATCH --qos=normal\n#SBATCH --time=01:00:00\n"
            "#SBATCH --mem=8G\n#SBATCH --constraint=haswell\n#SBATCH --gres=gpu:1\n"
            "#SBATCH -N1\n#SBATCH --exclusive\n#SBATCH --time-min=30\n"
            "#SBATCH --mail-user=jdoe@stsci.edu\n\n") in out
    assert ("--output_dir=/data \\\n    --steps.jump.rejection_threshold=5 "
            + shlex.quote("--steps.x.override_y=/ref dir/it's $(x).fits") + " &\n") in out
    assert not (tmp_path / "out").exists()


def test_a_parameter_file_is_mounted_read_only_and_named_by_its_mount_point(tmp_path):
    """As the pipeline and named by --strun-arg: each folder once, at /mnt/1, /mnt/2, ...; the
    plan keeps the host paths."""
    det1 = _parameters(tmp_path / "my params" / "det1.asdf")
    jump = _parameters(tmp_path / "more" / "jump.asdf")
    first, second = f"{tmp_path}/my params", f"{tmp_path}/more"
    for runtime, mounts in (
            ("charliecloud", [shlex.quote(f"--bind={first}:/mnt/1"), f"--bind={second}:/mnt/2"]),
            ("apptainer", [f"--bind {shlex.quote(f'{first}:/mnt/1:ro')}",
                           f"--bind {second}:/mnt/2:ro"])):
        area = tmp_path / runtime
        area.mkdir()
        image = str(sqfs(area / "x.sif")) if runtime == "apptainer" else ""
        submit = Submit(area, pipeline=det1, runtime=runtime, image=image,
                        extra=[f"--strun-arg=--steps.jump.override_x={jump}",
                               f"--strun-arg={det1}"])
        proc = submit.run()
        assert proc.returncode == 0, proc.stderr
        task = proc.stdout.split("# ---- task.sh\n", 1)[1]
        for mount in mounts:
            assert mount in task, (mount, task)
        assert "strun /mnt/1/det1.asdf \"/mnt/0/$input_name\" --output_dir=/data" in task
        assert "--steps.jump.override_x=/mnt/2/jump.asdf /mnt/1/det1.asdf &" in task
        assert task.count(":/mnt/1") == 1  # one folder, one mount, used twice
        assert subprocess.run(["bash", "-n"], input=task, text=True).returncode == 0
        assert not (area / "out").exists()


def test_paths_with_shell_characters_are_quoted_not_refused(tmp_path):
    """Cache and input folders are quoted in task.sh; only ':' and ',' (mount syntax) and
    control characters are refused for them (test_batch_plan runs such a task)."""
    odd = "crds $(touch PWNED);`id`'q\""
    submit = Submit(tmp_path, cache=str(crds_cache(tmp_path / odd)),
                    inputs=[str(exposure(tmp_path / "raw $(x);y" / "jw01 (1)_uncal.fits"))])
    proc = submit.run()
    assert proc.returncode == 0, proc.stderr
    assert f"cache={shlex.quote(str(tmp_path / odd))}\n" in proc.stdout
    task = proc.stdout.split("# ---- task.sh\n", 1)[1]
    assert subprocess.run(["bash", "-n"], input=task, text=True).returncode == 0
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "out").exists()
