"""Helpers the tests share (not fixtures): the checkout, the CLI and docker as a user runs
them, and specs written beside a copy of a shipped lock."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
SOURCE_DATE_EPOCH = "1750000000"  # 2025-06-15T15:06:40Z: every test build gets this 'created'


def cli(*args: str, cwd: Path = ROOT, check: bool = True, env: dict | None = None
        ) -> subprocess.CompletedProcess:
    """Run ``python build.py ARGS`` and return the finished process (output captured)."""
    full_env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, **(env or {})}
    proc = subprocess.run([sys.executable, str(ROOT / "build.py"), *args], cwd=cwd,
                          capture_output=True, text=True, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"build.py {' '.join(args)} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """The docker CLI, as users run images (classic builder is not needed for run)."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {proc.returncode}\n"
                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def write_spec(folder: Path, stem: str, data: dict, lock_of: str = "default") -> Path:
    """Write a spec into ``folder`` with a copy of a shipped spec's lock beside it (valid when
    the Python requirements are the same, as they are for a changed name or pmap)."""
    import yaml

    path = folder / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data))
    (folder / "locks").mkdir(exist_ok=True)
    (folder / "locks" / f"{stem}.txt").write_bytes(
        (ROOT / "images" / "locks" / f"{lock_of}.txt").read_bytes())
    return path


def remove_repository(repository: str) -> None:
    """Remove every tag of a test repository, by tag: an image also tagged elsewhere (a build
    stage shared with the default image, its layer cache) keeps its other tags; an image
    left with none goes, with its untagged parents (nothing dangling stays)."""
    tags = docker("images", "--format", "{{.Repository}}:{{.Tag}}", repository).stdout.split()
    for tag in tags:
        docker("rmi", tag, check=False)


# -- a real browser: Debian's chromium, headless (.ci/run installs it) ---------------------------
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--force-device-scale-factor=1")


def screenshot(page: Path, out: Path, width: int = 1400, height: int = 1800):
    """``page`` as chromium renders it, as an (H, W, 3) uint8 array (also written to
    ``out``). The browser gets an empty profile and no network."""
    import shutil

    import numpy as np
    from PIL import Image

    browser = shutil.which("chromium")
    assert browser, "chromium is missing: .ci/run installs it (apt-get install chromium)"
    profile = out.with_name(out.stem + "-profile")
    proc = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                           f"--screenshot={out}", f"--window-size={width},{height}",
                           page.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert out.is_file(), f"chromium wrote no screenshot (exit {proc.returncode}):\n{proc.stderr}"
    return np.asarray(Image.open(out).convert("RGB"))


def find_image(screen, image) -> list[tuple[int, int]]:
    """Where ``image`` (H, W, 3) appears pixel for pixel in ``screen``: top-left corners."""
    import numpy as np

    height, width = image.shape[:2]
    corners = np.argwhere((screen == image[0, 0]).all(axis=2))
    found = []
    for y, x in corners:
        block = screen[y:y + height, x:x + width]
        if block.shape == image.shape and (block == image).all():
            found.append((int(y), int(x)))
    return found


def colour_runs(row, colour) -> list[tuple[int, int]]:
    """``(start, length)`` of each run of ``colour`` along one pixel row."""
    import numpy as np

    hit = np.concatenate([[False], (row == colour).all(axis=1), [False]])
    edges = np.flatnonzero(hit[1:] != hit[:-1])
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2])]


def cli_on_a_terminal(*args: str, cwd: Path = ROOT, env: dict | None = None,
                      timeout: float = 1800) -> tuple[int, str]:
    """Run ``python build.py ARGS`` with stdout and stderr on a pseudo-terminal, as in an
    interactive shell: (exit code, everything it wrote, ``\\r`` updates included)."""
    import pty
    import select
    import time

    full_env = {**os.environ, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, **(env or {})}
    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(ROOT / "build.py"), *args], cwd=cwd,
                            stdin=subprocess.DEVNULL, stdout=child, stderr=child, env=full_env)
    os.close(child)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 1.0)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:  # the child side closed: all is read
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(main)
    code = proc.wait(timeout=60)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def final_lines(terminal_text: str) -> list[str]:
    """What a terminal shows in the end: each line as its last ``\\r`` redraw left it."""
    return [line.rsplit("\r", 1)[-1] for line in terminal_text.split("\n")]


@contextmanager
def derived_image(engine, tag: str, dockerfile: str, files: dict[str, bytes] | None = None):
    """Build ``tag`` from a Dockerfile (and context files) with the SDK; remove it after."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **(files or {})}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    engine.client.images.build(fileobj=buffer, custom_context=True, tag=tag, rm=True,
                               forcerm=True, pull=False)
    try:
        yield tag
    finally:
        engine.client.api.remove_image(tag, force=True)
