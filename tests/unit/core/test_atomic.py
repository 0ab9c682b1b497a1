"""core/atomic.py: a failed write leaves nothing of its own behind, neither its temporary file
nor any folder it made, however deep the failure; and never removes what was there before.

Full file systems are real where it matters: a tmpfs with too few inodes in a private mount
namespace (``unshare --mount``, with ``--map-root-user`` when not root).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from niriss_pipe.core import atomic
from tests.helpers import ROOT


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def failing_mkdir(monkeypatch, fail_at: int, before=None):
    """Path.mkdir raising ENOSPC on its ``fail_at``-th call (1-based); ``before(path, n)``
    runs ahead of each call (to play another process)."""
    real = Path.mkdir
    calls = []

    def mkdir(self, *args, **kwargs):
        calls.append(self)
        if before:
            before(self, len(calls))
        if len(calls) == fail_at:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    return calls


@pytest.mark.parametrize("fail_at", [1, 2, 3, 4])
def test_a_parent_that_cannot_be_made_leaves_none_of_those_made(tmp_path, monkeypatch,
                                                                fail_at):
    (tmp_path / "kept").mkdir()
    target = tmp_path / "kept" / "a" / "b" / "c" / "d" / "x.yaml"
    calls = failing_mkdir(monkeypatch, fail_at)
    with pytest.raises(OSError) as caught:
        atomic.write_text(target, "x: 1\n")
    assert caught.value.errno == errno.ENOSPC
    assert len(calls) == fail_at  # it stopped at the failure
    assert tree(tmp_path) == ["kept"]  # the folders made before it are gone, newest first


def test_make_parents_removes_what_it_made_and_reraises(tmp_path, monkeypatch):
    failing_mkdir(monkeypatch, 3)
    with pytest.raises(OSError):
        atomic.make_parents(tmp_path / "a" / "b" / "c" / "x")
    assert tree(tmp_path) == []


def test_an_interrupt_while_making_parents_leaves_nothing(tmp_path, monkeypatch):
    def interrupt(path, n):
        if n == 2:
            raise KeyboardInterrupt

    failing_mkdir(monkeypatch, 0, before=interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic.write_text(tmp_path / "a" / "b" / "x", "x")
    assert tree(tmp_path) == []


def test_a_folder_another_process_made_meanwhile_is_used_and_never_removed(tmp_path,
                                                                          monkeypatch):
    """Between looking and mkdir, someone else made a/b: it is not this call's to remove."""
    real = Path.mkdir

    def other_process(path, n):
        if path == tmp_path / "a" / "b":
            real(path)
            (path / "theirs").write_text("mine")

    failing_mkdir(monkeypatch, 3, before=other_process)
    with pytest.raises(OSError):
        atomic.write_text(tmp_path / "a" / "b" / "c" / "x", "x")
    assert tree(tmp_path) == ["a", "a/b", "a/b/theirs"]


def test_a_file_where_a_parent_should_be_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    def file_in_the_way(path, n):
        if path == tmp_path / "a" / "b":
            path.write_text("a file")

    failing_mkdir(monkeypatch, 0, before=file_in_the_way)
    with pytest.raises(FileExistsError):
        atomic.write_text(tmp_path / "a" / "b" / "x", "x")
    assert tree(tmp_path) == ["a", "a/b"]  # 'a' holds their file, so it stays
    assert (tmp_path / "a" / "b").read_text() == "a file"


def test_a_failed_write_removes_the_folders_it_made_and_its_temporary_file(tmp_path,
                                                                           monkeypatch):
    real_open = open

    def full_disk(path, mode="r", *args, **kwargs):
        if "w" in mode and ".tmp-" in str(path):
            handle = real_open(path, mode, *args, **kwargs)
            handle.close()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_disk)
    with pytest.raises(OSError) as caught:
        atomic.write_text(tmp_path / "a" / "b" / "x.json", "{}")
    assert caught.value.filename == str(tmp_path / "a" / "b" / "x.json")  # not the temp file
    assert tree(tmp_path) == []


def test_a_real_disk_out_of_inodes_leaves_no_parent_folder(tmp_path):
    """The audit's case: a tmpfs with room for two more inodes, a write three folders deep."""
    script = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
              "from niriss_pipe.core.atomic import write_text; "
              f"write_text(__import__('pathlib').Path({str(tmp_path)!r}) / 'a/b/c/x.yaml', 'x')")
    namespace = ["unshare", "--mount"] + ([] if os.geteuid() == 0 else ["--map-root-user"])
    proc = subprocess.run(
        [*namespace, "sh", "-c",
         f"mount -t tmpfs -o size=64k,nr_inodes=3 tmpfs {tmp_path} && "
         f"{sys.executable} -c \"{script}\"; echo rc=$?; find {tmp_path} -mindepth 1"],
        capture_output=True, text=True)
    assert "No space left on device" in proc.stderr, proc
    assert proc.stdout.split() == ["rc=1"], proc  # the exception, and nothing left in the tmpfs
