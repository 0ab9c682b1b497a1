"""Progress output: what a failure shows."""

from __future__ import annotations

from niriss_pipe.core.progress import failure_excerpt


def test_failure_excerpt_starts_at_the_error_report():
    log = ["Collecting numpy"] * 50 + ["ERROR: THESE PACKAGES DO NOT MATCH THE HASHES"] + [
        "    Expected sha256 0000"] * 40
    excerpt = failure_excerpt(log)
    assert excerpt[0].startswith("ERROR: THESE PACKAGES") and excerpt[-1] == "..."
    assert len(excerpt) == 26
    assert failure_excerpt(["a", "b", "c"], at_most=2) == ["b", "c"]
