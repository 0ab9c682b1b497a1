"""Build orchestration order, with a recording engine: the real engine is in tests/integration.

What matters to users here is *when* tags move: never before the self-test
passed, the content tag last, and a failed self-test removes the new image.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from niriss_pipe.build import builder, stamps
from niriss_pipe.cli.main import exit_code
from niriss_pipe.core.errors import EngineError, UserError
from niriss_pipe.core.progress import Reporter
from niriss_pipe.engine.values import BuildOutcome, RunResult
from niriss_pipe.spec.load import load_spec
from tests.helpers import ROOT


class RecordingEngine:
    """Just enough of Engine to drive builder.build; records every call in order."""

    def __init__(self, selftest_code=0, existing=None):
        self.reporter = Reporter(verbose=False)
        self.calls = []
        self.tags = dict(existing or {})
        self.selftest_code = selftest_code
        self.store = "classic"
        self.env = ["PATH=/opt/env/bin:/usr/bin", "CRDS_CONTEXT=jwst_1584.pmap"]

    def image_store(self):
        return self.store

    def image_id(self, ref):
        if ref.startswith("niriss-pipe-base:"):
            return "sha256:base"
        return self.tags.get(ref)

    def image_info(self, ref):
        from niriss_pipe.engine.values import ImageInfo

        return ImageInfo(id=ref, tags=(), labels={}, env=tuple(self.env),
                         entrypoint=("/usr/local/bin/niriss-pipe-entrypoint",), cmd=("info",),
                         layers=("sha256:l1", "sha256:l2"), user="jwst", workdir="/data")

    def repo_digest(self, ref):
        return "sha256:base"

    def build(self, context, buildargs, no_cache=False, offline=False, keep=()):
        self.calls.append(("build", sorted(buildargs)))
        return BuildOutcome("sha256:new", {"environment": "sha256:" + "e" * 64})

    def run(self, image, command, **kwargs):
        self.calls.append(("run", command, kwargs.get("network")))
        verdict = "FAIL" if self.selftest_code else "PASS"
        return RunResult(self.selftest_code, f"selftest: {verdict}\n")

    def tag(self, image_id, repository, tag):
        self.calls.append(("tag", tag))
        self.tags[f"{repository}:{tag}"] = image_id

    def remove_untagged(self, image_id):
        self.calls.append(("remove_untagged", image_id))


@pytest.fixture(autouse=True)
def config_only_normalize(monkeypatch, tmp_path):
    """The rewrite is build/normalize.py's (tested there); here the built image is its own
    rewrite, and the layer map is the test's."""
    monkeypatch.setenv("NIRISS_PIPE_LAYER_MAP", str(tmp_path / "layers.json"))
    monkeypatch.setenv("NIRISS_PIPE_RECORDS", str(tmp_path / "records"))
    monkeypatch.setattr(builder, "normalize_config_only", lambda engine, built, epoch, m: built)


@pytest.fixture(autouse=True)
def no_wheels(monkeypatch):
    """The wheel folder is build/wheels.py's (tests/unit/build/test_wheels.py): not read here."""
    monkeypatch.setattr(builder, "context_wheels", lambda *args: {})


@pytest.fixture(autouse=True)
def no_os_packages(monkeypatch):
    """The OS packages are build/debs.py's (tests/unit/build/test_debs.py): apt is not run
    and the host's os-packages cache is not read here."""
    monkeypatch.setattr(builder, "os_packages",
                        lambda *args: builder.debs.OsPackages(Path("os-packages"), {}))


@pytest.fixture
def spec():
    return load_spec(ROOT / "images" / "default.yaml")


def options(tmp_path):
    return builder.BuildOptions(ca_bundle="none", cache=tmp_path)


def test_tags_only_after_selftest_content_tag_last(spec, tmp_path):
    engine = RecordingEngine()
    result = builder.build(spec, engine, options(tmp_path))
    kinds = [c[0] for c in engine.calls]
    assert kinds == ["build", "tag", "run", "tag", "tag", "tag"]
    assert engine.calls[1] == ("tag", "environment-" + "e" * 12)  # the build stage, named
    assert engine.calls[2] == ("run", ["selftest"], False)  # self-test runs with no network
    assert [c[1] for c in engine.calls[3:]] == [
        "jwst_1584", "jwst_1584-jwst3.0.0-py3.11", result.content_tag]
    assert "NIRISS_PIPE_CREATED" in engine.calls[0][1] and result.built


def test_failed_selftest_tags_nothing_and_removes_image(spec, tmp_path):
    engine = RecordingEngine(selftest_code=1)
    with pytest.raises(EngineError, match="self-test failed"):
        builder.build(spec, engine, options(tmp_path))
    assert [c[0] for c in engine.calls] == ["build", "tag", "run", "remove_untagged"]
    assert list(engine.tags) == ["niriss-pipe:environment-" + "e" * 12]  # cache, not a product


def test_existing_content_tag_is_a_no_op_that_repoints_user_tags(spec, tmp_path):
    first = RecordingEngine()
    ctag = builder.build(spec, first, options(tmp_path)).content_tag
    # Another spec with the same pmap took ':jwst_1584' meanwhile.
    tags = {**first.tags, "niriss-pipe:jwst_1584": "sha256:other"}
    second = RecordingEngine(existing=tags)
    result = builder.build(spec, second, options(tmp_path))
    assert not result.built and result.content_tag == ctag
    assert second.calls == [("tag", "jwst_1584")]


def test_containerd_image_store_is_refused_before_any_work(spec, tmp_path):
    """Under containerd's image store an image is named by its manifest's digest, so the
    rewrite's id could never be the image's: one paragraph naming the engine setting and
    the fix, exit code 2, and nothing built, run or tagged."""
    engine = RecordingEngine()
    engine.store = "containerd"
    with pytest.raises(UserError) as caught:
        builder.build(spec, engine, options(tmp_path))
    assert "io.containerd.snapshotter.v1" in caught.value.what
    assert '"containerd-snapshotter": false' in caught.value.fix
    assert exit_code(caught.value) == 2
    assert engine.calls == [] and engine.tags == {}


def test_source_date_epoch_sets_created(monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    args = stamps.label_args("sha256:abc", stamps.source_date_epoch())
    assert args["NIRISS_PIPE_CREATED"] == "2023-11-14T22:13:20Z"
    assert args["NIRISS_PIPE_BASE_DIGEST"] == "sha256:abc"


def test_source_date_epoch_is_part_of_the_content_tag(spec, tmp_path, monkeypatch):
    """An image built under another SOURCE_DATE_EPOCH has another 'created': another image,
    so an earlier build must not make this one a no-op."""
    tags = []
    for epoch in ("1700000000", "1750000000", None):
        if epoch:
            monkeypatch.setenv("SOURCE_DATE_EPOCH", epoch)
        else:
            monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
        tags.append(builder.build(spec, RecordingEngine(), options(tmp_path)).content_tag)
    assert len(set(tags)) == 3


def test_the_tools_revision_is_part_of_the_content_tag(spec, tmp_path, monkeypatch):
    """The revision label is in the image: an image built by another commit of the tool is
    another image, so it must not make a build here a no-op (CI found one made by the
    previous commit 'up to date', and then a rebuild gave another id)."""
    tags = []
    for revision in ("4ceafaf2b6d3c01a4561fb05a1faed26d2c0108b",
                     "95cb0ea0000000000000000000000000000000000", ""):
        monkeypatch.setattr(stamps, "_git", lambda *args, rev=revision: rev)
        tags.append(builder.build(spec, RecordingEngine(), options(tmp_path)).content_tag)
    assert len(set(tags)) == 3
    monkeypatch.setattr(stamps, "_git", lambda *args: "4ceafaf2b6d3c01a4561fb05a1faed26d2c0108b")
    assert builder.build(spec, RecordingEngine(), options(tmp_path)).content_tag == tags[0]


def test_a_rebuild_under_the_images_tool_labels_is_the_image_of_that_revision(
        spec, tmp_path, monkeypatch):
    """``verify --rebuild`` builds under the revision and source labels of the image it checks
    (as it builds under its time): the content tag, and so the image, is that revision's when
    the files are the same, whatever this checkout's revision is."""
    old, new = "4ceafaf2b6d3c01a4561fb05a1faed26d2c0108b", "95cb0ea" + "0" * 33
    fork = "https://example.org/someone/niriss-pipe.git"
    monkeypatch.setattr(stamps, "_git", lambda *args: old)
    monkeypatch.setattr(stamps, "public_source", lambda remote: fork)
    made_there = builder.build(spec, RecordingEngine(), options(tmp_path)).content_tag
    monkeypatch.setattr(stamps, "_git", lambda *args: new)
    monkeypatch.setattr(stamps, "public_source", lambda remote: stamps.PROJECT_URL)
    here = builder.build(spec, RecordingEngine(), options(tmp_path)).content_tag
    as_there = builder.build(spec, RecordingEngine(), replace(
        options(tmp_path), revision_label=old, source_label=fork)).content_tag
    assert here != made_there and as_there == made_there
    args = stamps.label_args("sha256:abc", "1700000000", revision_label="", source_label=fork)
    assert args["NIRISS_PIPE_REVISION"] == "" and args["NIRISS_PIPE_SOURCE"] == fork


@pytest.mark.parametrize("revision, source", [
    ("4ceafaf2b6d3; rm -rf ~", None),
    ("$(id)", None),
    ("4ceafaf2b6d3c01a4561fb05a1faed26d2c0108", None),  # 39 digits
    ("4CEAFAF2B6D3C01A4561FB05A1FAED26D2C0108B", None),
    ("4ceafaf2b6d3c01a4561fb05a1faed26d2c0108b\n", None),
    (None, "https://user:ghp_secret@github.com/team/repo"),
    (None, "file:///etc/passwd"),
    (None, "https://example.org/x\"; echo owned"),
    (None, "https://example.org/a b"),
    (None, ""),
])
def test_tool_labels_this_tool_never_writes_are_refused(revision, source):
    with pytest.raises(UserError, match="org.opencontainers.image.(revision|source)") as err:
        stamps.checked_tool_labels(revision, source, "niriss-pipe:old")
    assert "niriss-pipe:old" in str(err.value)


def test_tool_labels_this_tool_writes_are_kept():
    for revision, source in [("4ceafaf2b6d3c01a4561fb05a1faed26d2c0108b", stamps.PROJECT_URL),
                             ("", "git@github.com:team/repo.git"), (None, None)]:
        assert stamps.checked_tool_labels(revision, source, "x") == (revision, source)


@pytest.mark.parametrize("value", ["yesterday", "1.5", "-1", "١٧٠٠٠٠٠٠٠٠", "17\n"])
def test_bad_source_date_epoch_is_a_user_error(monkeypatch, value):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    with pytest.raises(UserError, match="SOURCE_DATE_EPOCH"):
        stamps.source_date_epoch()


@pytest.mark.parametrize("remote, label", [
    ("https://github.com/niriss-pipe/niriss-pipe.git",
     "https://github.com/niriss-pipe/niriss-pipe.git"),
    ("https://user:ghp_secret@github.com/team/repo", "https://github.com/team/repo"),
    ("git@github.com:team/repo.git", "git@github.com:team/repo.git"),
    ("/work/main", stamps.PROJECT_URL),
    ("file:///home/astro/niriss-pipe", stamps.PROJECT_URL),
    ("", stamps.PROJECT_URL),
])
def test_source_label_holds_no_host_path_or_credential(remote, label):
    assert stamps.public_source(remote) == label


def test_the_image_s_times_come_from_the_lock_s_day_unless_set(monkeypatch):
    text = (ROOT / "images" / "locks" / "default.txt").read_text()
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert stamps.build_epoch(text) == "1784073600"  # 2026-07-15T00:00:00Z, its exclude_newer
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert stamps.build_epoch(text) == "1700000000"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    with pytest.raises(UserError, match="records no resolution day"):
        stamps.build_epoch("# a lock without inputs\n")


def test_the_verdict_of_the_same_environment_is_reused(spec, tmp_path):
    """A pmap-only change (CRDS_CONTEXT) keeps the environment: no second self-test. Another
    layer or run setting runs it; a failed self-test is never remembered."""
    first = RecordingEngine()
    built = builder.build(spec, first, options(tmp_path))
    assert ("run", ["selftest"], False) in first.calls and built.selftest_reused_from is None
    second = RecordingEngine()
    second.env = ["PATH=/opt/env/bin:/usr/bin", "CRDS_CONTEXT=jwst_1586.pmap"]
    again = builder.build(spec, second, builder.BuildOptions(ca_bundle="none", cache=tmp_path,
                                                             force=True))
    assert [c for c in second.calls if c[0] == "run"] == []
    assert again.selftest_reused_from == "sha256:new"
    assert again.selftest_output.startswith("selftest: PASS")
    third = RecordingEngine()
    third.env = ["PATH=/opt/env/bin:/usr/bin", "OMP_NUM_THREADS=1"]
    builder.build(spec, third, builder.BuildOptions(ca_bundle="none", cache=tmp_path,
                                                    force=True))
    assert ("run", ["selftest"], False) in third.calls  # another run setting: run again
    fresh = RecordingEngine()
    builder.build(spec, fresh, builder.BuildOptions(ca_bundle="none", cache=tmp_path,
                                                    no_cache=True))
    assert ("run", ["selftest"], False) in fresh.calls  # --no-cache: everything anew


def test_a_failed_selftest_is_not_remembered(spec, tmp_path):
    with pytest.raises(EngineError):
        builder.build(spec, RecordingEngine(selftest_code=1), options(tmp_path))
    retry = RecordingEngine()
    builder.build(spec, retry, options(tmp_path))
    assert ("run", ["selftest"], False) in retry.calls


def test_the_self_test_sets_every_variable_the_verdict_key_leaves_out():
    from niriss_pipe.runtime.contract import SELFTEST_OWN_ENV
    from niriss_pipe.runtime.selftest import offline_env

    env = offline_env("/tmp/synthetic", "jwst_9999.pmap")
    assert all(name in env or name.endswith("_URI") for name in SELFTEST_OWN_ENV)
    assert not any(name in env for name in SELFTEST_OWN_ENV if name.endswith("_URI"))


def test_an_installed_copy_inside_another_repository_does_not_take_its_revision(
        tmp_path, monkeypatch):
    """A venv inside a user's own project: git there would name the project's commit."""
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=u", "-c", "user.email=u@x",
                    "commit", "-q", "--allow-empty", "-m", "theirs"], check=True)
    site = tmp_path / "venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    monkeypatch.setattr(stamps, "REPO_DIR", site)
    monkeypatch.setattr(stamps, "_recorded_revision", lambda: "")
    assert stamps.revision() == ""
    monkeypatch.setattr(stamps, "REPO_DIR", tmp_path)  # the checkout itself: its HEAD
    assert re.fullmatch(r"[0-9a-f]{40}", stamps.revision())
