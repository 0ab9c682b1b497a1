"""The verified manifest and its journal: every record survives kill -9, a cut line is ignored,
a save compacts without losing what another process journaled meanwhile."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from niriss_pipe.crds.download import Wanted
from niriss_pipe.crds.manifest import Manifest, read_journal
from tests.helpers import ROOT


def _file(root: Path, name: str, data: bytes = b"data") -> Wanted:
    dest = root / "references" / "jwst" / "niriss" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return Wanted(name, "http://unused/" + name, dest, len(data), hashlib.sha1(data).hexdigest())


def _manifest(root: Path) -> Manifest:
    return Manifest(root / "config" / "jwst" / "verified.json", root)


def test_each_record_is_durable_at_once_without_a_save(tmp_path):
    manifest = _manifest(tmp_path)
    want = _file(tmp_path, "jwst_niriss_dark_0001.fits")
    manifest.record(want)  # no save(): as if killed right after
    again = _manifest(tmp_path)
    assert again.entries == manifest.entries
    assert again.trusted(want) and not manifest.path.exists()


def test_killed_writer_loses_no_record(tmp_path):
    """A process that records files and is then killed with SIGKILL."""
    script = textwrap.dedent(f"""
        import hashlib, os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT)!r})
        from niriss_pipe.crds.download import Wanted
        from niriss_pipe.crds.manifest import Manifest
        root = Path({str(tmp_path)!r})
        manifest = Manifest(root / "config/jwst/verified.json", root)
        for n in range(50):
            dest = root / f"f{{n}}.fits"
            dest.write_bytes(b"x" * n)
            manifest.record(Wanted(dest.name, "", dest, n, hashlib.sha1(b"x" * n).hexdigest()))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script])
    assert proc.returncode == -signal.SIGKILL
    assert len(_manifest(tmp_path).entries) == 50


def test_a_cut_last_line_is_ignored_and_closed_before_the_next(tmp_path):
    manifest = _manifest(tmp_path)
    first, second = _file(tmp_path, "a.fits"), _file(tmp_path, "b.fits")
    manifest.record(first)
    manifest.close()
    with open(manifest.journal, "ab") as journal:  # a write cut short by a kill
        journal.write(b'{"mtime_ns": 1, "path": "references/jwst/niriss/b.fi')
    reloaded = _manifest(tmp_path)
    assert set(reloaded.entries) == {"references/jwst/niriss/a.fits"}
    reloaded.record(second)
    assert set(_manifest(tmp_path).entries) == {"references/jwst/niriss/a.fits",
                                                "references/jwst/niriss/b.fits"}
    assert len(read_journal(manifest.journal)) == 2  # the cut line stays unreadable, alone


def test_save_compacts_the_journal_into_the_json(tmp_path):
    manifest = _manifest(tmp_path)
    wants = [_file(tmp_path, f"r{n}.fits", bytes([n]) * 10) for n in range(5)]
    for want in wants:
        manifest.record(want)
    manifest.forget(wants[0].dest)
    manifest.save()
    assert manifest.journal.read_bytes() == b""
    stored = json.loads(manifest.path.read_text())
    assert sorted(stored) == sorted(manifest.key(w.dest) for w in wants[1:])
    assert [p.name for p in manifest.path.parent.iterdir() if p.name.endswith(".tmp")] == []
    assert _manifest(tmp_path).entries == stored


def test_save_keeps_what_another_process_journaled(tmp_path):
    one, two = _manifest(tmp_path), _manifest(tmp_path)
    a, b = _file(tmp_path, "a.fits"), _file(tmp_path, "b.fits")
    one.record(a)
    two.record(b)
    one.save()  # must not drop b, which only the journal held
    assert set(json.loads(one.path.read_text())) == {one.key(a.dest), one.key(b.dest)}
    two.record(_file(tmp_path, "c.fits"))  # two's journal descriptor still appends
    assert len(_manifest(tmp_path).entries) == 3


def test_reading_a_read_only_cache_creates_nothing(tmp_path):
    manifest = _manifest(tmp_path)
    manifest.record(_file(tmp_path, "a.fits"))
    manifest.save()
    manifest.lockfile.unlink()
    before = sorted(p.name for p in manifest.path.parent.iterdir())
    assert len(_manifest(tmp_path).entries) == 1
    assert sorted(p.name for p in manifest.path.parent.iterdir()) == before
    assert not os.path.exists(manifest.lockfile)
