"""Machine-readable output, typed as users type it: ``--json`` prints one JSON document on
stdout and nothing else (progress goes to stderr), refusals included; ``batch submit
--parsable`` prints only the job ids, for ``sbatch --dependency=afterok:IDS``. The commands
that need an engine or a CRDS server are checked in the integration tier (test_json.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT
from tests.unit.batch.test_batch_cli import Submit

FAKE_SLURM = {  # sbatch numbers its jobs from 101; the cluster's MaxArraySize is 3
    "sbatch": '#!/bin/sh\nn=$(cat "$FAKE_SLURM/next" 2>/dev/null || echo 101)\n'
              'echo $((n + 1)) >"$FAKE_SLURM/next"\necho "$*" >>"$FAKE_SLURM/calls"\necho "$n"\n',
    "squeue": "#!/bin/sh\nexit 0\n",
    "scontrol": "#!/bin/sh\necho 'MaxArraySize            = 3'\n",
}


def typed(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "build.py"), *args], cwd=cwd,
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=120)


def fake_slurm(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "slurm-bin"
    bin_dir.mkdir()
    for name, text in FAKE_SLURM.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_SLURM": str(tmp_path)}


def test_validate_json_reports_every_spec_and_exits_2_when_one_is_bad(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: niriss-pipe\ncrds: {context: jwst_15.pmap}\n")
    proc = typed("validate", "--json", str(ROOT / "images/default.yaml"), str(bad), cwd=ROOT)
    assert proc.returncode == 2
    specs = json.loads(proc.stdout)["specs"]
    assert [s["ok"] for s in specs] == [True, False]
    assert specs[0]["tags"] == ["niriss-pipe:jwst_1584", "niriss-pipe:jwst_1584-jwst3.0.0-py3.11"]
    assert specs[0]["labels"]["io.niriss-pipe.crds.context"] == "jwst_1584.pmap"
    assert "crds.context" in specs[1]["error"] and "error:" in proc.stderr


def test_a_refusal_with_json_is_a_document_too(tmp_path):
    proc = typed("cache", "--json", "--cache", str(tmp_path / "missing"), cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    document = json.loads(proc.stdout)
    assert document["exit"] == 2 and document["kind"] == "UserError"
    assert document["error"] == proc.stderr.removeprefix("error: ").rstrip("\n")


def test_cache_json(tmp_path):
    (tmp_path / "c" / "mappings" / "jwst").mkdir(parents=True)
    proc = typed("cache", "--json", "--cache", str(tmp_path / "c"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"cache": str(tmp_path / "c"), "bytes": 0, "contexts": {},
                                       "references": []}


def test_submit_parsable_prints_only_the_job_ids_for_a_dependency(tmp_path):
    env = fake_slurm(tmp_path)
    names = [f"jw0{i}_nis_uncal.fits" for i in range(1, 5)]
    (tmp_path / "raw").mkdir()
    for name in names:
        (tmp_path / "raw" / name).write_bytes(b"SIMPLE")
    submit = Submit(tmp_path, inputs=[str(tmp_path / "raw" / n) for n in names])
    argv = [a for a in submit.argv() if a != "--dry-run"]
    proc = typed(*argv[:2], "--parsable", *argv[2:], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "101:102\n"  # four tasks in arrays of at most 2: two jobs
    assert "submitted SLURM jobs 101 (--array=1-2), 102" in proc.stderr  # progress: stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[0].startswith("--parsable --array=1-2 ")
    assert "NIRISS_PIPE_INDEX_OFFSET=2" in calls[1]


def test_submit_json_names_the_jobs_and_the_batch(tmp_path):
    env = fake_slurm(tmp_path)
    submit = Submit(tmp_path)
    argv = [a for a in submit.argv() if a != "--dry-run"]
    proc = typed(*argv[:2], "--json", *argv[2:], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["jobs"] == ["101"] and document["mode"] == "slurm"
    assert document["folder"] == str(tmp_path / "out") and document["tasks"] == 1
    assert document["runtime"] == "charliecloud" and document["outcome"] == "submitted"
    status = typed("batch", "status", "--json", str(tmp_path / "out"), cwd=tmp_path, env=env)
    tasks = json.loads(status.stdout)["tasks"]
    assert [(t["index"], t["job"]) for t in tasks] == [(1, "101")]
    # `batch status --json | head -1` once head has gone: no traceback.
    read, write = os.pipe()
    os.close(read)
    closed = subprocess.run([sys.executable, str(ROOT / "build.py"), "batch", "status", "--json",
                             str(tmp_path / "out")], stdout=write, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **env})
    os.close(write)
    assert closed.returncode == 141 and "Traceback" not in closed.stderr, closed.stderr


def test_json_into_a_closed_pipe_is_not_a_traceback(tmp_path):
    """``build.py validate --json ... | head -c0``: the reader left before the document."""
    for argv in (["validate", "--json", "images/default.yaml"],
                 ["cache", "--json", "--cache", str(tmp_path / "missing")]):
        read, write = os.pipe()
        os.close(read)
        proc = subprocess.run([sys.executable, str(ROOT / "build.py"), *argv], stdout=write,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT)
        os.close(write)
        assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
        assert proc.returncode in (2, 141), (argv, proc.returncode)
