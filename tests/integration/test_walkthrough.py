"""The README, run as written: the quick start's ``make demo`` and the "Run" section's first
example in a scratch copy of the checkout, and the "Reproduce a paper" block in a scratch copy
of images/."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from niriss_pipe.spec import lock
from tests.helpers import ROOT, SOURCE_DATE_EPOCH, cli

pytestmark = [pytest.mark.engine]

NEEDS_OUTSIDE = ("sync", "reproduce", "docker")  # STScI's server and real data: the README
README = (ROOT / "README.md").read_text()


def section(heading: str) -> str:
    return README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def sh_blocks(text: str) -> list[str]:
    return [block.split("```", 1)[0] for block in text.split("```sh\n")[1:]]


def commands(block: str) -> list[list[str]]:
    block = block.replace("\\\n", " ")
    found = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [c for c in found if c]


def paper_product(path):
    """A product header as jwst 1.12.5 with jwst_1166.pmap writes it (what `new --from` reads)."""
    from astropy.io import fits

    header = fits.Header()
    for key, value in (("CAL_VER", "1.12.5"), ("CRDS_VER", "11.17.7"),
                       ("CRDS_CTX", "jwst_1166.pmap"),
                       ("R_DARK", "crds://jwst_niriss_dark_0171.fits"), ("S_DARK", "COMPLETE")):
        header[key] = value
    fits.PrimaryHDU(header=header).writeto(path)


@pytest.fixture
def checkout(tmp_path) -> Path:
    """What `make demo` reads, in a scratch folder: the Makefile, build.py, images/, and the
    checkout's .venv (made by `make test`, as the quick start says; not remade here)."""
    for name in ("Makefile", "build.py", "pyproject.toml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "images", tmp_path / "images")
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    installed = (ROOT / ".venv" / ".installed").stat().st_mtime
    os.utime(tmp_path / "pyproject.toml", (installed - 60, installed - 60))
    return tmp_path


def test_quick_start_demo_and_the_headline_run_as_written(checkout, default_build):
    quick = commands(sh_blocks(section("Quick start"))[1])
    assert [c[:2] for c in quick] == [["make", "demo"], ["make", "test"]]
    # A user's shell: the default cache, and none of the variables of the `make test` that runs
    # this suite: make exports its command-line variables (CI's ARGS=...) to the environment,
    # where `make demo` would take them for its own.
    makefile = (ROOT / "Makefile").read_text()
    outer = {"CRDS_PATH", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
             *re.findall(r"^([A-Z_]+)\s*\?=", makefile, re.MULTILINE)}
    assert "ARGS" in outer
    env = {k: v for k, v in os.environ.items() if k not in outer}
    env["SOURCE_DATE_EPOCH"] = SOURCE_DATE_EPOCH  # as every test build: the image is found
    demo = subprocess.run(quick[0], cwd=checkout, capture_output=True, text=True, env=env,
                          timeout=1800)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    done = re.search(r"^demo done in [\d.]+ s: (demo/\S+_rate\.fits)\n"
                     r"  preview \(SCI, DQ flags in colour\): (demo/\S+_rate\.png)$",
                     demo.stdout, re.MULTILINE)
    assert done, demo.stdout
    product, picture = checkout / done.group(1), checkout / done.group(2)
    assert product.stat().st_uid == picture.stat().st_uid == os.getuid()
    with Image.open(picture) as png:
        assert png.size == (640, 720)
        assert np.asarray(png.convert("L"))[60:600, 40:600].std() > 10  # a star on the sky
    assert (checkout / "crds_cache" / "mappings" / "jwst" / "jwst_9999.pmap").is_file()
    logs = sorted(Path(os.environ["NIRISS_PIPE_LOGS"]).glob("demo-default-*.log"))
    assert logs and "demo done in" in logs[-1].read_text()

    # The "Run" section's first example, as written, on what the demo left.
    headline = sh_blocks(section("Run"))[0]
    assert "--user $(id -u):$(id -g) --read-only --tmpfs /tmp" in headline
    product.unlink()
    run = subprocess.run(["bash", "-c", headline], cwd=checkout, capture_output=True, text=True,
                         env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert product.stat().st_uid == os.getuid()
    with fits.open(product) as hdus:
        assert hdus[0].header["CRDS_CTX"] == "jwst_9999.pmap"
        assert hdus["SCI"].data.shape == (64, 64)


@pytest.mark.network
def test_reproduce_a_paper_walkthrough(tmp_path, engine):
    shutil.copytree(ROOT / "images", tmp_path / "images")
    walkthrough = commands(sh_blocks(section("Reproduce a paper"))[0])
    for command in walkthrough:
        if "--from" in command:
            paper_product(tmp_path / command[command.index("--from") + 1])
    ran = []
    for command in walkthrough:
        if command[0] == "docker" or command[2] in NEEDS_OUTSIDE:
            continue
        assert command[:2] == ["python", "build.py"], command
        proc = cli(*command[2:], cwd=tmp_path)
        ran.append((command[2], proc.stdout))
    assert [name for name, _ in ran] == ["new", "lock", "build", "verify"]
    spec = (tmp_path / "images/paper.yaml").read_text()
    assert "g++" in spec and "jwst_1166.pmap" in spec and '1.12.5' in spec
    assert lock.pinned(tmp_path / "images/locks/paper.txt") == lock.pinned(
        ROOT / "images/locks/jwst_1166.txt")  # the same environment as the shipped spec
    assert "selftest: PASS" in ran[3][1]
    assert re.search(r"environment\s+ok", ran[3][1])
