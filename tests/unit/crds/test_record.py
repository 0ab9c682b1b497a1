"""A product's sync adds to the context's record: an earlier, wider sync keeps what it says."""

from __future__ import annotations

import subprocess
import sys

from niriss_pipe.crds.record import entry, merged
from tests.helpers import ROOT


def test_a_complete_instrument_record_that_names_the_product_references_stays():
    old = entry("instrument", "niriss", ["a.fits", "b.fits", "c.fits"], True)
    assert merged(old, entry("datasets", "niriss", ["a.fits"], True, ("x_rate.fits",))) == old


def test_two_products_of_one_context_add_up():
    first = entry("datasets", "niriss", ["a.fits"], True, ("x_rate.fits",))
    both = merged(first, entry("datasets", "niriss", ["b.fits"], True, ("y_rate.fits",)))
    assert both["references"] == ["a.fits", "b.fits"] and both["complete"]
    assert both["datasets"] == ["x_rate.fits", "y_rate.fits"]
    cut = entry("datasets", "niriss", ["a.fits", "z.fits"], False)
    assert not merged(cut, entry("datasets", "niriss", ["b.fits"], True))["complete"]


def test_sync_for_refuses_other_selections_before_any_download(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "sync", "--for",
                           str(tmp_path / "x_rate.fits"), "--context", "jwst_0001.pmap",
                           "--cache", str(tmp_path / "c")], capture_output=True, text=True)
    assert proc.returncode == 2 and "takes the context and the references from the product" \
        in proc.stderr and not (tmp_path / "c").exists()
