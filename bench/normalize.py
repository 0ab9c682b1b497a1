#!/usr/bin/env python3
"""Where the bit-identical rewrite (build/normalize.py) spends its time, phase by phase.

It rewrites a built, not yet rewritten image: by default the newest ``environment-*`` stage
the default spec's builds keep as their layer cache (``make image`` first), else ``--image``.
The rewrite runs under an epoch no build uses and a layer map of its own, so every layer is
new to the engine and sent: the worst case of a cold build, with the base's layer sent too.
Timed, from the call: the engine's first byte of the save (it writes the whole archive before
it sends any), each layer's rewrite (start, end, size), the last byte handed to the load, and
the load's answer (the engine registers the layers it received: a sha256 and an extraction
each). The image loaded is removed afterwards. Results go to bench/results/normalize.json and
are printed; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from niriss_pipe.build import normalize  # noqa: E402
from niriss_pipe.core import tarstream  # noqa: E402
from niriss_pipe.engine.client import Engine  # noqa: E402

EPOCH = 1262304000  # 2010-01-01: no lock's day, so no layer map or engine holds its rewrite


def newest_stage(engine: Engine, repository: str) -> str | None:
    tagged = [image for image in engine.client.images.list(repository)
              if any(tag.split(":", 1)[1].startswith("environment-") for tag in image.tags)]
    tagged.sort(key=lambda image: image.attrs.get("Created", ""), reverse=True)
    return tagged[0].id if tagged else None


class Clock:
    """Seconds since the rewrite was called, for each event the hooks below report."""

    def __init__(self):
        self.started = time.monotonic()
        self.events: list[tuple[float, str]] = []

    def mark(self, event: str) -> None:
        self.events.append((round(time.monotonic() - self.started, 2), event))


def instrument(engine: Engine, clock: Clock) -> None:
    """Wrap the save, each layer's rewrite, what is handed to the load, and the load."""
    save, rewrite, member, load = (engine.save_image, normalize.rewrite_layer_hashed,
                                   tarstream.member, engine.load_stream)

    def timed_save(*args, **kwargs):
        first = True
        for chunk in save(*args, **kwargs):
            if first:
                clock.mark("save: first byte")
                first = False
            yield chunk
        clock.mark("save: last byte")

    def timed_rewrite(src, dst, epoch):
        clock.mark("rewrite: layer start")
        original, new = rewrite(src, dst, epoch)
        size = dst.tell()
        clock.mark(f"rewrite: layer end, {size / 2**20:.0f} MiB"
                   + (" (build-only, left out)" if new is None else ""))
        return original, new

    def timed_member(name, data):
        yield from member(name, data)
        if name.endswith("manifest.json"):
            clock.mark("load: last byte sent")

    def timed_load(chunks):
        image_id = load(chunks)
        clock.mark("load: answered")
        return image_id

    engine.save_image, engine.load_stream = timed_save, timed_load
    normalize.rewrite_layer_hashed, tarstream.member = timed_rewrite, timed_member


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", help="a built image (default: the newest environment "
                                        "stage of niriss-pipe)")
    parser.add_argument("--repository", default="niriss-pipe")
    args = parser.parse_args()
    engine = Engine()
    image_id = engine.image_id(args.image) if args.image else newest_stage(engine,
                                                                         args.repository)
    if not image_id:
        raise SystemExit("no built image to rewrite: run 'make image' first, or give --image.")
    clock = Clock()
    instrument(engine, clock)
    with tempfile.TemporaryDirectory(prefix="niriss-pipe-bench-normalize-") as tmp:
        clock.started = time.monotonic()
        new_id = normalize.normalize_image(engine, image_id, EPOCH,
                                           normalize.LayerMap(Path(tmp) / "layers.json"))
        clock.mark("done")
    engine.client.images.remove(new_id, force=True)
    results = {"machine": f"{platform.node()}, {os.cpu_count()} cores, load "
                          f"{os.getloadavg()[0]:.1f} at start, engine "
                          f"{engine.server_version().get('Version')}",
               "date": time.strftime("%Y-%m-%d"), "image": image_id[7:19],
               "image_bytes": engine.image_size(image_id), "events": clock.events}
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "normalize.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"rewrite of {image_id[7:19]} ({results['image_bytes'] / 2**20:.0f} MiB), every "
          f"layer new to the engine; {results['machine']}")
    for seconds, event in clock.events:
        print(f"  {seconds:6.2f} s  {event}")


if __name__ == "__main__":
    main()
