"""Remove only what niriss-pipe made: its labelled images, the OS packages fetched for the base
images it removes, the demo folder, synthetic contexts.

Real CRDS files in the cache are never touched: only files with the reserved
synthetic serial (``_9999.``) and a server_config that names a synthetic context.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from niriss_pipe.build import debs
from niriss_pipe.build.demo import DEMO_DIR
from niriss_pipe.engine.client import Engine
from niriss_pipe.runtime.contract import LABEL_NS, SYNTHETIC_SERIAL


def synthetic_files(cache: Path) -> list[Path]:
    marker = f"_{SYNTHETIC_SERIAL}."
    found = [p for p in cache.rglob(f"*{marker}*") if p.is_file()]
    config = cache / "config" / "jwst" / "server_config"
    if config.is_file() and f"jwst_{SYNTHETIC_SERIAL}.pmap" in config.read_text():
        found.append(config)
    return sorted(found)


def clean(engine: Engine, *, cache: Path, dry_run: bool = False) -> None:
    say = engine.reporter.say
    verb = "would remove" if dry_run else "removed"
    built = engine.images_with_label(f"{LABEL_NS}.tool.version")
    bases = [i for i in engine.images_with_label(f"{LABEL_NS}.base.suite")
             if i.id not in {b.id for b in built}]
    for image in built + bases:  # children before their base
        names = ", ".join(image.tags) or image.id[7:19]
        if not dry_run:
            engine.remove_image(image.id)
        say(f"{verb} image {names}")
    for folder in debs.folders_of(debs.cache_dir(), {image.id for image in bases}):
        if not dry_run:
            shutil.rmtree(folder)
        say(f"{verb} {folder}/ (OS packages of a removed base)")
    for path in synthetic_files(cache):
        if not dry_run:
            path.unlink()
        say(f"{verb} {path}")
    if DEMO_DIR.is_dir():
        if not dry_run:
            shutil.rmtree(DEMO_DIR)
        say(f"{verb} {DEMO_DIR}/")
