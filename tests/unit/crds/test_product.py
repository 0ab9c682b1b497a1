"""What a product says of how it was made: read from its header, every value checked."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from niriss_pipe.core.errors import UserError
from niriss_pipe.crds.product import read_product, reference_name
from niriss_pipe.spec import catalog
from tests.helpers import ROOT

KEYS = {"CAL_VER": "1.12.5", "CAL_VCS": "RELEASE", "CRDS_VER": "11.17.7",
        "CRDS_CTX": "jwst_1166.pmap", "R_DARK": "crds://jwst_niriss_dark_0171.fits",
        "R_GAIN": "jwst_niriss_gain_0006.fits", "R_PERSAT": "N/A",
        "S_DARK": "COMPLETE", "S_IPC": "SKIPPED"}


def product(path, **changes):
    keys = {**KEYS, **changes}
    header = fits.Header()
    for key, value in keys.items():
        if value is not None:
            header[key] = value
    fits.HDUList([fits.PrimaryHDU(header=header),
                  fits.ImageHDU(np.zeros((4, 4), np.float32), name="SCI")]).writeto(path)
    return path


def test_reads_versions_references_and_steps(tmp_path):
    got = read_product(product(tmp_path / "x_rate.fits"))
    assert (got.cal_ver, got.crds_ctx, got.crds_ver) == ("1.12.5", "jwst_1166.pmap", "11.17.7")
    assert got.reference_names == ["jwst_niriss_dark_0171.fits", "jwst_niriss_gain_0006.fits"]
    assert got.steps == {"S_DARK": "COMPLETE", "S_IPC": "SKIPPED"}
    assert got.not_crds() == {}
    assert set(got.provenance) == set(KEYS)


@pytest.mark.parametrize("value", ["/home/me/my_dark.fits", "crds://../../etc/passwd.fits",
                                   "jwst_niriss_dark_0001.fits\nx", "crds://a/b.fits"])
def test_a_reference_that_is_not_a_crds_file_is_never_a_name(tmp_path, value):
    got = read_product(product(tmp_path / "x_rate.fits", R_DARK=value.replace("\n", " ")))
    assert got.reference_names == ["jwst_niriss_gain_0006.fits"]
    assert "R_DARK" in got.not_crds()


@pytest.mark.parametrize("key, value, said", [
    ("CAL_VER", None, "has no CAL_VER keyword"),
    ("CRDS_CTX", None, "has no CRDS_CTX keyword"),
    ("CRDS_CTX", "jwst_1166.pmap; rm -rf", "CRDS_CTX is"),
    ("CRDS_CTX", "jwst_١١٦٦.pmap", "CRDS_CTX is"),
    ("CAL_VER", "1.12.5 $(id)", "CAL_VER is"),
])
def test_missing_or_hostile_keywords_are_named(tmp_path, key, value, said):
    path = product(tmp_path / "x_rate.fits", **{key: value}) if value is None or value.isascii() \
        else tmp_path / "x_rate.fits"
    if not path.exists():  # astropy writes ASCII headers only: write the bytes by hand
        product(path)
        data = path.read_bytes().replace(b"'jwst_1166.pmap'", b"'jwst_\xd9\xa1.pmap'  ")
        path.write_bytes(data)
    with pytest.raises(UserError) as err:
        read_product(path)
    assert said in str(err.value) and str(path) in str(err.value)


def test_not_fits_and_missing_files_are_user_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    for path, said in ((tmp_path / "notes.txt", "is not a FITS file"),
                       (tmp_path / "absent.fits", "does not exist"), (tmp_path, "is not a file")):
        with pytest.raises(UserError, match=said):
            read_product(path)


def test_reference_name():
    assert reference_name(" crds://jwst_pars-detector1pipeline_0001.asdf ") == \
        "jwst_pars-detector1pipeline_0001.asdf"
    assert reference_name("N/A") is None


def test_new_from_product_writes_the_release_spec_and_says_what_next(tmp_path):
    path = product(tmp_path / "x_rate.fits")
    out = tmp_path / "paper.yaml"
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "new", "--from", str(path),
                           "-o", str(out)], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "UV_INDEX_URL": "http://127.0.0.1:9"})
    assert proc.returncode == 0, proc.stderr
    spec = out.read_text()
    assert "version: 1.12.5" in spec and "context: jwst_1166.pmap" in spec
    assert "CRDS_VER 11.17.7" in spec  # the product's crds, as a comment
    for command in ("lock", "sync --for", "build", "reproduce"):
        assert f"python build.py {command} " in proc.stdout, proc.stdout
    other = product(tmp_path / "y_rate.fits", CRDS_CTX="jwst_1200.pmap")
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "new", "--from", str(other),
                           "-o", "-"], capture_output=True, text=True, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "UV_INDEX_URL": "http://127.0.0.1:9"})
    assert "jwst_1200.pmap is not a release context" in proc.stderr  # as new --pmap warns
    assert "was tested with jwst_1166.pmap, not jwst_1200.pmap" in proc.stderr


def test_new_from_a_development_build_or_a_file_that_is_not_fits(tmp_path):
    dev = product(tmp_path / "d_rate.fits", CAL_VER="1.12.6.dev3+g1a2b3c4")
    (tmp_path / "notes.fits").write_text("not fits")
    for path, said in ((dev, "development build"), (tmp_path / "notes.fits", "not a FITS")):
        proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "new", "--from",
                               str(path), "-o", "-"], capture_output=True, text=True)
        assert proc.returncode == 2 and said in proc.stderr and "Traceback" not in proc.stderr


def test_new_list_prints_the_catalog():
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "new", "--list"],
                          capture_output=True, text=True, check=True)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["release", "date", "context", "Python", "from"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    release = catalog.release("1.12.5")
    assert rows["1.12.5"][1:3] == [release.released, "jwst_1166.pmap"]
    assert rows["0.14.2"][-1] == "git" and rows["3.0.0"][-1] == "PyPI"


def with_card(path, card: str):
    """``path`` (a product) with the card of the same keyword written as ``card``, byte for
    byte: astropy writes only cards it can parse, a damaged file has others."""
    data = bytearray(path.read_bytes())
    keyword = card.split("=")[0].strip().ljust(8).encode()
    start = next(i for i in range(0, 2880, 80) if data[i:i + 8] == keyword)
    data[start:start + 80] = card.encode("latin-1").ljust(80)
    path.write_bytes(bytes(data))
    return path


DAMAGED = [("CAL_VER = '1.12.5", "CAL_VER"),  # no closing quote
           ("R_DARK  = (1, 2, 3)", "R_DARK"),  # a complex number has two parts
           ("S_DARK  = 'COMPLETE' / x' ''", None),  # a comment may hold quotes: parsable
           ("CRDS_CTX= 'jwst_1166.pmap", "CRDS_CTX")]


@pytest.mark.parametrize("card, key", DAMAGED)
def test_an_unparsable_header_card_is_named(tmp_path, card, key):
    path = with_card(product(tmp_path / "x_rate.fits"), card)
    if key is None:
        assert read_product(path).steps["S_DARK"] == "COMPLETE"
        return
    with pytest.raises(UserError) as err:
        read_product(path)
    message = str(err.value)
    assert f"{path}: header card '{key}' cannot be parsed" in message, message
    assert "Fix: give the product as the jwst pipeline wrote it, or correct that card" in message


def test_a_damaged_keyword_is_not_read_as_a_wildcard(tmp_path):
    # header['R_(?...'] would be a pattern to astropy (re.error); the cards are read in order
    path = product(tmp_path / "x_rate.fits")
    data = path.read_bytes().replace(b"R_PERSAT", b"R_(\xffSAT ", 1)
    path.write_bytes(data)
    got = read_product(path)
    assert got.reference_names == ["jwst_niriss_dark_0171.fits", "jwst_niriss_gain_0006.fits"]
    assert got.steps == {"S_DARK": "COMPLETE", "S_IPC": "SKIPPED"}


def test_every_command_that_reads_a_product_refuses_a_damaged_card_before_the_engine(tmp_path):
    """new --from, sync --for and reproduce: one paragraph, exit 2, no engine asked (the
    socket does not exist) and nothing written."""
    path = with_card(product(tmp_path / "bad_rate.fits"), "CAL_VER = '1.12.5")
    (tmp_path / "x_uncal.fits").write_bytes(b"")
    env = {"PATH": "/usr/bin:/bin", "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
           "CRDS_CLIENT_TIMEOUT_SECONDS": "3"}
    for argv in (["new", "--from", str(path), "-o", "-"],
                 ["sync", "--for", str(path), "--cache", str(tmp_path / "cache"),
                  "--server", "http://127.0.0.1:9"],
                 ["reproduce", str(path), "--input", str(tmp_path / "x_uncal.fits"),
                  "--cache", str(tmp_path / "cache"), "-o", str(tmp_path / "out")]):
        proc = subprocess.run([sys.executable, str(ROOT / "build.py"), *argv],
                              capture_output=True, text=True, cwd=tmp_path, env=env)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
        assert f"{path}: header card 'CAL_VER' cannot be parsed" in proc.stderr
        assert "Traceback" not in proc.stderr and "Docker" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_rate.fits", "x_uncal.fits"]
