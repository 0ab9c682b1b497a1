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
