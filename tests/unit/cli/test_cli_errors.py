"""No traceback for anything a user can cause: OS errors on the paths they give (read-only,
full, a file where a folder should be), a closed pipe; and nothing half-written left behind.

Read-only and full file systems are real: a small tmpfs in a private mount namespace
(``unshare --mount``, with ``--map-root-user`` when not root), gone when the command ends.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers import ROOT

NEW = f"{sys.executable} {ROOT / 'build.py'} new --jwst 0.14.2"  # no network needed for 0.14.2


def in_mount_namespace(script: str) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) where it may mount: its mounts vanish with it."""
    namespace = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    return subprocess.run([*namespace, "sh", "-c", script], capture_output=True, text=True,
                          cwd=ROOT)


def test_new_into_a_read_only_folder(tmp_path):
    proc = in_mount_namespace(
        f"mount -t tmpfs -o size=64k tmpfs {tmp_path} && mount -o remount,ro {tmp_path} && "
        f"{NEW} -o {tmp_path}/paper.yaml; echo rc=$?; ls -A {tmp_path}")
    assert "rc=2" in proc.stdout, proc
    assert "Traceback" not in proc.stderr
    message = " ".join(proc.stderr.split())
    assert f"error: cannot use {tmp_path}/paper.yaml: Read-only file system" in message
    assert "Fix:" in message
    assert proc.stdout.strip().endswith("rc=2")  # ls printed nothing: no file, no temp file


def test_new_onto_a_full_disk_leaves_nothing(tmp_path):
    proc = in_mount_namespace(
        f"mount -t tmpfs -o size=16k tmpfs {tmp_path} && "
        f"(dd if=/dev/zero of={tmp_path}/filler bs=1k count=64 2>/dev/null; true) && "
        f"{NEW} -o {tmp_path}/paper.yaml; echo rc=$?; ls -A {tmp_path}")
    assert "rc=2" in proc.stdout, proc
    message = " ".join(proc.stderr.split())
    assert "No space left on device" in message and "disk is full" in message, message
    assert proc.stdout.split("rc=2", 1)[1].split() == ["filler"]  # no temp file left


def test_new_under_a_file_is_a_paragraph(tmp_path):
    (tmp_path / "afile").write_text("x")
    proc = subprocess.run([*NEW.split(), "-o", str(tmp_path / "afile" / "paper.yaml")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Not a directory" in proc.stderr and "is a file, not a folder" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_closed_pipe_is_not_a_traceback():
    """`build.py validate -v ... | head -1` when head has gone: no traceback."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "validate", "-v",
                           "images/default.yaml"], stdout=write, stderr=subprocess.PIPE,
                          text=True, cwd=ROOT)
    os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


def test_errors_are_whole_lines_when_not_on_a_terminal(tmp_path):
    """Scripts and tests match on the message: it is not wrapped at any width in a pipe."""
    spec = tmp_path / "x.yaml"
    spec.write_text("name: niriss-pipe\ncrds: {context: jwst_15.pmap}\n")
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "validate", str(spec)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert len(proc.stderr) > 100  # long enough that any fixed wrap would have broken it
