"""The --mem suggestion of a SLURM batch submitted without one: the benchmark's figures
(data/memory.tsv) scaled to the largest input's header."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from astropy.io import fits

from niriss_pipe.batch import service as batch
from niriss_pipe.batch.memory import HEADROOM, header, measured, suggestion
from niriss_pipe.core.progress import Reporter
from tests.unit.batch.test_batch_plan import make_plan


def exposure(path: Path, nx: int, ny: int, ngroups: int, nints: int = 1, pad: int = 0) -> Path:
    hdu = fits.PrimaryHDU()
    for key, value in (("SUBSIZE1", nx), ("SUBSIZE2", ny), ("NGROUPS", ngroups),
                       ("NINTS", nints)):
        hdu.header[key] = value
    for i in range(pad):  # cards enough to spread the header over several blocks
        hdu.header[f"PAD{i}"] = i
    hdus = fits.HDUList([hdu, fits.ImageHDU(np.zeros((2, 2), np.uint16), name="SCI")])
    hdus.writeto(path)
    return path


def full_frame(cores: int = 1):
    return next(row for row in measured() if row.cores == cores
                and "calwebb_detector1" in row.pipelines)


def test_the_header_is_read_without_astropy(tmp_path):
    path = exposure(tmp_path / "a_uncal.fits", 2048, 2048, 10, 2, pad=100)
    assert header(path) == {"SUBSIZE1": 2048, "SUBSIZE2": 2048, "NGROUPS": 10, "NINTS": 2}
    (tmp_path / "b.fits").write_text("not a FITS file")
    assert header(tmp_path / "b.fits") == {} and header(tmp_path / "missing.fits") == {}


def test_the_suggestion_scales_the_benchmark_to_the_largest_input(tmp_path):
    row = full_frame()
    small = exposure(tmp_path / "small_uncal.fits", 64, 64, 5)
    big = exposure(tmp_path / "big_uncal.fits", 2048, 2048, 15, pad=2000)  # the largest file
    line = suggestion("calwebb_detector1", [small, big], 1)
    assert line.startswith(f"no \ue000mem\ue001 given: calwebb_detector1 on a 2048x2048x15 "
                           f"exposure peaked at {row.peak_gib:g} GiB here with 1 core")
    assert "the largest input, big_uncal.fits, is 2048x2048x15:" in line
    assert f"consider \ue000mem\ue001 {math.ceil(row.peak_gib * HEADROOM)}G" in line
    # Twice the groups: the part that grows with the data doubles.
    twice = exposure(tmp_path / "twice_uncal.fits", 2048, 2048, 30)
    need = row.base_gib + 2 * (row.peak_gib - row.base_gib)
    assert f"about {need:.1f} GiB, consider \ue000mem\ue001 {math.ceil(need * HEADROOM)}G" \
        in suggestion("calwebb_detector1", [twice], 1)
    # A header that cannot be read: the benchmark's size, said so.
    odd = tmp_path / "odd_uncal.fits"
    odd.write_bytes(b"x" * 10_000_000)
    line = suggestion("calwebb_detector1", [small, odd], 2)
    assert "odd_uncal.fits could not be read from its header" in line
    assert f"peaked at {full_frame(2).peak_gib:g} GiB here with 2 cores" in line
    assert suggestion("calwebb_image2", [small], 1) is None  # no figure for it


def test_submit_suggests_only_for_slurm_without_mem(tmp_path, monkeypatch):
    from dataclasses import replace

    from niriss_pipe.batch.plan import SlurmOptions

    inputs = [exposure(tmp_path / "jw01_nis_uncal.fits", 2048, 2048, 15)]
    plan = make_plan(tmp_path / "b", inputs, cores={})

    def said(local: bool, mem: str | None) -> str:
        out = io.StringIO()
        chosen = replace(plan, slurm=SlurmOptions(mem=mem))
        monkeypatch.setattr(batch, "plan_batch", lambda request, reporter: chosen)
        batch.submit(None, Reporter(out=out), local=local, dry_run=True)
        return out.getvalue()

    assert "no --mem given: calwebb_detector1 on a 2048x2048x15 exposure" in said(False, None)
    assert "--mem given" not in said(False, "8G") and "--mem given" not in said(True, None)
