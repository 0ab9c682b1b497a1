"""The comparison ``reproduce`` runs in the image, on arrays and files made here: bit for bit,
tolerances, NaN, DQ per bit, provenance keywords, the verdict."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from niriss_pipe.runtime.difference import compare_arrays, compare_files, dq_names

RNG = np.random.default_rng(7)


def test_identical_arrays_are_identical_bit_for_bit():
    a = RNG.normal(size=(8, 8)).astype(np.float32)
    row = compare_arrays(a, a.copy())
    assert row["identical"] and row["within"] and row["differing"] == 0 and row["max_abs"] == 0


def test_one_pixel_changed_is_counted_with_its_size_and_tolerance_decides():
    a = np.ones((8, 8), np.float32)
    b = a.copy()
    b[3, 4] += 0.5
    strict = compare_arrays(a, b)
    assert (strict["differing"], strict["outside"], strict["max_abs"]) == (1, 1, 0.5)
    assert not strict["identical"] and not strict["within"]
    assert compare_arrays(a, b, atol=0.5)["within"]
    assert compare_arrays(a, b, rtol=0.6)["within"]
    assert not compare_arrays(a, b, rtol=0.4)["within"]


def test_nan_in_both_is_equal_nan_in_one_is_not_negative_zero_is_a_bit_difference():
    a = np.array([np.nan, 1.0, 0.0], np.float32)
    assert compare_arrays(a, a.copy())["identical"]
    b = np.array([1.0, 1.0, -0.0], np.float32)
    row = compare_arrays(a, b, atol=10)
    assert row["nan_only_one"] == 1 and row["differing"] == 2 and not row["within"]
    c = np.array([np.nan, 1.0, -0.0], np.float32)
    row = compare_arrays(a, c)
    assert row["differing"] == 1 and row["within"]  # -0.0 == 0.0 in value, not in bits


def test_dq_differences_are_counted_per_bit_and_never_within_tolerance():
    a = np.zeros((4, 4), np.uint32)
    b = a.copy()
    b[1, 1] = 4 | 1  # JUMP_DET and DO_NOT_USE set in the new one
    a[2, 2] = 2  # SATURATED in the given one only
    row = compare_arrays(a, b, rtol=1, atol=1e9, dq=True, names=dq_names())
    assert row["differing"] == 2 and not row["within"]
    bits = {bit["bit"]: bit for bit in row["bits"]}
    assert set(bits) == {0, 1, 2}
    assert bits[2]["count"] == 1 and bits[2]["only_new"] == 1 and bits[2]["only_given"] == 0
    assert bits[1]["only_given"] == 1


def test_shape_and_type_differences_are_differences():
    a = np.zeros((4, 4), np.float32)
    assert not compare_arrays(a, np.zeros((4, 5), np.float32))["within"]
    row = compare_arrays(a, a.astype(np.float64))
    assert not row["identical"] and row["within"] and "type differs" in row["note"]


def product(path, sci, dq, **keys):
    header = fits.Header()
    for key, value in {"CAL_VER": "3.0.0", "CRDS_CTX": "jwst_9999.pmap", "CRDS_VER": "13.2.7",
                       "R_DARK": "crds://jwst_niriss_dark_9999.fits", "S_DARK": "COMPLETE",
                       "DATE": "2026-12-01", **keys}.items():
        header[key] = value
    hdus = [fits.PrimaryHDU(header=header), fits.ImageHDU(sci, name="SCI"),
            fits.ImageHDU(dq, name="DQ"), fits.BinTableHDU.from_columns(
                [fits.Column(name="x", format="J", array=np.arange(3))], name="ASDF")]
    fits.HDUList(hdus).writeto(path)
    return str(path)


@pytest.fixture
def pair(tmp_path):
    sci = RNG.normal(size=(6, 6)).astype(np.float32)
    dq = np.zeros((6, 6), np.uint32)
    return tmp_path, sci, dq, product(tmp_path / "given.fits", sci, dq)


def test_files_identical_but_for_dates_and_the_metadata_tree(pair):
    tmp, sci, dq, given = pair
    result = compare_files(given, product(tmp / "new.fits", sci, dq, DATE="2027-01-01"))
    assert result["verdict"] == "identical" and result["provenance"] == []
    kinds = {row["extension"]: row["kind"] for row in result["extensions"]}
    assert kinds == {"SCI": "image", "DQ": "dq", "ASDF": "not compared"}


def test_provenance_keywords_that_differ_make_products_different(pair):
    tmp, sci, dq, given = pair
    result = compare_files(given, product(tmp / "new.fits", sci, dq, S_DARK="SKIPPED",
                                          CRDS_VER="13.2.8"))
    assert result["verdict"] == "different"
    found = {p["key"]: p for p in result["provenance"]}
    assert found["S_DARK"]["given"] == "COMPLETE" and not found["S_DARK"]["informational"]
    assert found["CRDS_VER"]["informational"]
    result = compare_files(given, product(tmp / "new2.fits", sci, dq, CRDS_VER="13.2.8"))
    assert result["verdict"] == "identical"  # only an informational keyword differs


def test_verdict_within_tolerance(pair):
    tmp, sci, dq, given = pair
    new = sci.copy()
    new[0, 0] += np.float32(1e-3)
    path = product(tmp / "new.fits", new, dq)
    assert compare_files(given, path)["verdict"] == "different"
    assert compare_files(given, path, atol=1e-2)["verdict"] == "within tolerance"
