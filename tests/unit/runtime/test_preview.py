"""runtime/preview.py on this machine's Python (the same code runs in every image with the
image's own matplotlib; tests/integration/test_run.py runs it there): the stretch, the DQ
overlay, the files it writes, and its CLI as the demo and batch tasks call it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.io import fits
from PIL import Image

from niriss_pipe.runtime import preview
from tests.helpers import ROOT

ORANGE, CYAN, RED = (255, 140, 0), (0, 200, 255), (255, 30, 30)


def rate_product(path: Path, dq_marks: bool = True, hot: bool = True) -> Path:
    """A 64x64 rate product: sky 500 with noise, a star, one very hot pixel, and flags: a
    saturated 4x4 block, one jump and a DO_NOT_USE row."""
    rng = np.random.default_rng(1)
    sci = 500 + rng.normal(0, 5, (64, 64))
    yy, xx = np.mgrid[:64, :64]
    sci += 20000 * np.exp(-((yy - 32) ** 2 + (xx - 40) ** 2) / 8.0)
    if hot:
        sci[3, 3] = 1e9
    dq = np.zeros((64, 64), dtype=np.uint32)
    if dq_marks:
        dq[30:34, 40:44] = 2 | 1
        dq[5, 5] = 4
        dq[10, :] |= 1
    primary = fits.PrimaryHDU()
    primary.header["CAL_VER"] = "3.0.0"
    primary.header["CRDS_CTX"] = "jwst_9999.pmap"
    fits.HDUList([primary, fits.ImageHDU(sci.astype(np.float32), name="SCI"),
                  fits.ImageHDU(dq, name="DQ")]).writeto(path)
    return path


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def image_area(path: Path) -> np.ndarray:
    """The preview above its legend (whose colour swatches are always there)."""
    return pixels(path)[:600]


def test_the_painted_flags_are_the_jwst_flags():
    from stdatamodels.jwst.datamodels import dqflags

    assert preview.PIXEL_FLAGS == {name: dqflags.pixel[name] for name, _ in preview.OVERLAY}


def test_flags_are_painted_first_match_first_and_counted(tmp_path):
    sci, dq, header = preview.read_product(rate_product(tmp_path / "x_rate.fits"))
    image, counts = preview.rgb_image(sci, dq, preview.PIXEL_FLAGS)
    assert counts == {"SATURATED": 16, "JUMP_DET": 1, "DO_NOT_USE": 64}
    assert tuple(image[31, 41]) == ORANGE  # saturated (and DO_NOT_USE): saturated wins
    assert tuple(image[5, 5]) == CYAN and tuple(image[10, 0]) == RED
    assert image[20, 20, 0] == image[20, 20, 1] == image[20, 20, 2]  # unflagged: grey
    assert header["CRDS_CTX"] == "jwst_9999.pmap"


def test_the_stretch_is_robust_to_a_hot_pixel():
    rng = np.random.default_rng(2)
    sky = 500 + rng.normal(0, 5, (64, 64))
    usable = np.ones(sky.shape, dtype=bool)
    plain = preview.stretch(sky, usable)
    sky_hot = sky.copy()
    sky_hot[3, 3] = 1e9
    hot = preview.stretch(sky_hot, usable)
    assert hot[3, 3] == 1.0 and plain.min() == 0.0
    others = np.ones(sky.shape, dtype=bool)
    others[3, 3] = False
    assert np.allclose(hot[others], plain[others], atol=0.02)  # the rest looks the same
    assert hot[others].std() > 0.1  # and the sky noise is still visible
    assert np.isfinite(preview.stretch(np.full((4, 4), np.nan), usable[:4, :4])).all()


def test_the_cli_writes_the_preview_and_its_thumbnail(tmp_path):
    product = rate_product(tmp_path / "jw01_nis_rate.fits")
    out, thumb = tmp_path / "jw01_nis_rate.png", tmp_path / "t.png"
    proc = subprocess.run([sys.executable, "-m", "niriss_pipe.runtime.preview", str(product),
                           str(out), "--thumbnail", str(thumb)], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"preview: {out} (SATURATED 16, JUMP_DET 1, DO_NOT_USE 64)\n"
    assert Image.open(out).size == (640, 720) and Image.open(thumb).size == (128, 128)
    assert (image_area(out) == ORANGE).all(axis=2).sum() > 16  # the block, drawn larger
    assert (pixels(thumb) == CYAN).all(axis=2).any()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "jw01_nis_rate.fits", "jw01_nis_rate.png", "t.png"]  # no temporary file left


def test_products_mode_previews_each_rate_product_beside_it(tmp_path):
    rate_product(tmp_path / "jw01_nis_rate.fits", dq_marks=False)
    rate_product(tmp_path / "jw01_nis_rateints.fits")
    (tmp_path / "jw01_nis_trapsfilled.fits").write_bytes(b"x")
    assert preview.main(["--products", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "jw01_nis_rate.png", "jw01_nis_rate.thumb.png"]
    assert not (image_area(tmp_path / "jw01_nis_rate.png") == ORANGE).all(axis=2).any()
    assert preview.main(["--products", str(tmp_path / "empty")]) == 0  # nothing to do


def test_a_product_that_is_not_fits_is_one_line(tmp_path, capsys):
    bad = tmp_path / "x_rate.fits"
    bad.write_text("not FITS")
    assert preview.main([str(bad), str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"preview: {bad} cannot be read as FITS") and err.count("\n") == 1
    assert not (tmp_path / "x.png").exists()
