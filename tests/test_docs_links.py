"""The documentation points at things that exist: every relative link in README.md and
docs/*.md resolves, the files docs/testing.md names (the page a new user follows first)
are in the repository, and so is every repository file the pages name in code spans
(``hub/desk/desk.py``), so a file that moves takes its mentions along."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
NAMED_FILE = re.compile(r"`([\w.-]+/[\w./*-]+\.(?:py|md|yaml|toml|json|sh))`")
NAMED_PAGE = re.compile(r"(?<![\w/.-])([\w-]+(?:/[\w-]+)*\.md)\b")
TOP = ("config|detectors|edge_agent|firmware_bridge|hub|simulators|gridcall|tests|bench|"
       "scripts|deploy|docs")
REPO_FILE = re.compile(rf"`((?:{TOP})/[\w./*-]*\.(?:py|md|yaml|yml|sh|json|html|js|css|toml))`")
TO_WRITE = re.compile(r"^## How to add.*?(?=^## |\Z)", re.M | re.S)
"""The recipes name the files a newcomer writes (``hub/notify/channels/sms.py``)."""


def relative_links(page: Path) -> list[tuple[int, str]]:
    """(line, target) of each link that is neither a URL nor an anchor on the page."""
    text = page.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in LINK.finditer(text)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", m.group(1)) and not m.group(1).startswith("#")]


def exists(name: str, *bases: Path) -> bool:
    return any(any(base.glob(name)) if "*" in name else (base / name).exists()
               for base in bases)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    broken = [f"{page.relative_to(ROOT)}:{line}: {target}"
              for line, target in relative_links(page)
              if not (page.parent / target.split("#", 1)[0]).exists()]
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_the_links_are_found() -> None:
    """The check above sees README's links (it has a dozen into docs/)."""
    targets = {target for _, target in relative_links(ROOT / "README.md")}
    assert "docs/testing.md" in targets
    assert "docs/api.md#the-built-in-board" in targets


def test_the_files_docs_testing_names_exist() -> None:
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    missing = [name for name in NAMED_FILE.findall(text)
               if not exists(name, ROOT, ROOT / "gridcall")]
    missing += [name for name in NAMED_PAGE.findall(text)
                if not exists(name, ROOT, ROOT / "docs")]
    assert not missing, f"docs/testing.md names files that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_the_repository_files_a_page_names_exist(page: Path) -> None:
    text = TO_WRITE.sub("", page.read_text(encoding="utf-8"))
    missing = [f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m[1]}"
               for m in REPO_FILE.finditer(text) if not exists(m[1], ROOT)]
    assert not missing, "names files that do not exist:\n" + "\n".join(missing)


def test_file_names_in_code_spans_are_found() -> None:
    """The check above sees architecture.md's file names, and leaves out the recipes'."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = {m[1] for m in REPO_FILE.finditer(TO_WRITE.sub("", text))}
    assert "hub/desk/desk.py" in named
    assert "edge_agent/source_factory.py" in named
    assert not any(name.endswith("/sms.py") for name in named)
