"""Batch layer without SLURM or an engine: the plan's checks, the scripts (golden), the task
script's behaviour with a stand-in runtime, and how task states are derived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from niriss_pipe.batch import service as batch
from niriss_pipe.batch import state as batchstate
from niriss_pipe.batch.checks import check_folder, check_pipeline, check_slurm
from niriss_pipe.batch.cores import record
from niriss_pipe.batch.inputs import expand_inputs, make_tasks
from niriss_pipe.batch.plan import Plan, SlurmOptions, Task, load_plan, product_dir_name, save_plan
from niriss_pipe.batch.scripts import array_script, array_spec, task_script
from niriss_pipe.batch.summary import last_error, outcome
from niriss_pipe.cli.batch import exit_code
from niriss_pipe.core.errors import UserError
from niriss_pipe.core.progress import Reporter
from tests.helpers import GOLDEN, ROOT

IMAGE_ID = "sha256:" + "ab" * 32


def make_plan(folder: Path, inputs: list[Path], runtime: str = "docker", **extra) -> Plan:
    defaults = dict(image="niriss-pipe:jwst_1584", image_ref=IMAGE_ID, image_id=IMAGE_ID,
                    pipeline="calwebb_detector1", cache=Path("/shared/crds_cache"),
                    context="jwst_9999.pmap")
    defaults.update(extra)
    return Plan(folder=folder, runtime=runtime, tasks=make_tasks(inputs), **defaults)


def files(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"SIMPLE")
    return [folder / name for name in names]


# -- inputs ----------------------------------------------------------------------------------------
def test_inputs_from_files_globs_and_lists_in_order_once(tmp_path):
    a, b, c = files(tmp_path / "in", "a_uncal.fits", "b_uncal.fits", "c_uncal.fits")
    (tmp_path / "list.txt").write_text("# two of them\nin/c_uncal.fits\n\n  in/a_uncal.fits  \n")
    got = expand_inputs(["in/b_uncal.fits", "@list.txt", "in/*.fits"], cwd=tmp_path)
    assert got == [b, c, a]
    assert all(path.is_absolute() for path in got)


@pytest.mark.parametrize("items, message", [
    (["in/missing_uncal.fits"], "is not a file"),
    (["in/*.fit"], "matches no file"),
    (["@nolist.txt"], "does not exist"),
    (["@empty.txt"], "names no file"),
    ([], "no inputs given"),
])
def test_input_errors_name_the_input_and_the_fix(tmp_path, items, message):
    files(tmp_path / "in", "a_uncal.fits")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(UserError) as err:
        expand_inputs(items, cwd=tmp_path)
    assert message in err.value.what and err.value.fix


def test_product_folders_are_named_after_the_exposure_and_must_not_collide(tmp_path):
    assert product_dir_name("jw01_nis_uncal.fits") == "jw01_nis"
    assert product_dir_name("jw01_nis_rate.fits") == "jw01_nis"
    assert product_dir_name("odd.fits") == "odd"
    assert product_dir_name("x_y.fits") == "x_y"
    one = files(tmp_path / "one", "jw01_nis_uncal.fits")
    two = files(tmp_path / "two", "jw01_nis_uncal.fits")
    with pytest.raises(UserError, match="same products"):
        make_tasks(one + two)


def test_option_checks():
    check_pipeline("calwebb_detector1")
    check_pipeline("jwst.pipeline.Detector1Pipeline")
    for bad in ("calwebb detector1", "../x.asdf", ""):
        with pytest.raises(UserError):
            check_pipeline(bad)
    checked = check_slurm(SlurmOptions(time="1-02:00:00", mem="8G", cpus="2", throttle="4",
                                       account="jwst", qos="normal",
                                       extra=("--constraint=haswell", "--gres=gpu:1")))
    assert (checked.cpus, checked.throttle) == (2, 4)
    for bad in (SlurmOptions(time="1h"), SlurmOptions(mem="8GB"), SlurmOptions(cpus=0),
                SlurmOptions(throttle=0), SlurmOptions(extra=("--array=1-3",)),
                SlurmOptions(extra=("-o x.log",)), SlurmOptions(extra=("account=x",)),
                SlurmOptions(extra=("--account=jwst",)), SlurmOptions(extra=("--qos normal",)),
                SlurmOptions(job_name="my job")):
        with pytest.raises(UserError) as err:
            check_slurm(bad)
        assert err.value.fix


def test_output_folder_must_be_new_or_empty(tmp_path):
    assert check_folder(tmp_path / "new") == tmp_path / "new"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(UserError, match="not empty"):
        check_folder(tmp_path / "full")
    with pytest.raises(UserError, match="does not exist"):
        check_folder(tmp_path / "no" / "such" / "parent")
    for name, what in (("my batch", "a space"), ("b%j", "'%'"), ("a:b", "':'"), ("a,b", "','")):
        with pytest.raises(UserError, match=f"it holds {what}") as err:
            check_folder(tmp_path / name)
        assert "#SBATCH --output=" in err.value.what and "-o" in err.value.fix


def test_array_spec_collapses_runs_and_throttles():
    assert array_spec([1, 2, 3, 5, 7, 8], None) == "1-3,5,7-8"
    assert array_spec([4], 2) == "4%2"
    assert array_spec([3, 1, 2, 2], 8) == "1-3%8"


def test_plan_round_trips_through_batch_json(tmp_path):
    inputs = files(tmp_path / "in", "a_uncal.fits", "b_uncal.fits")
    folder = tmp_path / "batch"
    plan = make_plan(folder, inputs, slurm=SlurmOptions(time="10", extra=("--qos=x",)),
                     strun_args=("--steps.jump.skip=true",))
    plan = plan.with_submission({"mode": "slurm", "job": "12", "indices": [1, 2], "at": "t"})
    batch.write_folder(plan)
    save_plan(plan)
    assert load_plan(folder) == plan


def test_a_damaged_batch_json_is_a_user_error(tmp_path):
    plan = make_plan(tmp_path / "batch", files(tmp_path / "in", "a_uncal.fits"))
    batch.write_folder(plan)
    (tmp_path / "batch" / "inputs.txt").write_text("")
    with pytest.raises(UserError, match="cannot be read"):
        load_plan(tmp_path / "batch")
    with pytest.raises(UserError, match="not a batch folder"):
        load_plan(tmp_path)


# -- scripts: golden -------------------------------------------------------------------------------
INTEGER_CORES = record(2, {"jump": "integer", "ramp_fit": "integer"}, [])  # jwst 1.20.2+
GOLDEN_PLANS = {
    "docker": {"cores": INTEGER_CORES},
    "podman": {"image_ref": "ab" * 32, "archive": Path("/shared/images/jwst_1584.tar"),
               "cores": INTEGER_CORES},
    # jwst 1.12.5: ramp_fit takes only none/quarter/half/all
    "charliecloud": {"image_ref": "/shared/images/niriss-pipe_jwst_1584.sqfs", "image_id": "",
                     "cores": record(4, {"jump": "integer", "ramp_fit": "fractions"}, [])},
    # the SIF's jwst cannot be read here: threads only
    "apptainer": {"image_ref": "/shared/images/niriss-pipe_jwst_1584.sif", "image_id": "",
                  "context": None, "cores": record(1, {}, ["jump: jwst's default"])},
}


@pytest.mark.parametrize("runtime", GOLDEN_PLANS)
def test_task_script_golden(runtime):
    """One script per runtime, reviewed in tests/golden (UPDATE_GOLDEN=1 rewrites them). The
    Apptainer one cannot run here (no Apptainer on Debian or PyPI): this is its check."""
    inputs = [Path("/shared/raw/jw01_nis_uncal.fits"), Path("/shared/raw/jw02_nis_uncal.fits")]
    plan = Plan(folder=Path("/shared/batches/b1"), image="niriss-pipe:jwst_1584",
                runtime=runtime, pipeline="calwebb_detector1",
                cache=Path("/shared/crds_cache"), tasks=make_tasks_unchecked(inputs),
                **{"image_ref": IMAGE_ID, "image_id": IMAGE_ID, "context": "jwst_9999.pmap",
                   **GOLDEN_PLANS[runtime]})
    text = task_script(plan)
    golden = GOLDEN / f"batch-task-{runtime}.sh"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def make_tasks_unchecked(inputs: list[Path]) -> tuple[Task, ...]:
    return tuple(Task(i, path) for i, path in enumerate(inputs, 1))


def test_array_script_golden():
    plan = Plan(folder=Path("/shared/batches/b1"), image="niriss-pipe:jwst_1584",
                image_ref=IMAGE_ID, image_id=IMAGE_ID, runtime="docker",
                pipeline="calwebb_detector1", cache=Path("/shared/crds_cache"), context=None,
                tasks=make_tasks_unchecked([Path(f"/raw/jw{i:02d}_nis_uncal.fits")
                                            for i in range(1, 41)]),
                slurm=SlurmOptions(partition="jwst", account="jwst-cal", qos="normal",
                                   time="01:00:00", mem="8G", cpus=2, throttle=10,
                                   extra=("--constraint=haswell",), job_name="nis-det1"))
    text = array_script(plan)
    golden = GOLDEN / "batch-array.sbatch"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    assert "#SBATCH --array=1-40%10\n" in text and "#SBATCH --partition=jwst\n" in text


@pytest.mark.parametrize("runtime", ["docker", "podman"])
def test_parameter_folders_are_mounted_read_only_for_engines(tmp_path, runtime):
    params = files(tmp_path / "p q", "det1.asdf")[0]
    plan = make_plan(tmp_path / "b", files(tmp_path / "in", "jw01_nis_uncal.fits"),
                     runtime=runtime, pipeline=str(params), parameters=(params,),
                     strun_args=(f"--steps.x.override_y={params}",))
    text = task_script(plan)
    assert f"--volume '{tmp_path}/p q:/mnt/1:ro'" in text
    assert "strun /mnt/1/det1.asdf" in text and "--steps.x.override_y=/mnt/1/det1.asdf &" in text
    preview = text.split('if [ "$code" = 0 ]', 1)[1]
    assert "/mnt/1" not in preview and "/crds" not in preview  # the preview: products only
    saved = tmp_path / "b"
    batch.write_folder(plan)
    assert load_plan(saved).parameters == (params,)
    assert json.loads((saved / "batch.json").read_text())["parameters"] == [str(params)]


# -- the task script, run with a stand-in runtime ------------------------------------------------
STAND_IN = r"""#!/bin/bash
# Stand-in for docker/podman/apptainer: records its arguments, writes a product into the folder
# bound at /data, fails for inputs named *bad*, and runs 'forever' for inputs named *slow*
# until 'rm --force NAME' (the task's stop command) kills it; as the preview container, writes
# a PNG beside each rate product (or fails, with STAND_IN_PREVIEW_FAILS set).
echo "$(basename "$0") $*" >>"$STAND_IN_LOG"
if [ "$1" = rm ]; then
    kill "$(cat "$STAND_IN_DIR/${!#}.pid")"
    exit 0
fi
name= products= input= preview=
while [ $# -gt 0 ]; do
    case "$1" in
        --name) name=$2; shift ;;
        --volume|--bind) case "$2" in *:/data) products=${2%:/data} ;; esac; shift ;;
        /mnt/0/*) input=$1 ;;
        niriss_pipe.runtime.preview) preview=1 ;;
    esac
    shift
done
if [ -n "$preview" ]; then  # the preview container: a PNG beside each rate product
    [ -n "$STAND_IN_PREVIEW_FAILS" ] && { echo "ModuleNotFoundError: preview" >&2; exit 1; }
    for rate in "$products"/*_rate.fits; do echo png >"${rate%.fits}.png"; done
    exit 0
fi
case "$input" in
    *bad*) echo "OSError: No SIMPLE card found" >&2; exit 1 ;;
    *slow*) echo $$ >"$STAND_IN_DIR/${name:-$$}.pid"; exec sleep 60 ;;
esac
base=$(basename "$input" _uncal.fits)
echo product >"$products/${base}_rate.fits"
echo "wrote ${base}_rate.fits"
"""


@pytest.fixture
def stand_in(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "apptainer"):
        (bin_dir / tool).write_text(STAND_IN)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "calls.log"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STAND_IN_LOG": str(log),
           "STAND_IN_DIR": str(tmp_path), "NIRISS_PIPE_JOB": "local-test"}
    return env, log


def run_task(plan: Plan, index: int, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(plan.folder / "task.sh"), str(index)], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("runtime", ["docker", "apptainer"])
def test_task_script_records_state_and_products(tmp_path, stand_in, runtime):
    env, log = stand_in
    inputs = files(tmp_path / "in", "jw01_nis_uncal.fits", "jw02bad_nis_uncal.fits")
    cache = tmp_path / "cache"
    cache.mkdir()
    plan = make_plan(tmp_path / "b", inputs, runtime=runtime, cache=cache,
                     image_ref=str(tmp_path / "x.sif") if runtime == "apptainer" else IMAGE_ID)
    batch.write_folder(plan)
    ok, bad = run_task(plan, 1, env), run_task(plan, 2, env)
    assert ok.returncode == 0, ok.stderr
    assert bad.returncode == 1
    assert (plan.folder / "products" / "jw01_nis" / "jw01_nis_rate.fits").is_file()
    assert list((plan.folder / "products" / "jw02bad_nis").iterdir()) == []
    records = [batchstate.read_record(plan.folder, i) for i in (1, 2)]
    assert [(r["state"], r["exit"], r["job"]) for r in records] == [
        ("done", 0, "local-test"), ("done", 1, "local-test")]
    assert records[0]["ended"] >= records[0]["started"] > time.time() - 60
    calls = log.read_text()
    assert f"{plan.folder}/products/jw01_nis:/data" in calls
    assert f"{tmp_path}/in:/mnt/0:ro" in calls and f"{cache}:/crds:ro" in calls
    assert "CRDS_CONTEXT=jwst_9999.pmap" in calls
    # The preview container ran after the good task only, with its products alone mounted.
    previews = [line for line in calls.splitlines() if "niriss_pipe.runtime.preview" in line]
    assert len(previews) == 1 and "/mnt/0" not in previews[0] and "/crds" not in previews[0]
    assert f"{plan.folder}/products/jw01_nis:/data" in previews[0]
    # A retry starts from an empty product folder.
    (plan.folder / "products" / "jw01_nis" / "stale.fits").write_text("")
    assert run_task(plan, 1, env).returncode == 0
    assert sorted(p.name for p in (plan.folder / "products" / "jw01_nis").iterdir()) == [
        "jw01_nis_rate.fits", "jw01_nis_rate.png"]
    # A preview that fails leaves the task's outcome alone, and says so in its log.
    assert run_task(plan, 1, {**env, "STAND_IN_PREVIEW_FAILS": "1"}).returncode == 0
    assert batchstate.read_record(plan.folder, 1)["exit"] == 0
    assert "task 1: no preview (exit 1)" in (plan.folder / "logs" / "1.log").read_text()
    # --no-preview: no second container.
    quiet = replace(plan, folder=tmp_path / "c", preview=False)
    batch.write_folder(quiet)
    before = log.read_text().count("niriss_pipe.runtime.preview")
    assert run_task(quiet, 1, env).returncode == 0
    assert log.read_text().count("niriss_pipe.runtime.preview") == before


def test_task_script_fails_cleanly_before_the_container(tmp_path, stand_in):
    env, log = stand_in
    inputs = files(tmp_path / "in", "jw01_nis_uncal.fits")
    plan = make_plan(tmp_path / "b", inputs, cache=tmp_path / "no-cache")
    batch.write_folder(plan)
    proc = run_task(plan, 1, env)
    assert proc.returncode == 2
    assert "error: the CRDS cache" in (plan.folder / "logs" / "1.log").read_text()
    assert batchstate.read_record(plan.folder, 1)["exit"] == 2
    assert not log.exists()  # no container was started
    assert run_task(plan, 7, env).returncode == 2  # no such task: usage, no record
    assert batchstate.read_record(plan.folder, 7) is None


def test_sigterm_stops_the_container_and_records_killed(tmp_path, stand_in):
    env, log = stand_in
    inputs = files(tmp_path / "in", "jw01slow_nis_uncal.fits")
    cache = tmp_path / "cache"
    cache.mkdir()
    plan = make_plan(tmp_path / "b", inputs, cache=cache)
    batch.write_folder(plan)
    proc = subprocess.Popen(["bash", str(plan.folder / "task.sh"), "1"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(100):
        if list(tmp_path.glob("*.pid")):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, out
    log_text = (plan.folder / "logs" / "1.log").read_text()
    assert "SIGTERM received, stopping the container" in log_text
    assert "docker rm --force niriss-pipe-local-test-1-" in log.read_text()
    assert batchstate.read_record(plan.folder, 1)["state"] == "killed"


# -- states ----------------------------------------------------------------------------------------
def record(folder: Path, index: int, state: str, exit_code, job: str) -> None:
    (folder / "state").mkdir(parents=True, exist_ok=True)
    (folder / "state" / str(index)).write_text(json.dumps(
        {"state": state, "exit": exit_code, "started": 100.0,
         "ended": None if state == "running" else 109.5, "job": job, "host": "node1"}))


def test_states_from_records_and_queue(tmp_path):
    inputs = files(tmp_path / "in", *(f"jw{i}_nis_uncal.fits" for i in range(1, 9)))
    plan = make_plan(tmp_path / "b", inputs)
    plan = plan.with_submission({"mode": "slurm", "job": "12", "indices": list(range(1, 9))})
    plan = plan.with_submission({"mode": "slurm", "job": "20", "indices": [2]})
    f = plan.folder
    record(f, 1, "done", 0, "12_1")          # completed
    record(f, 2, "done", 1, "12_2")          # failed in job 12, retried as job 20: pending
    record(f, 3, "done", 1, "12_3")          # failed
    record(f, 4, "killed", 143, "12_4")      # killed by its trap
    record(f, 5, "running", None, "12_5")    # running per SLURM
    record(f, 6, "running", None, "12_6")    # job gone without an end: lost
    # 7: no record, pending in SLURM; 8: no record, SLURM says CANCELLED
    queue = {("20", 2): "PENDING", ("12", 5): "RUNNING", ("12", 7): "PENDING",
             ("12", 8): "CANCELLED"}
    got = {s.index: s.state for s in batchstate.task_statuses(plan, queue)}
    assert got == {1: "completed", 2: "pending", 3: "failed", 4: "killed", 5: "running",
                   6: "lost", 7: "pending", 8: "killed"}
    statuses = batchstate.task_statuses(plan, queue)
    assert statuses[0].seconds == 9.5
    assert batchstate.summary(statuses) == (
        "8 tasks: 1 completed, 1 failed, 2 killed, 1 lost, 1 running, 2 pending")
    assert exit_code(outcome(statuses)) == 1
    assert not batchstate.is_finished(statuses)


def test_large_batches_go_in_blocks_below_max_array_size():
    from niriss_pipe.batch.schedulers.slurm import blocks

    assert blocks([1, 2, 3], 1001) == [(0, [1, 2, 3])]
    assert blocks(list(range(1, 2501)), 1001)[1] == (1000, list(range(1001, 2001)))
    assert [offset for offset, _ in blocks(list(range(1, 2501)), 1001)] == [0, 1000, 2000]
    assert blocks([2, 5, 6], 3) == [(0, [2]), (4, [5, 6])]  # array indices 1..2 only


def test_states_across_blocks(tmp_path):
    """One submission as two job arrays (MaxArraySize 3): task = array index + offset."""
    inputs = files(tmp_path / "in", *(f"jw{i}_nis_uncal.fits" for i in range(1, 5)))
    plan = make_plan(tmp_path / "b", inputs).with_submission(
        {"mode": "slurm", "job": "30", "jobs": {"30": 0, "31": 2}, "indices": [1, 2, 3, 4]})
    record(plan.folder, 1, "done", 0, "30_1")
    record(plan.folder, 3, "done", 1, "31_1")   # task 3 ran as array index 1 of job 31
    queue = {("30", 2): "RUNNING", ("31", 2): "PENDING"}
    got = {s.index: s.state for s in batchstate.task_statuses(plan, queue)}
    assert got == {1: "completed", 2: "running", 3: "failed", 4: "pending"}


def test_exit_codes():
    def statuses(*states):
        return [batchstate.TaskStatus(i, "x", s, None, None, "", "", Path("l"))
                for i, s in enumerate(states)]
    assert exit_code(outcome(statuses("completed", "completed"))) == 0
    assert exit_code(outcome(statuses("completed", "running"))) == 3
    assert exit_code(outcome(statuses("completed", "failed", "running"))) == 1


def test_last_error_prefers_the_exception_line(tmp_path):
    log = tmp_path / "3.log"
    log.write_text("[niriss-pipe] task 3/4 x: job 1_3 on n1\nTraceback (most recent call):\n"
                   "  File x\nOSError: No SIMPLE card found, this file is not FITS\n-----\n"
                   "ERROR RUNNING STEP 'Detector1Pipeline':\n[niriss-pipe] task 3 x: exit 1\n")
    assert last_error(log) == "OSError: No SIMPLE card found, this file is not FITS"
    log.write_text("[niriss-pipe] task 3: error: the CRDS cache /c is not mounted on n1\n")
    assert "not mounted" in last_error(log)


# -- the CLI with --local, a stand-in runtime: status from outside, cancel --------------------
def cli(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    import sys

    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), *args], env=env,
                          capture_output=True, text=True, timeout=60)
    assert not check or proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _ignore_interrupts():  # what `nohup CMD &` from a shell without job control leaves a run
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


@pytest.mark.parametrize("started, stopped", [("in a terminal", "batch cancel"),
                                              ("nohup ... &", "batch cancel"),
                                              ("nohup ... &", "kill")])
def test_local_run_is_seen_running_from_outside_and_cancel_stops_it(tmp_path, stand_in,
                                                                   started, stopped):
    """``batch cancel`` (SIGINT) and ``kill PID`` (SIGTERM) stop a local run as Ctrl-C does,
    also one started with SIGINT ignored, which Python would otherwise keep ignoring."""
    import signal
    import sys

    env, log = stand_in
    inputs = files(tmp_path / "in", "jw01_nis_uncal.fits", "jw02slow_nis_uncal.fits",
                   "jw03slow_nis_uncal.fits", "jw04_nis_uncal.fits")
    cache = tmp_path / "cache"
    (cache / "mappings" / "jwst").mkdir(parents=True)
    (cache / "mappings" / "jwst" / "jwst_9999.pmap").write_text("")
    (tmp_path / "image.sif").write_text("SIF stand-in")
    out = tmp_path / "b"
    runner = subprocess.Popen(
        [sys.executable, str(ROOT / "build.py"), "batch", "submit", str(tmp_path / "image.sif"),
         "calwebb_detector1", *map(str, inputs), "-o", str(out), "--cache", str(cache),
         "--context", "jwst_9999.pmap", "--runtime", "apptainer", "--local", "-j", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_ignore_interrupts if started.startswith("nohup") else None)
    deadline = time.time() + 30
    while len(list(tmp_path.glob("*.pid"))) < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert len(list(tmp_path.glob("*.pid"))) == 2, "the two slow tasks never started"
    seen = json.loads(cli("batch", "status", str(out), "--json", env=env, check=False).stdout)
    got = {t["input"]: t["state"] for t in seen["tasks"]}
    assert got == {"jw01_nis_uncal.fits": "completed", "jw02slow_nis_uncal.fits": "running",
                   "jw03slow_nis_uncal.fits": "running", "jw04_nis_uncal.fits": "pending"}
    if stopped == "kill":
        runner.send_signal(signal.SIGTERM)
    else:
        assert "stopping the local run" in cli("batch", "cancel", str(out), env=env).stdout
    output, _ = runner.communicate(timeout=30)
    assert runner.returncode == 130, output
    assert "stopping 2 running tasks" in output
    final = {t["input"]: t["state"] for t in json.loads(
        cli("batch", "status", str(out), "--json", env=env, check=False).stdout)["tasks"]}
    assert final["jw02slow_nis_uncal.fits"] == final["jw03slow_nis_uncal.fits"] == "killed"
    assert final["jw01_nis_uncal.fits"] == "completed"
    assert final["jw04_nis_uncal.fits"] in ("lost", "completed")  # never started, or did
    retry = cli("batch", "retry", str(out), "--local", "--dry-run", env=env).stdout
    assert "would retry" in retry and "jw02slow_nis_uncal.fits" in retry
    assert "apptainer exec --containall" in log.read_text()


def test_a_refused_later_block_keeps_what_was_submitted(tmp_path, monkeypatch):
    """sbatch accepts the first array and refuses the second: the folder stays, the record
    holds only the submitted tasks, and the rest are 'never submitted' for retry."""
    from niriss_pipe.batch.schedulers import slurm

    calls = []

    def fake_submit(script, array, cwd, offset=0):
        calls.append((array, offset))
        if offset:
            raise UserError("sbatch refused the job array: QOSMaxSubmitJobPerUserLimit")
        return "77"

    monkeypatch.setattr(slurm, "require", lambda: None)
    monkeypatch.setattr(slurm, "max_array_size", lambda: 3)
    monkeypatch.setattr(slurm, "submit", fake_submit)
    monkeypatch.setattr(slurm, "queue", lambda jobs: {("77", 1): "PENDING", ("77", 2): "PENDING"})
    plan = make_plan(tmp_path / "b", files(tmp_path / "in", *(f"jw{i}_nis_uncal.fits"
                                                            for i in range(1, 5))))
    batch.write_folder(plan)
    with pytest.raises(UserError, match="QOSMaxSubmitJobPerUserLimit") as err:
        slurm.SlurmScheduler().launch(plan, [1, 2, 3, 4], Reporter())
    assert "Tasks 1-2 went to SLURM as job 77; the other 2 did not." in err.value.what
    assert "batch retry" in err.value.fix
    assert calls == [("1-2", 0), ("1-2", 2)]
    saved = load_plan(plan.folder)
    assert [(s["jobs"], s["indices"]) for s in saved.submissions] == [({"77": 0}, [1, 2])]
    statuses = batchstate.task_statuses(saved)
    assert [(s.state, s.reason) for s in statuses][2:] == [("pending", "never submitted")] * 2


# -- names and paths that reach the task script ------------------------------------------------
def test_task_script_finds_the_product_folder_python_named(tmp_path, stand_in):
    """products/NAME is emptied before each attempt: task.sh must derive NAME exactly as
    product_dir_name does (an input named only a suffix once made it products/ itself)."""
    env, _ = stand_in
    names = ["_uncal.fits", "a__uncal.fits", "jw_x_rateints.fits", "odd.fits", "x_cal"]
    inputs = files(tmp_path / "in", *names)
    cache = tmp_path / "cache"
    cache.mkdir()
    plan = make_plan(tmp_path / "b", inputs, cache=cache, preview=False)
    batch.write_folder(plan)
    for task in plan.tasks:
        assert run_task(plan, task.index, env).returncode == 0
    products = plan.folder / "products"
    assert sorted(p.name for p in products.iterdir()) == sorted(
        task.product_dir for task in plan.tasks) == sorted(
        ["_uncal", "a_", "jw_x", "odd", "x"])
    for task in plan.tasks:  # each kept its own product: no later task emptied another's
        assert len(list((products / task.product_dir).iterdir())) == 1, task.product_dir


@pytest.mark.parametrize("name", [".fits", "..fits", "...fits"])
def test_inputs_that_name_no_product_folder_are_refused(tmp_path, name):
    with pytest.raises(UserError, match="gives no product folder name"):
        make_tasks(files(tmp_path / "in", name))


def test_shell_characters_in_cache_and_input_paths_stay_quoted(tmp_path, stand_in):
    """Cache and input folders are refused only for ':', ',' and control characters: the
    rest is quoted. Run as a task, they reach the runtime as they are and run nothing."""
    env, log = stand_in
    inputs = files(tmp_path / "raw $(touch PWNED) x;y`touch PWNED`", "jw01 (1)_uncal.fits")
    cache = tmp_path / "crds $(touch PWNED);'q\"`touch PWNED`"
    cache.mkdir()
    plan = make_plan(tmp_path / "b", inputs, cache=cache)
    batch.write_folder(plan)
    proc = subprocess.run(["bash", str(plan.folder / "task.sh"), "1"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = log.read_text()
    assert f"{inputs[0].parent}:/mnt/0:ro" in calls and f"{cache}:/crds:ro" in calls
    assert "/mnt/0/jw01 (1)_uncal.fits" in calls
    assert (plan.folder / "products" / "jw01 (1)" / "jw01 (1)_rate.fits").is_file()
    assert not list(tmp_path.rglob("PWNED")) and not (ROOT / "PWNED").exists()
