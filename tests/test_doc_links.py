"""Links between the project's Markdown pages lead somewhere: the file exists and, for a
`#anchor`, the target page has a heading with that anchor (as GitHub derives it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = [REPO / "README.md", REPO / "conf" / "README.md", REPO / "benchmarks" / "README.md",
         *sorted((REPO / "docs").glob("*.md"))]


def without_code_blocks(text: str) -> str:
    return re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.S | re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for match in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", without_code_blocks(page.read_text()), re.M):
        base = anchor(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", without_code_blocks(page.read_text()))  # code spans are not links
    return re.findall(r"\]\(([^)\s]+)\)", text)


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z]+://", target) or target.startswith("mailto:"):
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(f"{target}: no heading with anchor #{fragment} in {file.name}")
    return broken


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_links_between_pages_resolve(page):
    assert not broken_links(page), "\n".join(broken_links(page))


def test_anchors_follow_githubs_rule():
    assert anchor("The `search` pipeline, seed by seed (`search_seeds.py`)") == \
        "the-search-pipeline-seed-by-seed-search_seedspy"
    assert anchor("Why the PS row does not beat SPOS + landmark (NATS-TSS, CIFAR-10)") == \
        "why-the-ps-row-does-not-beat-spos--landmark-nats-tss-cifar-10"


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "a.md").write_text("# Title\n\n## A section\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#a-section) [gone](a.md#no-section) [missing](c.md) "
                    "[web](https://example.org/x) `[not a link](d.md)`\n\n```\n[in code](e.md)\n```\n")
    assert broken_links(page) == ["a.md#no-section: no heading with anchor #no-section in a.md",
                                  f"c.md: no file {tmp_path / 'c.md'}"]
