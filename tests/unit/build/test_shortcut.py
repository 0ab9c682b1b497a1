"""The pmap-only shortcut: the runtime stage is found by what it is made from (never by the
image's name, pmap or comments), and the last stage is built on it with the CRDS files alone."""

from __future__ import annotations

import dataclasses

from niriss_pipe.build.shortcut import RuntimeStages, last_stage_context, runtime_key, split
from niriss_pipe.render import dockerfile as render
from niriss_pipe.render.context import DiskFile, make_context
from niriss_pipe.spec.load import load_spec
from tests.helpers import ROOT

LOCK = b"numpy==2.3.1 --hash=sha256:" + b"0" * 64 + b"\n"


def context_of(pmap="jwst_1584.pmap", name="niriss-pipe", lock=LOCK, baked=False, crds=None):
    spec = load_spec(ROOT / "images" / "default.yaml")
    spec = dataclasses.replace(spec, name=name, context=pmap,
                               references="bake" if baked else spec.references)
    return make_context(render.render(spec), lock, crds_files=crds or {})


def test_a_pmap_or_name_change_keeps_the_key_and_anything_else_changes_it(tmp_path):
    key = runtime_key(context_of(), "sha256:base", "1752537600")
    assert key and runtime_key(context_of("jwst_1590.pmap", "other"), "sha256:base",
                               "1752537600") == key
    assert runtime_key(context_of(crds={"crds/mappings/jwst/x.pmap": b"1"}), "sha256:base",
                       "1752537600") == key  # the baked files are the last stage's
    assert runtime_key(context_of(), "sha256:other", "1752537600") != key  # the base
    assert runtime_key(context_of(), "sha256:base", "1752537601") != key  # the epoch
    assert runtime_key(context_of(lock=b"numpy==2.3.2\n"), "sha256:base", "1752537600") != key
    wheel = tmp_path / "a-1-py3-none-any.whl"
    wheel.write_bytes(b"zip")
    with_wheel = context_of()
    with_wheel.disk["build-only/wheels/a-1-py3-none-any.whl"] = DiskFile(wheel, "1" * 64,
                                                                         "sha256")
    assert runtime_key(with_wheel, "sha256:base", "1752537600") != key
    plain = context_of()
    edited = dataclasses.replace(plain, dockerfile=plain.dockerfile.replace(
        "python3 -m venv", "python3 -m  venv"))
    assert runtime_key(edited, "sha256:base", "1752537600") != key  # an instruction
    assert runtime_key(make_context("FROM x\n", LOCK), "sha256:base", "1") is None


def test_the_last_stage_is_built_on_the_runtime_stage_with_the_crds_files_alone():
    full = context_of(crds={"crds/mappings/jwst/x.pmap": b"1"}, baked=True)
    small = last_stage_context(full, "sha256:" + "a" * 64)
    lines = small.dockerfile.splitlines()
    assert lines[0] == "# == stage: references ==" and lines[1] == "FROM sha256:" + "a" * 64
    assert small.dockerfile.split("\n", 2)[2] in split(full.dockerfile)[1]  # the stage, as is
    assert "COPY crds/" in small.dockerfile and "uv pip install" not in small.dockerfile
    assert set(small.files) == {"crds/mappings/jwst/x.pmap"} and not small.disk
    assert [name for name, _ in render.stages(small.dockerfile)] == ["references", "context"]


def test_the_cache_of_runtime_stages_survives_a_broken_file(tmp_path):
    path = tmp_path / "stages.json"
    path.write_text("{")
    stages = RuntimeStages(path)
    assert stages.get("k") is None
    stages.put("k", "sha256:" + "b" * 64)
    assert RuntimeStages(path).get("k") == "sha256:" + "b" * 64
    path.write_text('{"k": "not an id"}')
    assert RuntimeStages(path).get("k") is None
