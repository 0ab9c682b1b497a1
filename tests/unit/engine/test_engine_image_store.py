"""Which image store an engine uses, from what ``docker info`` answers (the real answer is
read in tests/integration/test_engine_errors.py)."""

from __future__ import annotations

import pytest

from niriss_pipe.engine.client import Engine

# DriverStatus as engines answer it: Docker 20.10 with overlay2 (classic), Docker 29 on a new
# install (containerd's image store), and an engine that says nothing of its driver.
OVERLAY2 = [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
            ["Native Overlay Diff", "true"], ["userxattr", "false"]]
CONTAINERD = [["driver-type", "io.containerd.snapshotter.v1"]]


class FakeClient:
    def __init__(self, status):
        self.status = status

    def info(self):
        return {"Driver": "overlayfs" if self.status == CONTAINERD else "overlay2",
                "DriverStatus": self.status}


def engine_answering(status) -> Engine:
    import docker

    engine = Engine.__new__(Engine)  # no connection: the client is the fake
    engine.client, engine.errors, engine.transport_errors = FakeClient(status), docker.errors, ()
    return engine


@pytest.mark.parametrize("status, store", [
    (OVERLAY2, "classic"),
    (CONTAINERD, "containerd"),
    (None, "classic"),
    ([], "classic"),
    ([["driver-type"], "x", None], "classic"),  # malformed pairs are not a containerd answer
])
def test_image_store_from_driver_status(status, store):
    assert engine_answering(status).image_store() == store
