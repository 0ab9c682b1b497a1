"""build.py batch on a real single-node SLURM (.ci/install-slurm), with real runtimes: job arrays
of synthetic NIRISS exposures under Docker and Charliecloud, one bad input among them, retry,
scancel, and the same batch with local workers.

Never skipped: without sbatch, ch-run or a Docker Engine these fail, because CI starts them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from niriss_pipe.runtime.contract import THREAD_ENV
from tests.helpers import cli, colour_runs, docker, find_image, screenshot

pytestmark = [pytest.mark.engine, pytest.mark.cluster]

SYNTHETIC = "jwst_9999.pmap"
GOOD = ("jw01001_nis_uncal.fits", "jw01002_nis_uncal.fits", "jw01003_nis_uncal.fits")
BAD = "jw01004bad_nis_uncal.fits"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(args), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n"
                             f"{proc.stderr}")
    return proc


@pytest.fixture(scope="module", autouse=True)
def slurm_up():
    """The CI cluster answers (a failure here means .ci/install-slurm did not run)."""
    states = run("sinfo", "--noheader", "--format=%T").stdout.split()
    assert states and set(states) <= {"idle", "mixed", "allocated"}, states


@pytest.fixture(scope="module")
def area(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("batch")
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def exposures(area, default_image) -> Path:
    """Three synthetic exposures (copies of one, made by the image's own synth) and one file
    that is not FITS, named like an exposure."""
    folder = area / "raw"
    folder.mkdir()
    docker("run", "--rm", "--network", "none", "--user", "0:0", "-v", f"{folder}:/data",
           default_image, "python", "-m", "niriss_pipe.runtime.synth", "exposure",
           f"/data/{GOOD[0]}")
    for name in GOOD[1:]:
        shutil.copy(folder / GOOD[0], folder / name)
    (folder / BAD).write_text("this is not a FITS file\n")
    return folder


def submit(image: str, inputs: list[str], out: Path, cache: Path, *extra: str,
           check: bool = True) -> subprocess.CompletedProcess:
    return cli("batch", "submit", image, "calwebb_detector1", *inputs, "-o", str(out),
               "--cache", str(cache), "--context", SYNTHETIC, *extra, check=check)


def status(out: Path) -> dict:
    proc = cli("batch", "status", str(out), "--json", check=False)
    return json.loads(proc.stdout)


def states(out: Path) -> dict[str, str]:
    return {task["input"]: task["state"] for task in status(out)["tasks"]}


def assert_valid_rate(path: Path) -> np.ndarray:
    """A real detector1 product: a 64x64 SUB64 rate image, every step done, finite values."""
    with fits.open(path) as hdus:
        header = hdus[0].header
        assert header["CRDS_CTX"] == SYNTHETIC
        for step in ("S_DQINIT", "S_SATURA", "S_SUPERB", "S_LINEAR", "S_JUMP", "S_RAMP"):
            assert header[step] == "COMPLETE", step
        sci = hdus["SCI"].data
        assert sci.shape == (64, 64) and np.isfinite(sci).all()
        return np.array(sci)


def containers(prefix: str = "niriss-pipe-") -> list[str]:
    """The containers named ``prefix...`` (tasks name theirs ``niriss-pipe-JOB-INDEX-PID``),
    but those docker compose manages: the test session's own services, such as the git
    server of the compose project ``niriss-pipe-test-PID``."""
    rows = docker("ps", "--all", "--format",
                  '{{.Names}}\t{{.Label "com.docker.compose.project"}}').stdout.splitlines()
    return [name for name, _, project in (row.partition("\t") for row in rows)
            if name.startswith(prefix) and not project]


@pytest.fixture(scope="module")
def docker_batch(area, exposures, synthetic_cache, default_image_id) -> Path:
    """The array under Docker: three good exposures and the bad one, two at a time (the image
    by id: the default tag may move to another build of the spec on a shared engine)."""
    out = area / "docker-batch"
    proc = submit(default_image_id, [str(exposures / "*.fits")], out, synthetic_cache,
                  "--throttle", "2", "--time", "10", "--json")
    assert "submitted SLURM job" in proc.stderr  # --json: progress on stderr
    # CI's MaxArraySize is 3 (.ci/install-slurm): four tasks go as two arrays of two.
    jobs = json.loads((out / "batch.json").read_text())["submissions"][0]["jobs"]
    assert sorted(jobs.values()) == [0, 2], jobs
    document = json.loads(proc.stdout)
    assert document["jobs"] == list(jobs) and document["tasks"] == 4
    assert document["mode"] == "slurm" and document["image_id"].startswith("sha256:")
    waited = cli("batch", "wait", str(out), check=False)
    assert waited.returncode == 1, waited.stdout + waited.stderr  # one task failed
    return out


def test_array_under_docker_runs_every_exposure_and_fails_the_bad_one_alone(
        docker_batch, exposures):
    assert states(docker_batch) == {**{name: "completed" for name in GOOD}, BAD: "failed"}
    for name in GOOD:
        stem = name.removesuffix("_uncal.fits")
        assert_valid_rate(docker_batch / "products" / stem / f"{stem}_rate.fits")
        log = (docker_batch / "logs" / f"{GOOD.index(name) + 1}.log").read_text()
        assert "Results used CRDS context: jwst_9999.pmap" in log
    report = cli("batch", "status", str(docker_batch), check=False)
    assert report.returncode == 1
    assert f"failed: {BAD} (task 4, exit 1)" in report.stdout
    assert "OSError: No SIMPLE card found" in report.stdout
    assert "batch retry" in report.stdout
    assert list((docker_batch / "products" / "jw01004bad_nis").iterdir()) == []
    assert containers() == []  # --rm: nothing left behind
    # One core (SLURM's cpus-per-task=1): the container's thread pools and jwst get one.
    log = (docker_batch / "logs" / "1.log").read_text()
    assert in_container(1) in log and "Maximum cores to use = 1" in log


def in_container(cpus: int) -> str:
    """The entrypoint's line: the task's cores and thread variables, as the container sees
    them."""
    threads = " ".join(f"{name}={cpus}" for name in THREAD_ENV)
    return f"[niriss-pipe] in the container: NIRISS_PIPE_CPUS={cpus} {threads}"


def test_every_good_task_wrote_previews_in_the_image(docker_batch):
    for name in GOOD:
        stem = name.removesuffix("_uncal.fits")
        folder = docker_batch / "products" / stem
        with Image.open(folder / f"{stem}_rate.png") as png, \
                Image.open(folder / f"{stem}_rate.thumb.png") as thumb:
            assert png.size == (640, 720) and thumb.size == (128, 128)
        assert (folder / f"{stem}_rate.png").stat().st_uid == os.getuid()  # as the user
        log = (docker_batch / "logs" / f"{GOOD.index(name) + 1}.log").read_text()
        assert f"preview: /data/{stem}_rate.png (no flagged pixels)" in log


def test_report_page_of_the_array_in_a_real_browser(docker_batch, tmp_path):
    """batch report on the array as it ended (three completed, one failed), rendered by
    chromium: the bar's colours in proportion, each product's thumbnail in its row."""
    from niriss_pipe.batch.report import COLOURS

    proc = cli("batch", "report", str(docker_batch))
    page = docker_batch / "report.html"
    assert proc.stdout.strip().endswith("report.html: 4 tasks: 3 completed, 1 failed")
    html = page.read_text()
    assert "CAL_VER: <code>3.0.0</code> (3 products)" in html
    assert "CRDS_CTX: <code>jwst_9999.pmap</code> (3 products)" in html
    for reftype in ("dark", "gain", "ipc", "linearity", "mask", "readnoise", "saturation",
                    "superbias"):
        assert f"<code>jwst_niriss_{reftype}_9999.fits</code></td><td class=\"num\">3</td>" \
            in html, reftype
    assert "No SIMPLE card found" in html and '<a href="logs/4.log">' in html
    screen = screenshot(page, tmp_path / "report.png", 1400, 1600)
    green, red = (tuple(int(COLOURS[s][i:i + 2], 16) for i in (1, 3, 5))
                  for s in ("completed", "failed"))
    bar = [y for y in range(screen.shape[0]) if colour_runs(screen[y], green)
           and colour_runs(screen[y], red)]
    (_, g), (_, r) = (max(colour_runs(screen[bar[5]], c), key=lambda run: run[1])
                      for c in (green, red))
    assert abs(g - 3 * r) <= 3, (g, r)
    rows = []
    for name in GOOD:
        stem = name.removesuffix("_uncal.fits")
        with Image.open(docker_batch / "products" / stem / f"{stem}_rate.thumb.png") as thumb:
            found = find_image(screen, np.asarray(thumb.convert("RGB")))
        assert len(found) >= 1, name  # the same exposure thrice: equal thumbnails may repeat
        rows += found
    assert len(set(rows)) == 3  # three thumbnails shown, one per completed task


def test_retry_reruns_only_the_failed_task(docker_batch, exposures):
    before = {i: json.loads((docker_batch / "state" / str(i)).read_text()) for i in (1, 2, 3)}
    (exposures / BAD).unlink()
    shutil.copy(exposures / GOOD[0], exposures / BAD)  # the user fixes the input
    try:
        proc = cli("batch", "retry", str(docker_batch))
        assert f"retrying 1 tasks: {BAD}" in proc.stdout
        plan = json.loads((docker_batch / "batch.json").read_text())
        assert [s["indices"] for s in plan["submissions"]] == [[1, 2, 3, 4], [4]]
        waited = cli("batch", "wait", str(docker_batch), check=False)
        assert waited.returncode == 0, waited.stdout
    finally:
        (exposures / BAD).write_text("this is not a FITS file\n")
    assert set(states(docker_batch).values()) == {"completed"}
    after = {i: json.loads((docker_batch / "state" / str(i)).read_text()) for i in (1, 2, 3)}
    assert after == before  # the completed tasks did not run again
    assert_valid_rate(docker_batch / "products" / "jw01004bad_nis" / "jw01004bad_nis_rate.fits")
    log = (docker_batch / "logs" / "4.log").read_text()
    assert log.count("[niriss-pipe] task 4/4") == 2  # both attempts, appended
    nothing = cli("batch", "retry", str(docker_batch))
    assert "nothing to retry" in nothing.stdout


@pytest.fixture(scope="module")
def parameters(area, default_image) -> Path:
    """A strun parameter file written by the image's own jwst: detector1 as it is, but with
    ramp_fit's optional results saved (an extra product, the rate unchanged)."""
    folder = area / "params"
    folder.mkdir()
    docker("run", "--rm", "--network", "none", "--user", f"{os.getuid()}:{os.getgid()}",
           "-v", f"{folder}:/data", default_image, "python", "-c",
           "from jwst.pipeline import Detector1Pipeline\n"
           "pipeline = Detector1Pipeline()\npipeline.ramp_fit.save_opt = True\n"
           "pipeline.export_config('/data/det1_fitopt.asdf')\n")
    return folder / "det1_fitopt.asdf"


def test_array_under_charliecloud_gives_the_same_products(area, exposures, synthetic_cache,
                                                         default_image_id, docker_batch,
                                                         parameters):
    """From the SquashFS export, with the parameter file as the pipeline (its folder bound
    into each task) and --parsable: the job ids alone, as sbatch --dependency takes them."""
    image = area / "image.sqfs"
    cli("export", default_image_id, "--to", "squashfs", "-o", str(image))
    out = area / "ch-batch"
    proc = cli("batch", "submit", str(image), str(parameters),
               *[str(exposures / name) for name in GOOD], "-o", str(out), "--cache",
               str(synthetic_cache), "--context", SYNTHETIC, "--runtime", "charliecloud",
               "--parsable", "--cpus", "2")
    jobs = json.loads((out / "batch.json").read_text())["submissions"][0]["jobs"]
    assert proc.stdout == ":".join(jobs) + "\n"  # three tasks, arrays of two: two jobs
    test_only = run("sbatch", "--test-only", f"--dependency=afterok:{proc.stdout.strip()}",
                    "--wrap", "true", check=False)
    assert "error" not in test_only.stderr.lower(), test_only.stderr  # sbatch takes it
    waited = cli("batch", "wait", str(out), check=False)
    assert waited.returncode == 0, waited.stdout
    task_sh = (out / "task.sh").read_text()
    assert "ch-run" in task_sh and f"--bind={parameters.parent}:/mnt/1" in task_sh
    for name in GOOD:
        stem = name.removesuffix("_uncal.fits")
        sci = assert_valid_rate(out / "products" / stem / f"{stem}_rate.fits")
        same = fits.getdata(docker_batch / "products" / stem / f"{stem}_rate.fits", "SCI")
        assert np.array_equal(sci, same)
        assert (out / "products" / stem / f"{stem}_fitopt.fits").is_file()  # the file's say
        assert (out / "products" / stem / f"{stem}_rate.thumb.png").is_file()  # ch-run too
    assert not list((docker_batch / "products").glob("*/*_fitopt.fits"))  # not by default
    # SLURM's 2 cpus per task reach ch-run's container; the parameter file (written with every
    # step's maximum_cores, jwst's default 1) keeps its own, so none is passed.
    log = (out / "logs" / "1.log").read_text()
    assert in_container(2) in log and "Maximum cores to use = 1" in log
    assert "maximum_cores" not in task_sh
    assert json.loads((out / "batch.json").read_text())["cores"]["maximum_cores"] == {}


def test_local_workers_give_the_same_outputs_as_slurm(area, exposures, synthetic_cache,
                                                     default_image_id, docker_batch):
    out = area / "local-batch"
    proc = submit(default_image_id, [str(exposures / name) for name in GOOD], out,
                  synthetic_cache, "--local", "-j", "2", "--cpus", "2")
    assert proc.stdout.count(": ok ") == 3 and "3 tasks: 3 completed" in proc.stdout
    # --cpus 2: the threads and jwst 3.0.0's jump and ramp_fit use 2 cores in the container
    # (the products below are still the one-core array's, bit for bit).
    log = (out / "logs" / "1.log").read_text()
    assert in_container(2) in log and "Maximum cores to use = 2" in log
    assert "Creating 2 processes for jump detection" in log
    assert "Number of processors used for multiprocessing: 2" in log
    assert json.loads((out / "batch.json").read_text())["cores"]["maximum_cores"] == {
        "jump": "integer", "ramp_fit": "integer"}
    for name in GOOD:
        stem = name.removesuffix("_uncal.fits")
        ours = sorted(p.name for p in (out / "products" / stem).iterdir())
        theirs = sorted(p.name for p in (docker_batch / "products" / stem).iterdir())
        assert ours == theirs
        for product in (name for name in ours if name.endswith(".fits")):
            with fits.open(out / "products" / stem / product) as a, \
                    fits.open(docker_batch / "products" / stem / product) as b:
                for ext in ("SCI", "ERR", "DQ"):
                    assert np.array_equal(a[ext].data, b[ext].data), (product, ext)
    records = [json.loads((out / "state" / str(i)).read_text()) for i in (1, 2, 3)]
    assert {r["job"] for r in records} == {json.loads((out / "batch.json").read_text())
                                           ["submissions"][0]["job"]}


def test_scancel_stops_the_containers(area, exposures, synthetic_cache, default_image):
    out = area / "cancel-batch"
    submit(default_image, [str(exposures / name) for name in GOOD], out, synthetic_cache)
    jobs = list(json.loads((out / "batch.json").read_text())["submissions"][0]["jobs"])

    def ours() -> list[str]:
        return [name for job in jobs for name in containers(f"niriss-pipe-{job}_")]

    deadline = time.monotonic() + 60
    while len(ours()) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(ours()) == 2, "two tasks never started"
    run("scancel", *jobs)
    deadline = time.monotonic() + 30
    while ours() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ours() == []
    time.sleep(1)
    got = states(out)
    assert sorted(got.values()) == ["killed"] * 3, got
    report = cli("batch", "status", str(out), check=False)
    assert report.returncode == 1 and "cancelled before it started" in report.stdout
    assert "SIGTERM received, stopping the container" in (out / "logs" / "1.log").read_text()


def test_submit_errors_name_the_fix_and_write_nothing(area, exposures, synthetic_cache,
                                                     default_image, tmp_path):
    out = tmp_path / "never"
    cases = [
        (["--runtime", "shifter"], "--runtime: invalid choice: 'shifter'"),
        (["--time", "1h"], "is not a SLURM time"),
        (["--sbatch=--array=1-9"], "which the batch manages"),
        (["--sbatch=-a1-9"], "which the batch manages"),
        (["--partition", "batch\n#SBATCH --array=1-9"], "--partition 'batch\\n#SBATCH"),
    ]
    for extra, message in cases:
        proc = submit(default_image, [str(exposures / GOOD[0])], out, synthetic_cache, *extra,
                      check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    proc = submit(default_image, [str(exposures / "nothing*.fits")], out, synthetic_cache,
                  check=False)
    assert proc.returncode == 2 and "matches no file" in proc.stderr
    proc = cli("batch", "submit", default_image, "calwebb_detector1", str(exposures / GOOD[0]),
               "-o", str(out), "--cache", str(synthetic_cache), "--context", "jwst_0001.pmap",
               check=False)
    assert proc.returncode == 2 and "does not hold the context jwst_0001.pmap" in proc.stderr
    proc = submit(default_image, [str(exposures / GOOD[0])], out, synthetic_cache,
                  "--runtime", "charliecloud", check=False)
    assert proc.returncode == 2 and "export" in proc.stderr
    assert not out.exists()
    proc = submit(default_image, [str(exposures / GOOD[0])], out, synthetic_cache,
                  "--partition", "nosuch", check=False)  # checked by sbatch itself
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2 and "sbatch refused the job array" in message, message
    assert "invalid partition" in message and "Nothing was submitted." in message
    assert not out.exists()
    dry = submit(default_image, [str(exposures / "*.fits")], out, synthetic_cache,
                 "--dry-run", "--throttle", "3")
    # Four tasks, MaxArraySize 3: two arrays, the second with an index offset.
    assert "# would submit: sbatch --array=1-2%3 /" in dry.stdout
    assert "# would submit: sbatch --array=1-2%3 --export=ALL,NIRISS_PIPE_INDEX_OFFSET=2 /" \
        in dry.stdout
    assert "#SBATCH --output=" in dry.stdout and "docker run --rm --init" in dry.stdout
    assert not out.exists()


def test_the_sbatch_option_table_matches_this_sbatch(tmp_path):
    """sbatchopts' table (from slurm_opt.c) holds every option this sbatch lists, with the
    same short letters; and this sbatch reads the spellings the batch refuses as it says
    (--arr and -Qa are --array; --ti is ambiguous), from an #SBATCH line, with --test-only."""
    from niriss_pipe.batch import sbatchopts
    from niriss_pipe.core.errors import UserError

    help_text = run("sbatch", "--help").stdout
    listed = set(re.findall(r"--([a-z][a-z0-9-]*)", help_text))
    assert len(listed) > 80 and listed <= set(sbatchopts.LONG), listed - set(sbatchopts.LONG)
    pairs = dict(re.findall(r"^\s+-([A-Za-z]),?\s+--([a-z-]+)", help_text, re.M))
    assert len(pairs) > 30
    assert {letter: sbatchopts.SHORT[letter][0] for letter in pairs} == pairs
    script = tmp_path / "probe.sbatch"
    for word, says in [("--arr=x", "Invalid job array specification"),
                       ("-Qax", "Invalid job array specification"),
                       ("-ax", "Invalid job array specification"),
                       ("--ti=5", "is ambiguous"), ("--exp=NONE", "is ambiguous")]:
        script.write_text(f"#!/bin/bash\n#SBATCH {word}\ntrue\n")
        proc = run("sbatch", "--test-only", str(script), check=False)
        assert says in proc.stderr, (word, proc.stderr)
        with pytest.raises(UserError):
            sbatchopts.check(word)


def test_array_under_podman_loads_the_archive_and_gives_the_same_products(
        area, exposures, synthetic_cache, default_image_id, docker_batch):
    archive = area / "image.tar"
    cli("export", default_image_id, "--to", "docker-archive", "-o", str(archive))
    image_id = docker("image", "inspect", "--format", "{{.Id}}", default_image_id).stdout.strip()
    run("podman", "rmi", "--force", image_id.split(":")[1], check=False)  # a node without it
    out = area / "podman-batch"
    proc = submit(str(archive), [str(exposures / name) for name in GOOD[:2]], out,
                  synthetic_cache, "--runtime", "podman")
    assert "loading image.tar into podman's image store" in proc.stdout
    waited = cli("batch", "wait", str(out), check=False)
    assert waited.returncode == 0, waited.stdout
    for name in GOOD[:2]:
        stem = name.removesuffix("_uncal.fits")
        sci = assert_valid_rate(out / "products" / stem / f"{stem}_rate.fits")
        same = fits.getdata(docker_batch / "products" / stem / f"{stem}_rate.fits", "SCI")
        assert np.array_equal(sci, same)
    names = run("podman", "ps", "--all", "--format", "{{.Names}}").stdout.split()
    assert [name for name in names if name.startswith("niriss-pipe-")] == []
    assert in_container(1) in (out / "logs" / "1.log").read_text()  # podman's --env too


# A stand-in for apptainer (not installable here): under real SLURM it shows how a task that
# outlives --time is reported; the exposure named *slow* sleeps until SLURM's limit.
STAND_IN_APPTAINER = r"""#!/bin/bash
products= input=
while [ $# -gt 0 ]; do
    case "$1" in
        --bind) case "$2" in *:/data) products=${2%:/data} ;; esac; shift ;;
        /mnt/0/*) input=$1 ;;
        niriss_pipe.runtime.preview) exit 0 ;;  # the preview container: nothing to draw
    esac
    shift
done
case "$input" in *slow*) exec sleep 600 ;; esac
echo product >"$products/$(basename "$input" _uncal.fits)_rate.fits"
"""


def test_time_limit_is_reported_as_killed_with_slurms_reason(area, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apptainer").write_text(STAND_IN_APPTAINER)
    (bin_dir / "apptainer").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")  # sbatch passes it on
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("jw09001slow_nis_uncal.fits", "jw09002_nis_uncal.fits"):
        (raw / name).write_text("SIMPLE")
    cache = tmp_path / "cache"
    (cache / "mappings" / "jwst").mkdir(parents=True)
    (cache / "mappings" / "jwst" / SYNTHETIC).write_text("")
    (tmp_path / "image.sif").write_text("a SIF stand-in")
    out = area / "time-limit-batch"
    cli("batch", "submit", str(tmp_path / "image.sif"), "calwebb_detector1",
        str(raw / "*.fits"), "-o", str(out), "--cache", str(cache), "--context", SYNTHETIC,
        "--runtime", "apptainer", "--time", "1")  # one minute: the shortest SLURM allows
    waited = cli("batch", "wait", str(out), "--timeout", "300", check=False)
    assert waited.returncode == 1, waited.stdout
    assert states(out) == {"jw09001slow_nis_uncal.fits": "killed",
                           "jw09002_nis_uncal.fits": "completed"}
    assert "DUE TO TIME LIMIT" in " ".join(waited.stdout.split())
    assert (out / "products" / "jw09002_nis" / "jw09002_nis_rate.fits").is_file()
