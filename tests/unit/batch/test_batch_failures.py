"""A batch folder under failure and damage: a submit on a full disk leaves nothing of its own
(so the same submit can run again), a damaged batch.json or task record is one exit-2
paragraph naming the file and the fix for every subcommand that reads it, and
``wait --timeout`` takes only a number of seconds, 0 or more.

Full file systems are real here too: a small tmpfs in a private mount namespace
(``unshare --mount``, with ``--map-root-user`` when not root), gone when the command ends.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from niriss_pipe.batch import service
from niriss_pipe.batch.checks import check_timeout
from niriss_pipe.batch.outcome import Outcome
from niriss_pipe.batch.plan import PLAN_FILE, load_plan, save_plan
from niriss_pipe.core.errors import UserError
from niriss_pipe.core.progress import Reporter
from tests.helpers import ROOT
from tests.unit.batch.test_batch_cli import EXPOSURE, ch_image, crds_cache, exposure
from tests.unit.batch.test_batch_plan import files, make_plan

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def quiet() -> Reporter:
    return Reporter(out=io.StringIO(), err=io.StringIO())


# -- submit on a full disk -------------------------------------------------------------------------
def in_mount_namespace(script: str) -> subprocess.CompletedProcess:
    namespace = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    return subprocess.run([*namespace, "sh", "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def submit_line(area: Path, out: Path) -> str:
    """``batch submit --local`` of one exposure in a stand-in Charliecloud image (its task
    fails at once without ch-run, or in ch-run: the folder is what matters here)."""
    image = area / "image"
    if not image.exists():
        ch_image(image)
        crds_cache(area / "crds_cache")
        exposure(area / "raw" / EXPOSURE)
    return shlex.join([sys.executable, str(ROOT / "build.py"), "batch", "submit", "--local",
                       "--runtime", "charliecloud", "--cache", str(area / "crds_cache"),
                       "-o", str(out), "--", str(image), "calwebb_detector1",
                       str(area / "raw" / EXPOSURE)])


def test_a_full_disk_submit_leaves_no_folder_and_the_same_submit_then_runs(tmp_path):
    """The audit's case: the batch folder is new, the disk is full; then space is freed."""
    disk, area = tmp_path / "disk", tmp_path / "area"
    disk.mkdir()
    area.mkdir()
    submit = submit_line(area, disk / "b")
    proc = in_mount_namespace(
        f"mount -t tmpfs -o size=64k tmpfs {disk} && "
        f"(dd if=/dev/zero of={disk}/filler bs=1k count=128 2>/dev/null; true) && "
        f"{submit}; echo rc=$?; echo left: $(cd {disk} && find . -mindepth 1); "
        f"rm {disk}/filler && {submit} >/dev/null; echo again=$?; ls {disk}/b")
    first, _, rest = proc.stdout.partition("left:")
    assert first.split() == ["rc=2"], proc
    message = " ".join(proc.stderr.split())
    assert "No space left on device" in message and "disk is full" in message, message
    assert "Traceback" not in proc.stderr
    assert rest.split()[0] == "./filler" and "again=" in rest.split()[1], proc  # nothing else
    assert "not empty" not in proc.stderr, proc.stderr  # the second submit was taken
    assert PLAN_FILE in rest.split(), proc


@pytest.mark.parametrize("inodes, failing", [(3, "logs/slurm"), (7, "task.sh"), (10, PLAN_FILE)])
def test_a_full_disk_submit_into_an_empty_folder_leaves_it_empty(tmp_path, inodes, failing):
    """The folder was there (empty): it stays, and nothing the submit made is left in it,
    whether a subfolder, a script or the local run's submission record could not be made."""
    disk, area = tmp_path / "disk", tmp_path / "area"
    disk.mkdir()
    area.mkdir()
    proc = in_mount_namespace(
        f"mount -t tmpfs -o size=1m,nr_inodes={inodes} tmpfs {disk} && mkdir {disk}/b && "
        f"{submit_line(area, disk / 'b')}; echo rc=$?; cd {disk} && find . -mindepth 1")
    assert proc.stdout.split() == ["rc=2", "./b"], proc
    assert f"{disk}/b/{failing}: No space left on device" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


WRITE_FOLDER_STEPS = 9  # mkdir of the folder and its 4 subfolders, then write_text of 4 files


def test_write_folder_makes_the_steps_the_failure_tests_count(tmp_path):
    plan = make_plan(tmp_path / "b", files(tmp_path / "in", "a_uncal.fits"))
    created = service.write_folder(plan)
    assert len(created) == WRITE_FOLDER_STEPS == len(tree(plan.folder)) + 1
    assert created[0] == plan.folder and created[-1].name == PLAN_FILE  # batch.json last


@pytest.mark.parametrize("existing", [False, True], ids=["new folder", "empty folder"])
@pytest.mark.parametrize("fail_at", range(1, WRITE_FOLDER_STEPS + 1))
def test_write_folder_failing_anywhere_leaves_only_what_was_there(tmp_path, monkeypatch,
                                                                  existing, fail_at):
    """ENOSPC at each mkdir and each write in turn: the folder is as it was before."""
    plan = make_plan(tmp_path / "b", files(tmp_path / "in", "a_uncal.fits"))
    if existing:
        plan.folder.mkdir()
    real_mkdir, real_write = Path.mkdir, service.write_text
    calls = []

    def counted(real, *args, **kwargs):
        calls.append(args)
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", lambda *a, **k: counted(real_mkdir, *a, **k))
    monkeypatch.setattr(service, "write_text", lambda *a, **k: counted(real_write, *a, **k))
    with pytest.raises(OSError) as caught:
        service.write_folder(plan)
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC and len(calls) == fail_at
    assert plan.folder.exists() == existing
    assert not existing or tree(plan.folder) == []


def test_write_folder_never_removes_what_was_there_before(tmp_path, monkeypatch):
    """A folder or file already in the batch folder (put there between the check and the
    write) stays when the write fails; only what this call made goes."""
    plan = make_plan(tmp_path / "b", files(tmp_path / "in", "a_uncal.fits"))
    (plan.folder / "logs").mkdir(parents=True)
    (plan.folder / "logs" / "theirs.log").write_text("not ours")
    (plan.folder / "state").mkdir()
    (plan.folder / "notes.txt").write_text("not ours")
    real_write = service.write_text

    def full_at_the_plan(path, *args, **kwargs):
        if path.name == PLAN_FILE:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(service, "write_text", full_at_the_plan)
    with pytest.raises(OSError):
        service.write_folder(plan)
    assert tree(plan.folder) == ["logs", "logs/theirs.log", "notes.txt", "state"]


def test_an_interrupted_write_folder_leaves_nothing(tmp_path, monkeypatch):
    plan = make_plan(tmp_path / "b", files(tmp_path / "in", "a_uncal.fits"))

    def interrupted(path, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(service, "write_text", interrupted)
    with pytest.raises(KeyboardInterrupt):
        service.write_folder(plan)
    assert not plan.folder.exists()


def request(tmp_path: Path, out: Path) -> service.BatchRequest:
    return service.BatchRequest(
        image=str(ch_image(tmp_path / "image")), pipeline="calwebb_detector1",
        inputs=(str(exposure(tmp_path / "raw" / EXPOSURE)),), output=out,
        cache=crds_cache(tmp_path / "crds_cache"), runtime="charliecloud")


@pytest.mark.parametrize("existing", [False, True])
def test_a_local_submit_whose_submission_cannot_be_recorded_leaves_nothing(tmp_path,
                                                                          monkeypatch,
                                                                          existing):
    """The local run records its submission before any task starts: when that write fails,
    nothing ran and the folder goes as if the submit had never begun."""
    from niriss_pipe.batch.schedulers import local

    out = tmp_path / "out"
    if existing:
        out.mkdir()

    def full_disk(plan):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(plan.path(PLAN_FILE)))

    monkeypatch.setattr(local, "save_plan", full_disk)
    with pytest.raises(OSError):
        service.submit(request(tmp_path, out), quiet(), local=True)
    assert out.exists() == existing
    assert not existing or tree(out) == []


def test_save_plan_leaves_no_temporary_file_when_the_disk_is_full(tmp_path, monkeypatch):
    plan = make_plan(tmp_path / "b", files(tmp_path / "in", "a_uncal.fits"))
    service.write_folder(plan)
    before = tree(plan.folder)
    real_replace = os.replace

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        save_plan(plan.with_submission({"mode": "local", "job": "local-1", "indices": [1]}))
    monkeypatch.setattr(os, "replace", real_replace)
    assert tree(plan.folder) == before
    assert load_plan(plan.folder) == plan


# -- a damaged batch folder ------------------------------------------------------------------------
def batch_folder(tmp_path: Path):
    """A finished one-task local batch, its task failed: what every subcommand can read."""
    plan = make_plan(tmp_path / "b", files(tmp_path / "in", "a_uncal.fits"))
    service.write_folder(plan)
    plan = plan.with_submission({"mode": "local", "job": "local-1", "indices": [1], "at": "t",
                                 "host": socket.gethostname(), "pid": 0})
    save_plan(plan)
    write_record(plan.folder, {"state": "done", "exit": 1, "started": 10.0, "ended": 12.5,
                               "job": "local-1", "host": "node1"})
    return plan


def write_record(folder: Path, record) -> None:
    (folder / "state" / "1").write_text(json.dumps(record) + "\n")


def plan_with(folder: Path, **changes) -> str:
    data = json.loads((folder / PLAN_FILE).read_text())
    data.update(changes)
    return json.dumps(data)


GOOD_SUBMISSION = {"mode": "local", "job": "local-1", "indices": [1]}
DAMAGED_PLANS = {  # what is written into batch.json -> what the message says of it
    "a list": (lambda f: "[]", "it is a list, not an object"),
    "a string": (lambda f: '"x"', "it is a string, not an object"),
    "a number": (lambda f: "1", "it is a number, not an object"),
    "not JSON": (lambda f: "{", "Expecting property name"),
    "nested deep": (lambda f: "[" * 100_000, "recursion"),
    "submission a string": (lambda f: plan_with(f, submissions=["x"]),
                            "submissions[0] is a string, not an object"),
    "submission empty": (lambda f: plan_with(f, submissions=[{}]),
                         "submissions[0].mode is missing"),
    "submissions an object": (lambda f: plan_with(f, submissions={}), "submissions is an object"),
    "submission without job": (lambda f: plan_with(f, submissions=[{"mode": "slurm",
                                                                   "indices": [1]}]),
                               "submissions[0].job is missing"),
    "submission of another mode": (lambda f: plan_with(
        f, submissions=[{**GOOD_SUBMISSION, "mode": "pbs"}]), "submissions[0].mode is not one"),
    "indices a string": (lambda f: plan_with(f, submissions=[{**GOOD_SUBMISSION,
                                                              "indices": "1"}]),
                         "submissions[0].indices is a string"),
    "index out of range": (lambda f: plan_with(f, submissions=[{**GOOD_SUBMISSION,
                                                                "indices": [2]}]),
                           "submissions[0].indices holds something not a task number"),
    "pid a string": (lambda f: plan_with(f, submissions=[{**GOOD_SUBMISSION, "pid": "x"}]),
                     "submissions[0].pid is a string"),
    "job offsets not numbers": (lambda f: plan_with(f, submissions=[
        {"mode": "slurm", "job": "5", "indices": [1], "jobs": {"5": "x"}}]),
        "submissions[0].jobs is not"),
    "slurm a list": (lambda f: plan_with(f, slurm=[]), "slurm is a list"),
    "slurm with an unknown key": (lambda f: plan_with(f, slurm={"extra": [], "x": 1}),
                                  "slurm.x is not a field"),
    "image a list": (lambda f: plan_with(f, image=["x"]), "image is a list"),
    "tasks true": (lambda f: plan_with(f, tasks=True), "tasks is true"),
    "strun_args not strings": (lambda f: plan_with(f, strun_args=[1]),
                               "strun_args is a list, not a list of strings"),
    "cores a list": (lambda f: plan_with(f, cores=[1]), "cores is a list"),
    "no version": (lambda f: json.dumps({k: v for k, v in json.loads(
        (f / PLAN_FILE).read_text()).items() if k != "version"}), "version is missing"),
}
DAMAGED_RECORDS = {  # what is written into state/1 -> what the message says of it
    "a list": ("[1]", "it holds a list, not a record"),
    "a string": ('"x"', "it holds a string, not a record"),
    "null": ("null", "it holds null, not a record"),
    "not JSON": ("garbage", "it is not JSON"),
    "empty": ("", "it is not JSON"),
    "done without started": (json.dumps({"state": "done", "exit": 0, "job": "local-1",
                                         "host": "h", "ended": 5}),
                             "its start time is missing"),
    "the audit's record": (json.dumps({"state": "done", "exit": 0, "job": "local-1",
                                       "ended": 5}), "is damaged"),
    "done without exit": (json.dumps({"state": "done", "exit": None, "job": "local-1",
                                      "host": "h", "started": 1, "ended": 5}),
                          "its exit code is missing"),
    "exit a string": (json.dumps({"state": "done", "exit": "0", "job": "local-1", "host": "h",
                                  "started": 1, "ended": 5}), "its exit code"),
    "an unknown state": (json.dumps({"state": "zz", "exit": 0, "job": "local-1", "host": "h",
                                     "started": 1}), "its state is not one of"),
    "job a number": (json.dumps({"state": "done", "exit": 0, "job": 5, "host": "h",
                                 "started": 1}), "its job is a number"),
    "ended a string": (json.dumps({"state": "done", "exit": 0, "job": "local-1", "host": "h",
                                   "started": 1, "ended": "5"}), "its end time is not a number"),
    "started infinite": ('{"state": "running", "exit": null, "job": "local-1", "host": "h", '
                         '"started": Infinity, "ended": null}', "its start time"),
}
READERS = {  # every subcommand that reads the folder, as the CLI calls it
    "status": lambda f: service.status(f, quiet()),
    "status --json": lambda f: service.status_document(f, quiet()),
    "wait": lambda f: service.wait(f, quiet(), timeout=0),
    "retry --dry-run": lambda f: service.retry(f, quiet(), dry_run=True),
    "retry --local": lambda f: service.retry(f, quiet(), local=True),
    "cancel": lambda f: service.cancel(f, quiet()),
    "report": lambda f: service.report_page(f, quiet()),
}


def refusals_of_every_reader(folder: Path):
    """(subcommand, paragraph, fix) of each subcommand's refusal of ``folder``: each must
    refuse it (a UserError), none may read on."""
    for name, read in READERS.items():
        with pytest.raises(UserError) as caught:
            read(folder)
        yield name, caught.value.paragraph(), caught.value.fix


@pytest.mark.parametrize("case", DAMAGED_PLANS)
def test_a_damaged_batch_json_is_one_paragraph_for_every_subcommand(tmp_path, case):
    plan = batch_folder(tmp_path)
    text, said = DAMAGED_PLANS[case]
    (plan.folder / PLAN_FILE).write_text(text(plan.folder))
    for name, paragraph, fix in refusals_of_every_reader(plan.folder):
        assert f"{plan.folder / PLAN_FILE} cannot be read" in paragraph, (name, paragraph)
        assert said in paragraph, (name, paragraph)
        assert "submit the batch again into a new folder" in fix
        assert "\n" not in paragraph
    assert not (plan.folder / "report.html").exists()


@pytest.mark.parametrize("case", DAMAGED_RECORDS)
def test_a_damaged_task_record_is_one_paragraph_for_every_subcommand(tmp_path, case):
    plan = batch_folder(tmp_path)
    text, said = DAMAGED_RECORDS[case]
    (plan.folder / "state" / "1").write_text(text)
    record = plan.folder / "state" / "1"
    for name, paragraph, fix in refusals_of_every_reader(plan.folder):
        assert f"the record of task 1, {record}, " in paragraph, (name, paragraph)
        assert said in paragraph, (name, paragraph)
        assert f"rm {record}" in fix and "batch retry" in fix
        assert "\n" not in paragraph
    assert tree(plan.folder / "logs") == ["slurm"]  # retry --local ran nothing


def test_a_record_that_is_a_folder_names_the_command_that_removes_it(tmp_path):
    plan = batch_folder(tmp_path)
    record = plan.folder / "state" / "1"
    record.unlink()
    record.mkdir()
    with pytest.raises(UserError) as caught:
        service.status(plan.folder, quiet())
    assert "cannot be read: is a directory" in caught.value.what
    assert f"rm -r {record}" in caught.value.fix


def test_the_fix_works_a_removed_record_makes_the_task_one_to_retry(tmp_path):
    plan = batch_folder(tmp_path)
    (plan.folder / "state" / "1").write_text("[1]")
    with pytest.raises(UserError):
        service.status(plan.folder, quiet())
    (plan.folder / "state" / "1").unlink()
    reporter = quiet()
    assert service.retry(plan.folder, reporter, dry_run=True) == Outcome.PLANNED
    assert "would retry 1 tasks" in reporter.out.getvalue()


def test_records_and_plans_as_submit_and_task_sh_write_them_are_read(tmp_path, monkeypatch):
    """The checks refuse nothing real: every record state task.sh writes, and a plan with
    SLURM blocks, a cancelled submission and no optional fields."""
    from niriss_pipe.batch.schedulers import slurm

    monkeypatch.setattr(slurm, "available", lambda: False)  # no squeue asked, if there is one
    plan = batch_folder(tmp_path)
    for record in ({"state": "running", "exit": None, "started": 1.5, "ended": None},
                   {"state": "killed", "exit": 143, "started": 1, "ended": 2},
                   {"state": "done", "exit": 0, "started": 1776000000.123456789,
                    "ended": 1776000010.5}):
        write_record(plan.folder, {**record, "job": "local-1", "host": "node1"})
        service.status(plan.folder, quiet())
    (plan.folder / PLAN_FILE).write_text(plan_with(plan.folder, submissions=[
        {"mode": "slurm", "job": "30", "jobs": {"30": 0, "31": 1000}, "indices": [1],
         "at": "t", "array": "1; 1 +1000", "cancelled": True},
        {**GOOD_SUBMISSION, "future_field": {"x": 1}}]))
    service.status(plan.folder, quiet())
    data = json.loads(plan_with(plan.folder))
    for optional in ("parameters", "preview", "cores", "folder"):
        data.pop(optional)
    (plan.folder / PLAN_FILE).write_text(json.dumps(data))
    assert load_plan(plan.folder).cores == {}


def test_the_cli_gives_exit_2_and_one_paragraph_not_a_traceback(tmp_path):
    plan = batch_folder(tmp_path)
    (plan.folder / PLAN_FILE).write_text("[]")
    build = [sys.executable, str(ROOT / "build.py"), "batch"]
    proc = subprocess.run([*build, "status", str(plan.folder)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc
    assert proc.stderr.startswith(f"error: {plan.folder / PLAN_FILE} cannot be read")
    assert len(proc.stderr.strip().splitlines()) == 1
    batch_folder(tmp_path / "again")
    folder = tmp_path / "again" / "b"
    write_record(folder, {"state": "done", "exit": 0, "job": "local-1", "ended": 5})
    proc = subprocess.run([*build, "report", str(folder)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc
    assert f"the record of task 1, {folder}/state/1, is damaged" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# -- wait --timeout --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "-5", "-0.5",
                                   "1e3", "1e308", " 10", "10\n", "１０", "", "0x10", "1_0",
                                   "9999999999", "1.2345678", float("nan"), float("inf"),
                                   -1, -0.01, True])
def test_wait_timeout_refuses_what_is_not_seconds(value):
    with pytest.raises(UserError) as caught:
        check_timeout(value)
    assert caught.value.what.startswith("--timeout ") and "0 or more" in caught.value.what
    assert "--timeout 3600" in caught.value.fix and "\n" not in caught.value.paragraph()


@pytest.mark.parametrize("value, seconds", [("0", 0.0), ("0.5", 0.5), ("3600", 3600.0),
                                            ("999999999", 999999999.0), (2, 2.0), (0.25, 0.25),
                                            (None, None)])
def test_wait_timeout_takes_seconds(value, seconds):
    assert check_timeout(value) == seconds


def running_batch(tmp_path: Path) -> Path:
    """A batch whose task is running in a local run of this very process (alive, here)."""
    plan = batch_folder(tmp_path)
    (plan.folder / PLAN_FILE).write_text(plan_with(plan.folder, submissions=[
        {**GOOD_SUBMISSION, "host": socket.gethostname(), "pid": os.getpid()}]))
    write_record(plan.folder, {"state": "running", "exit": None, "started": 1, "ended": None,
                               "job": "local-1", "host": "node1"})
    return plan.folder


def test_wait_timeout_0_looks_once_and_a_timeout_gives_up_on_time(tmp_path):
    folder = running_batch(tmp_path)
    reporter = quiet()
    assert service.wait(folder, reporter, timeout="0", poll=60) == Outcome.GOING
    assert "still not finished after 0 s: 1 tasks: 1 running" in reporter.out.getvalue()
    started = time.monotonic()
    reporter = quiet()
    assert service.wait(folder, reporter, timeout="0.5", poll=60) == Outcome.GOING
    assert time.monotonic() - started < 30  # the last look is at the timeout, not a 60 s poll later
    assert "after 0.5 s" in reporter.out.getvalue()


def test_wait_timeout_nan_is_refused_by_the_cli(tmp_path):
    folder = running_batch(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "batch", "wait",
                           str(folder), "--timeout", "nan"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc
    assert proc.stderr.startswith("error: --timeout 'nan' is not a number of seconds")
