"""``verify --rebuild`` of an image an earlier commit of the tool built: the rebuild is asked
for under the image's revision, source and time, and its report names both revisions; when the
images differ, the fix names the revision to check out. The build and the comparison are
stand-ins here; tests/integration/test_reproducible.py runs the real ones."""

from __future__ import annotations

import pytest

from niriss_pipe.build.options import BuildOptions, BuildResult
from niriss_pipe.core.errors import UserError, VerificationError
from niriss_pipe.core.progress import Reporter
from niriss_pipe.engine.values import ImageInfo
from niriss_pipe.provenance import rebuild
from niriss_pipe.provenance.imagediff import ImageDiff
from niriss_pipe.spec import lock as locking
from niriss_pipe.spec.load import load_spec
from tests.helpers import ROOT

EARLIER = "0123456789abcdef0123456789abcdef01234567"
HERE = "fedcba9876543210fedcba9876543210fedcba98"
SOURCE = "https://example.org/someone/niriss-pipe.git"


class Engine:
    def __init__(self, labels):
        self.reporter = Reporter()
        self.said = []
        self.reporter.say = self.said.append
        self.labels = labels

    def image_info(self, ref):
        return ImageInfo(id="sha256:" + "a" * 64, tags=("niriss-pipe:old",), labels=self.labels,
                         env=(), entrypoint=(), cmd=())


def labels(revision=EARLIER, source=SOURCE):
    spec = load_spec(ROOT / "images" / "default.yaml")
    return {"io.niriss-pipe.tool.version": "0.1.0", "io.niriss-pipe.spec": "default.yaml",
            "io.niriss-pipe.lock.digest": locking.digest(locking.check(spec)),
            "org.opencontainers.image.created": "2025-06-15T15:06:40Z",
            "org.opencontainers.image.revision": revision,
            "org.opencontainers.image.source": source}


@pytest.fixture
def asked(monkeypatch):
    """The options the rebuild's build was asked with; its result is ``second``."""
    class Calls(list):
        second = "sha256:" + "a" * 64

    calls = Calls()

    def build(spec, engine, options):
        calls.append(options)
        return BuildResult(calls.second, [], "content-x", True, 1.0)

    monkeypatch.setattr(rebuild, "build", build)
    monkeypatch.setattr(rebuild, "compare_images",
                        lambda engine, first, second: ImageDiff(first, second))
    monkeypatch.setattr(rebuild, "revision", lambda: HERE)
    monkeypatch.setattr(rebuild, "find_records", lambda image_id: [])
    monkeypatch.setattr(rebuild, "remove_ours", lambda *args: None)
    monkeypatch.chdir(ROOT)
    return calls


def test_the_rebuild_is_asked_under_the_images_labels_and_names_both_revisions(asked):
    engine = Engine(labels())
    diff = rebuild.rebuild_image(engine, "niriss-pipe:old", BuildOptions(ca_bundle="none"))
    assert diff.same
    (options,) = asked
    assert (options.revision_label, options.source_label) == (EARLIER, SOURCE)
    assert options.source_date_epoch == "1750000000" and options.no_cache
    said = "\n".join(engine.said)
    assert f"built by revision {EARLIER[:12]}; this checkout is {HERE[:12]}" in said
    assert f"rebuilt bit for bit (sha256:{'a' * 64}) by revision {HERE[:12]}" in said


def test_the_same_revision_says_nothing_of_revisions(asked):
    engine = Engine(labels(revision=HERE))
    rebuild.rebuild_image(engine, "niriss-pipe:old", BuildOptions(ca_bundle="none"))
    said = "\n".join(engine.said)
    assert "built by revision" not in said and said.endswith(f"({'sha256:' + 'a' * 64})")


def test_a_difference_names_the_revision_to_check_out(asked):
    asked.second = "sha256:" + "b" * 64
    with pytest.raises(VerificationError) as err:
        rebuild.rebuild_image(Engine(labels()), "niriss-pipe:old", BuildOptions(ca_bundle="none"))
    assert f"check out {EARLIER} (git worktree add DIR {EARLIER[:12]})" in err.value.fix


def test_a_revision_label_this_tool_never_writes_is_refused_before_any_build(asked):
    with pytest.raises(UserError, match="org.opencontainers.image.revision"):
        rebuild.rebuild_image(Engine(labels(revision="HEAD; rm -rf ~")), "niriss-pipe:old",
                              BuildOptions(ca_bundle="none"))
    assert asked == []
