"""The README's first screen stays short, and every relative link in it and in docs/ leads
to a file that is there."""

from __future__ import annotations

import re

from tests.helpers import ROOT

README_MAX_LINES = 200
# Pages that other open issues write (11: verification, 12: reproduce, 13: reproducibility);
# linked from here already. Remove a name once its page has landed.
WRITTEN_ELSEWHERE: set[str] = set()
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_the_readme_is_at_most_200_lines():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, len(lines)
    assert lines[0] == "# niriss-pipe"


def test_every_relative_link_resolves():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(pages) >= 6
    missing = []
    for page in pages:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not ours to check offline
            path = (page.parent / target).resolve()
            name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
            if not path.exists() and name not in WRITTEN_ELSEWHERE:
                missing.append(f"{page.relative_to(ROOT)} -> {target}")
    assert missing == []
