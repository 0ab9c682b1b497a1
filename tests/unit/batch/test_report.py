"""``batch report DIR`` on a batch folder as tasks leave it (records, logs, products with their
FITS headers, the previews runtime/preview.py writes): the HTML it holds, and what a real
browser shows of it (Debian's chromium, headless, screenshotted: the state colours in the
summary bar in proportion, and every thumbnail pixel for pixel in its task's row)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from niriss_pipe.batch import service as batch
from niriss_pipe.batch.inputs import make_tasks
from niriss_pipe.batch.plan import Plan, save_plan
from niriss_pipe.batch.report import COLOURS
from niriss_pipe.runtime import preview
from tests.helpers import ROOT, colour_runs, find_image, screenshot
from tests.unit.runtime.test_preview import rate_product

HOSTILE = "jw03<img src=x onerror=alert(1)>&x_nis_uncal.fits"
NAMES = ["jw01_nis_uncal.fits", "jw02_nis_uncal.fits", HOSTILE, "jw04bad_nis_uncal.fits",
         "jw05_nis_uncal.fits"]
STATES = {1: ("done", 0), 2: ("done", 0), 3: ("done", 0), 4: ("done", 1), 5: ("killed", 143)}
ERROR = "OSError: No SIMPLE card found, this file does not appear to be a valid FITS file"


def rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory) -> Path:
    """Five tasks of a local batch: three completed (with products and previews), one failed
    (its log ends in an exception line), one killed."""
    root = tmp_path_factory.mktemp("report")
    raw = root / "raw"
    raw.mkdir()
    for name in NAMES:
        (raw / name).write_bytes(b"SIMPLE")
    cache = root / "crds"
    cache.mkdir()
    plan = Plan(folder=root / "det1", image="niriss-pipe:jwst_1584",
                image_ref="sha256:" + "ab" * 32, image_id="sha256:" + "ab" * 32,
                runtime="docker", pipeline="calwebb_detector1", cache=cache,
                context="jwst_9999.pmap", tasks=make_tasks([raw / n for n in NAMES]))
    batch.write_folder(plan)
    save_plan(plan.with_submission({"mode": "local", "job": "local-1", "indices": [1, 2, 3, 4, 5],
                                    "host": "elsewhere", "pid": 0}))
    for index, (state, code) in STATES.items():
        task = plan.task(index)
        (plan.folder / "state" / str(index)).write_text(json.dumps(
            {"state": state, "exit": code, "started": 1000.0, "ended": 1000.0 + 8 * index,
             "job": "local-1", "host": f"node{index}"}))
        (plan.folder / "logs" / f"{index}.log").write_text(
            f"[niriss-pipe] task {index}\n" + (f"Traceback...\n{ERROR}\n" if code == 1 else ""))
        if code == 0:
            folder = plan.folder / "products" / task.product_dir
            folder.mkdir(parents=True)
            product = rate_product(folder / f"{task.product_dir}_rate.fits",
                                   dq_marks=index != 2, hot=index == 1)
            with fits.open(product, mode="update") as hdus:
                hdus[0].header["R_DARK"] = "crds://jwst_niriss_dark_9999.fits"
                hdus[0].header["R_GAIN"] = "crds://jwst_niriss_gain_9999.fits"
                hdus[0].header["R_FLAT"] = "N/A"
                hdus[0].header["S_DQINIT"] = "COMPLETE"
                hdus[0].header["S_GRPSCL"] = "SKIPPED"
            assert preview.main(["--products", str(folder)]) == 0
    return plan.folder


@pytest.fixture(scope="module")
def page(batch_dir) -> tuple[subprocess.CompletedProcess, str]:
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), "batch", "report",
                           str(batch_dir)], capture_output=True, text=True, cwd=batch_dir.parent)
    return proc, (batch_dir / "report.html").read_text() if proc.returncode == 0 else ""


def test_the_command_writes_the_page_into_the_batch_folder(page):
    proc, html = page
    assert proc.returncode == 0, proc.stderr  # written, whatever the tasks' states
    assert proc.stdout == ("wrote det1/report.html: 5 tasks: 3 completed, 1 failed, "
                           "1 killed\n")
    assert html.startswith("<!DOCTYPE html>")


def test_the_page_holds_states_times_hosts_versions_references_and_failures(page):
    _, html = page
    for index in range(1, 6):
        assert f'id="task-{index}"' in html and f"node{index}" in html
    assert "<td class=\"num\">16.0 s</td>" in html  # task 2: 8 s x 2
    assert "CAL_VER: <code>3.0.0</code> (3 products)" in html
    assert "CRDS_CTX: <code>jwst_9999.pmap</code> (3 products)" in html
    assert "<td><code>R_DARK</code></td><td><code>jwst_niriss_dark_9999.fits</code></td>" \
           "<td class=\"num\">3</td>" in html
    assert "R_FLAT" not in html  # N/A: not a reference used
    assert ERROR in html and '<a href="logs/4.log">logs/4.log</a>' in html
    assert "signalled (scancel, time limit or Ctrl-C)" in html  # the killed task's reason
    assert '<a href="products/jw01_nis/jw01_nis_rate.png"><img src="data:image/png;base64,' \
           in html
    assert "1 complete, 1 skipped" in html


def test_the_page_is_self_contained_and_escapes_what_it_shows(page):
    _, html = page
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;&amp;x" in html
    links = re.findall(r'(?:href|src)="([^"]+)"', html)
    assert links and all(not link.startswith(("http:", "https:", "//", "/")) for link in links)
    assert "jw03%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E%26x_nis/" in html  # link, quoted
    assert "<link" not in html and "@import" not in html  # no outside style sheet


def test_chromium_shows_the_state_colours_in_proportion_and_every_thumbnail(batch_dir, page,
                                                                          tmp_path):
    screen = screenshot(batch_dir / "report.html", tmp_path / "report.png", 1400, 2000)
    green, red, orange = (rgb(COLOURS[s]) for s in ("completed", "failed", "killed"))
    # The summary bar: one row holds a green run, then red, then orange, as 3 : 1 : 1.
    rows = [y for y in range(screen.shape[0]) if colour_runs(screen[y], green)
            and colour_runs(screen[y], red) and colour_runs(screen[y], orange)]
    assert len(rows) >= 20, "no summary bar of the three state colours"  # 28 px high
    (g0, g), (r0, r), (o0, o) = (max(colour_runs(screen[rows[10]], c), key=lambda run: run[1])
                                 for c in (green, red, orange))
    assert g0 < r0 < o0 and g + r + o > 1200  # in state order, across the page
    assert abs(g - 3 * r) <= 3 and abs(r - o) <= 2, (g, r, o)
    # Each completed task's thumbnail, exactly as the preview wrote it, in task order.
    places = []
    for name in ("jw01_nis", "jw02_nis", "jw03<img src=x onerror=alert(1)>&x_nis"):
        thumb = np.asarray(Image.open(batch_dir / "products" / name / f"{name}_rate.thumb.png")
                           .convert("RGB"))
        found = find_image(screen, thumb)
        assert len(found) == 1, (name, found)
        places.append(found[0])
    assert [y for y, _ in places] == sorted(y for y, _ in places)
    assert len({x for _, x in places}) == 1  # one column of thumbnails
    # The failed and killed rows show their state colours below the bar, in the tables.
    below = screen[rows[-1] + 1:]
    for colour in (red, orange):
        assert (below == colour).all(axis=2).sum() > 400, colour
    # The thumbnails differ: each task's own product is shown, not one picture repeated.
    assert len({places[0], places[1], places[2]}) == 3
