"""The README's "Reproduce a paper" block, run as written in a scratch copy of images/."""

from __future__ import annotations

import re
import shlex
import shutil

import pytest

from niriss_pipe.spec import lock
from tests.helpers import ROOT, cli

pytestmark = [pytest.mark.engine, pytest.mark.network]

NEEDS_OUTSIDE = ("sync", "reproduce", "docker")  # STScI's server and real data: the README


def readme_block() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = text.split("### Reproduce a paper", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    block = block.replace("\\\n", " ")
    commands = [shlex.split(line, comments=True) for line in block.splitlines()]
    return [c for c in commands if c]


def paper_product(path):
    """A product header as jwst 1.12.5 with jwst_1166.pmap writes it (what `new --from` reads)."""
    from astropy.io import fits

    header = fits.Header()
    for key, value in (("CAL_VER", "1.12.5"), ("CRDS_VER", "11.17.7"),
                       ("CRDS_CTX", "jwst_1166.pmap"),
                       ("R_DARK", "crds://jwst_niriss_dark_0171.fits"), ("S_DARK", "COMPLETE")):
        header[key] = value
    fits.PrimaryHDU(header=header).writeto(path)


def test_reproduce_a_paper_walkthrough(tmp_path, engine):
    shutil.copytree(ROOT / "images", tmp_path / "images")
    for command in readme_block():
        if "--from" in command:
            paper_product(tmp_path / command[command.index("--from") + 1])
    ran = []
    for command in readme_block():
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
