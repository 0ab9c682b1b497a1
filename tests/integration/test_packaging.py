"""The installed package works on its own: a wheel built from the checkout, installed into a
fresh venv with no editable link back to it, renders, validates and builds from another
folder, the same as the checkout does (templates, runtime files and data are package data)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.helpers import ROOT, SOURCE_DATE_EPOCH

pytestmark = [pytest.mark.engine, pytest.mark.network]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a new venv holding only the wheel (its dependencies come from this
    interpreter's site-packages, by path: no .pth of the editable install is read)."""
    work = tmp_path_factory.mktemp("wheel")
    # As pip install . builds it: in an isolated build environment (setuptools from PyPI).
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w",
                            str(work / "dist"), str(ROOT)], capture_output=True, text=True,
                           cwd=work)
    assert build.returncode == 0, build.stderr
    wheel = next((work / "dist").glob("niriss_pipe-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python*/site-packages"))
    deps = Path(sysconfig.get_paths()["purelib"])
    (site / "deps.pth").write_text(f"{deps}\n")  # a path line: .pth files there are not run
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                              "--target", str(site), str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    # pip --target writes no console script: make the one the wheel declares.
    script = venv / "bin" / "niriss-pipe"
    script.write_text(f"#!{venv}/bin/python\nimport sys\nfrom niriss_pipe.cli.main import main\n"
                      "sys.exit(main())\n")
    script.chmod(0o755)
    return venv / "bin"


def run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["SOURCE_DATE_EPOCH"] = SOURCE_DATE_EPOCH
    return subprocess.run([str(bin_dir / "niriss-pipe"), *args], capture_output=True, text=True,
                          cwd=cwd, env=env)


def test_the_wheel_holds_no_link_to_the_checkout(installed, tmp_path):
    proc = subprocess.run([str(installed / "python"), "-c",
                           "import niriss_pipe, sys; print(niriss_pipe.__file__)"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not proc.stdout.strip().startswith(str(ROOT)), proc.stdout


def test_the_wheel_records_the_revision_it_was_built_from(installed, tmp_path):
    """The image's revision label (and so its id) is the same from the wheel as from the
    checkout: the wheel carries the commit, since an installed copy has no .git to ask."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    proc = subprocess.run([str(installed / "python"), "-c",
                           "from niriss_pipe.build import stamps; print(stamps.revision())"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == head


def test_installed_package_renders_the_checkout_s_dockerfile(installed, tmp_path):
    spec = tmp_path / "images" / "default.yaml"
    spec.parent.mkdir()
    shutil.copy(ROOT / "images" / "default.yaml", spec)
    shutil.copytree(ROOT / "images" / "locks", tmp_path / "images" / "locks")
    got = run(installed, "render", "--ca-bundle", "none", str(spec), cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    want = subprocess.run([sys.executable, str(ROOT / "build.py"), "render", "--ca-bundle",
                           "none", "images/default.yaml"], capture_output=True, text=True,
                          cwd=ROOT)
    assert got.stdout == want.stdout and got.stdout.startswith("# Rendered by niriss-pipe")
    valid = run(installed, "validate", str(spec), cwd=tmp_path)
    assert valid.returncode == 0 and "ok -> niriss-pipe:jwst_1584" in valid.stdout
    help_text = run(installed, "--help", cwd=tmp_path).stdout
    assert help_text.startswith("usage: niriss-pipe "), help_text  # the name the user typed


def test_installed_package_builds_the_same_image(installed, tmp_path, default_build):
    """The same build context from the wheel as from the checkout: the session's default
    image is up to date for it (same content tag: Dockerfile, lock, runtime files, base)."""
    spec = tmp_path / "images" / "default.yaml"
    spec.parent.mkdir()
    shutil.copy(ROOT / "images" / "default.yaml", spec)
    shutil.copytree(ROOT / "images" / "locks", tmp_path / "images" / "locks")
    proc = run(installed, "build", str(spec), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "is up to date" in proc.stdout and "nothing to build" in proc.stdout, proc.stdout
