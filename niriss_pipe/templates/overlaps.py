"""Run in the environment build stage after uv's install (its own Python, 3.7+): files that two
wheels both install, with different content, are rewritten from the wheels in name order.

uv unpacks wheels in parallel, so where two wheels ship the same path (gwcs and tweakwcs both
ship a top-level docs/) the copy that stays would depend on thread timing, and two builds of
one lock would differ. pip installs one wheel after the other in lock order, so the last one
wins; this does the same, deterministically, and names what it rewrote in the build log.
"""

import collections
import csv
import os
import sys
import zipfile


def main(wheels):
    hashes = collections.defaultdict(set)
    for name in sorted(os.listdir(".")):
        record = os.path.join(name, "RECORD")
        if name.endswith(".dist-info") and os.path.isfile(record):
            with open(record, newline="") as stream:
                for row in csv.reader(stream):
                    if len(row) > 1 and row[1]:
                        hashes[row[0]].add(row[1])
    clashes = {path for path, seen in hashes.items() if len(seen) > 1}
    for name in sorted(os.listdir(wheels)):
        if not name.endswith(".whl"):
            continue
        with zipfile.ZipFile(os.path.join(wheels, name)) as archive:
            for member in archive.namelist():
                if member in clashes:
                    with archive.open(member) as source, open(member, "wb") as target:
                        target.write(source.read())
    if clashes:
        print("installed by two wheels, the last by name kept (as pip's lock order): "
              + " ".join(sorted(clashes)))


if __name__ == "__main__":
    main(sys.argv[1])
