"""The wheel records the git revision it was built from (``niriss_pipe/data/revision``), so an
image built by an installed copy carries the same ``revision`` label, and the same id, as one
built from the checkout (niriss_pipe/build/stamps.py reads it when there is no checkout)."""

import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithRevision(build_py):
    def run(self):
        super().run()
        try:
            revision = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent),
                                       "rev-parse", "HEAD"], capture_output=True, text=True,
                                      timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            revision = ""
        if revision:
            target = Path(self.build_lib) / "niriss_pipe" / "data" / "revision"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(revision + "\n")


setup(cmdclass={"build_py": BuildPyWithRevision})
