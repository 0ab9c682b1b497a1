"""Render layer: writer context, golden Dockerfiles, stage order and determinism."""

from __future__ import annotations

import dataclasses
import os

import pytest

from niriss_pipe.render import dockerfile as render
from niriss_pipe.render import names
from niriss_pipe.spec.load import load_spec
from tests.helpers import GOLDEN, ROOT

STAGE_ORDER = ["base", "os-packages", "python-env", "build-only", "jwst", "runtime", "context"]


def spec(name="default"):
    return load_spec(ROOT / "images" / f"{name}.yaml")


@pytest.mark.parametrize("name, kwargs", [
    ("default", {}),
    ("default", {"ca_bundle": True}),
    ("jwst_0579", {"imap": "jwst_niriss_0123.imap"}),
])
def test_golden(name, kwargs):
    """The rendered text is reviewed in tests/golden; UPDATE_GOLDEN=1 rewrites it."""
    suffix = "-ca" if kwargs.get("ca_bundle") else ""
    golden = GOLDEN / f"{name}{suffix}.Dockerfile"
    text = render.render(spec(name), **kwargs)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_golden_from_the_index():
    """A lock with source releases (jwst 1.12.5's era) is installed by pip from the index,
    hash-checked, in the build: no wheel folder, no uv; the stages stay the same."""
    golden = GOLDEN / "jwst_1166-index.Dockerfile"
    text = render.render(spec("jwst_1166"), wheelhouse=False)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    assert "--no-index" not in text and "uv pip install" not in text and "wheels/" not in text
    assert "pip install --no-cache-dir --disable-pip-version-check \\\n      --require-hashes" \
        in text
    assert [name for name, _ in render.stages(text)] == STAGE_ORDER
    assert render.writer_context(spec("jwst_1166"), wheelhouse=False)["wheelhouse"] is False


def test_golden_bake():
    """A baked image adds one COPY of the cache after every environment layer."""
    baked = dataclasses.replace(spec(), references="bake")
    golden = GOLDEN / "default-bake.Dockerfile"
    text = render.render(baked)
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()
    names = [name for name, _ in render.stages(text)]
    assert names == [*STAGE_ORDER[:-1], "references", "context"]


def test_deterministic():
    assert render.render(spec()) == render.render(spec())


def test_stage_order_least_to_most_often_changed():
    names = [name for name, _ in render.stages(render.render(spec()))]
    assert names == STAGE_ORDER
    with_ca = [name for name, _ in render.stages(render.render(spec(), ca_bundle=True))]
    assert with_ca == STAGE_ORDER  # the CA bundle rides in the build-only layer
    conda = [name for name, _ in render.stages(render.render(spec("jwst_0579")))]
    assert conda == ["base", "os-packages", "build-only", "python-env", *STAGE_ORDER[4:]]


def test_pmap_change_only_touches_last_stage():
    """A new pmap must reuse every environment layer: the text differs only after 'context'."""
    a = spec()
    b = dataclasses.replace(a, context="jwst_1585.pmap")
    text_a, text_b = render.render(a), render.render(b)
    marker = "# == stage: context =="
    body_a, body_b = text_a.split(marker)[0], text_b.split(marker)[0]
    # Only the header comment (which names the tags) may differ before the last stage.
    strip = lambda t: [line for line in t.splitlines() if not line.startswith("#")]  # noqa: E731
    assert strip(body_a) == strip(body_b)
    assert text_a.split(marker)[1] != text_b.split(marker)[1]


def test_stage_counts_match_instructions():
    text = render.render(spec(), ca_bundle=True)
    instructions = [line for line in text.splitlines()
                    if line and not line.startswith((" ", "#")) and line.split()[0].isupper()]
    assert sum(count for _, count in render.stages(text)) == len(instructions)


def test_writer_context_venv():
    ctx = render.writer_context(spec())
    assert ctx["apt_packages"] == ["ca-certificates", "python3", "python3-venv"]
    assert ctx["lock_file"] == "requirements.lock"
    assert ctx["tags"] == {"pmap": "jwst_1584", "full": "jwst_1584-jwst3.0.0-py3.11"}
    assert ctx["crds_path"] == "/crds" and "serverless" in ctx["crds_server_url"]
    assert ctx["ca_bundle"] is None


def test_writer_context_conda_git():
    ctx = render.writer_context(spec("jwst_0579"))
    assert ctx["manager"] == "conda"
    assert {"bzip2", "curl", "git", "gcc"} <= set(ctx["apt_packages"])
    assert "python3-venv" not in ctx["apt_packages"]
    assert ctx["tags"]["full"] == "jwst_0579-jwst0.14.2-py3.7"


def test_labels_sorted_and_namespaced():
    labels = names.labels(spec(), "jwst_niriss_0123.imap")
    keys = [k for k, _ in labels]
    assert keys == sorted(keys)
    table = dict(labels)
    assert table["io.niriss-pipe.crds.context"] == "jwst_1584.pmap"
    assert table["io.niriss-pipe.crds.niriss-imap"] == "jwst_niriss_0123.imap"
    assert table["io.niriss-pipe.jwst.version"] == "3.0.0"
    assert table["org.opencontainers.image.version"] == "jwst_1584-jwst3.0.0-py3.11"
    assert table["org.opencontainers.image.base.name"] == \
        "niriss-pipe-base:bookworm-minbase-27f28161"
    git_labels = dict(names.labels(spec("jwst_0579"), None))
    assert git_labels["io.niriss-pipe.jwst.ref"] == "0.14.2"
    assert "io.niriss-pipe.jwst.version" not in git_labels
    assert "io.niriss-pipe.crds.niriss-imap" not in git_labels


def test_build_time_values_are_args_not_text():
    """Creation time, revision and base digest vary per build: ARGs keep the text stable."""
    text = render.render(spec())
    for arg in ("NIRISS_PIPE_CREATED", "NIRISS_PIPE_REVISION", "NIRISS_PIPE_BASE_DIGEST"):
        assert f"ARG {arg}\n" in text and f"${{{arg}}}" in text


def test_full_tag_sanitises_git_refs():
    s = dataclasses.replace(spec("jwst_0579"),
                            jwst=dataclasses.replace(spec("jwst_0579").jwst, ref="feature/x+y"))
    assert names.full_tag(s) == "jwst_0579-jwstfeature-x-y-py3.7"
