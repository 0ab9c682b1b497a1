"""Cores per task: the thread-pool variables and jwst's maximum_cores each runtime's task
script passes into the container, from SLURM_CPUS_PER_TASK or --cpus, run with a stand-in
runtime that records its arguments."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from niriss_pipe.batch import service as batch
from niriss_pipe.batch.cores import maximum_cores, record, summary
from niriss_pipe.batch.plan import load_plan
from niriss_pipe.runtime.contract import CPUS_ENV, THREAD_ENV
from tests.helpers import ROOT
from tests.unit.batch.test_batch_plan import IMAGE_ID, files, make_plan

RECORDER = """#!/bin/bash
printf '%s\\n' "$@" >"$STAND_IN_DIR/$(basename "$0").args"
"""
# How each runtime's script sets a variable in the container: one word, or a flag and a word.
ENV_SYNTAX = {"docker": ("--env", "{}"), "podman": ("--env", "{}"),
              "charliecloud": (None, "--set-env={}"), "apptainer": ("--env", "{}")}
TOOL = {"docker": "docker", "podman": "podman", "charliecloud": "ch-run",
        "apptainer": "apptainer"}


@pytest.fixture
def recorder(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (*TOOL.values(), "nproc"):
        (bin_dir / tool).write_text(RECORDER if tool != "nproc" else "#!/bin/sh\necho 8\n")
        (bin_dir / tool).chmod(0o755)
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLURM_")}
    return {**env, "PATH": f"{bin_dir}:{env['PATH']}", "STAND_IN_DIR": str(tmp_path),
            "NIRISS_PIPE_JOB": "local-test"}


def run_args(tmp_path, runtime: str, cores: dict, env: dict, name: str) -> list[str]:
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    image = IMAGE_ID if runtime in ("docker", "podman") else str(tmp_path / "image.sif")
    plan = make_plan(tmp_path / name, files(tmp_path / "in", "jw01_nis_uncal.fits"),
                     runtime=runtime, cache=cache, image_ref=image, preview=False, cores=cores)
    batch.write_folder(plan)
    proc = subprocess.run(["bash", str(plan.folder / "task.sh"), "1"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (plan.folder / "logs" / "1.log").read_text()
    return (tmp_path / f"{TOOL[runtime]}.args").read_text().splitlines()


def env_in(args: list[str], runtime: str) -> dict[str, str]:
    """The variables the runtime was told to set in the container."""
    flag, form = ENV_SYNTAX[runtime]
    prefix = form.format("")
    values = [args[i + 1] for i, word in enumerate(args[:-1]) if word == flag] if flag \
        else [word[len(prefix):] for word in args if word.startswith(prefix)]
    return dict(value.split("=", 1) for value in values if "=" in value)


@pytest.mark.parametrize("runtime", list(TOOL))
def test_each_runtime_passes_the_cores_into_the_container(tmp_path, recorder, runtime):
    """--cpus 2 without SLURM; SLURM_CPUS_PER_TASK=3 wins over it; 1 core leaves jwst's own
    maximum_cores default. ramp_fit as in jwst 1.12.5 takes only a fraction of the node's
    cores (the stand-in nproc says 8): 2 or 3 cores -> quarter, 4 -> half."""
    cores = record(2, {"jump": "integer", "ramp_fit": "fractions"}, [])
    args = run_args(tmp_path, runtime, cores, recorder, "b2")
    assert env_in(args, runtime) == {"CRDS_CONTEXT": "jwst_9999.pmap",
                                     **{name: "2" for name in (CPUS_ENV, *THREAD_ENV)}}
    assert args[-2:] == ["--steps.jump.maximum_cores=2", "--steps.ramp_fit.maximum_cores=quarter"]

    args = run_args(tmp_path, runtime, cores, {**recorder, "SLURM_CPUS_PER_TASK": "3"}, "b3")
    assert {name: env_in(args, runtime)[name] for name in THREAD_ENV} == {
        name: "3" for name in THREAD_ENV}
    assert args[-2:] == ["--steps.jump.maximum_cores=3", "--steps.ramp_fit.maximum_cores=quarter"]
    args = run_args(tmp_path, runtime, cores, {**recorder, "SLURM_CPUS_PER_TASK": "4"}, "b4")
    assert args[-1] == "--steps.ramp_fit.maximum_cores=half"

    args = run_args(tmp_path, runtime, record(1, cores["maximum_cores"], []), recorder, "b1")
    assert env_in(args, runtime)["OMP_NUM_THREADS"] == "1"
    assert not [word for word in args if "maximum_cores" in word]
    assert args[-1] == "--output_dir=/data"
    log = (tmp_path / "b1" / "logs" / "1.log").read_text()
    assert "task 1: 1 cores: OMP_NUM_THREADS=1 " in log and "jwst default maximum_cores" in log

    # A SLURM value that is no count falls back to --cpus.
    args = run_args(tmp_path, runtime, cores, {**recorder, "SLURM_CPUS_PER_TASK": "2(x3)"}, "bx")
    assert env_in(args, runtime)["OMP_NUM_THREADS"] == "2"


def test_maximum_cores_follows_the_images_jwst_and_the_users_arguments():
    assert maximum_cores("calwebb_detector1", "3.0.0", ()) == (
        {"jump": "integer", "ramp_fit": "integer"}, [])
    assert maximum_cores("jwst.pipeline.Detector1Pipeline", "1.20.2", ())[0] == {
        "jump": "integer", "ramp_fit": "integer"}
    assert maximum_cores("calwebb_detector1", "1.12.5", ())[0] == {
        "jump": "integer", "ramp_fit": "fractions"}
    steps, notes = maximum_cores("calwebb_detector1", "1.11.0", ())
    assert steps == {} and "older than any release checked" in notes[0]
    steps, notes = maximum_cores("calwebb_detector1", None, ())
    assert steps == {} and "--strun-arg=--steps.jump.maximum_cores=N" in notes[0]
    steps, notes = maximum_cores("calwebb_detector1", "3.0.0",
                                 ("--steps.ramp_fit.maximum_cores=all",))
    assert steps == {"jump": "integer"}
    assert notes == ["ramp_fit: maximum_cores as given (--strun-arg)"]
    assert maximum_cores("calwebb_image2", "3.0.0", ()) == ({}, [])
    assert maximum_cores("calwebb_spec2", "1.12.5", ())[0] == {"wfss_contam": "fractions"}
    assert maximum_cores("calwebb_spec2", "3.0.0", ())[0] == {
        "wfss_contam": "fractions", "adaptive_trace_model": "integer"}


def test_cores_are_recorded_in_batch_json_and_shown_by_dry_run(tmp_path):
    cores = record(2, {"jump": "integer", "ramp_fit": "integer"}, [])
    plan = make_plan(tmp_path / "b", files(tmp_path / "in", "jw01_nis_uncal.fits"), cores=cores)
    batch.write_folder(plan)
    saved = json.loads((plan.folder / "batch.json").read_text())["cores"]
    assert saved["cpus"] == 2 and saved["env"] == [CPUS_ENV, *THREAD_ENV]
    assert saved["maximum_cores"] == {"jump": "integer", "ramp_fit": "integer"}
    assert load_plan(plan.folder).cores == cores
    text = batch.dry_run_text(plan, local=True)
    assert summary(cores) in text and "OMP_NUM_THREADS" in summary(cores)
    assert "maximum_cores: jump (integer), ramp_fit (integer)" in summary(cores)


def test_the_entrypoint_logs_every_thread_variable_it_is_given():
    text = (ROOT / "niriss_pipe" / "runtime" / "entrypoint.sh").read_text()
    for name in (CPUS_ENV, *THREAD_ENV):
        assert f"{name}=${{{name}" in text


def test_a_parameter_file_pipeline_keeps_its_own_maximum_cores(tmp_path):
    own = tmp_path / "own.asdf"
    own.write_text("#ASDF 1.0.0\nclass: jwst.pipeline.calwebb_detector1.Detector1Pipeline\n"
                   "steps:\n- class: jwst.jump.jump_step.JumpStep\n  parameters:\n"
                   "    maximum_cores: '4'\n")
    plain = tmp_path / "plain.asdf"
    plain.write_text("#ASDF 1.0.0\nclass: jwst.pipeline.calwebb_detector1.Detector1Pipeline\n")
    assert batch._cores(str(own), (own,), (), 2, "3.0.0")["maximum_cores"] == {}
    assert batch._cores(str(plain), (plain,), (), 2, "3.0.0")["maximum_cores"] == {
        "jump": "integer", "ramp_fit": "integer"}
    assert Path(str(plain)) == plain
