"""The README (a front door) and the docs site (docs/, mkdocs.yml, scripts/docs_hooks.py).

The site builds with ``--strict`` (every link, anchor and page in the navigation); the
README stays short and its links reach files and headings that exist; the generated
blocks are where the pages say, and show what their owners hold."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from actionrec.config import RESULT_NEUTRAL
from tests.helpers import REPO

README = REPO / "README.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchors(page: Path) -> set[str]:
    """The heading anchors of a Markdown page, as MkDocs' ``toc`` extension makes them."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {slugify(re.sub(r"[`*]", "", m[1]).strip(), "-")
            for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_the_readme_is_a_front_door():
    """At most 250 lines; the two set-up commands, the demo and the two pictures are in it."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    for needed in ("make pipeline", "make test", "make demo", "comparison-tiny.png",
                   "mlflow-compare.png", "## Adding an architecture"):
        assert needed in text, needed


def test_every_link_of_the_readme_reaches_a_file_and_heading():
    broken = []
    for target in LINK.findall(README.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://")):
            continue
        path, _, anchor = target.partition("#")
        file = REPO / path
        if not file.exists() or anchor and anchor not in _anchors(file):
            broken.append(target)
    assert not broken, f"README links to what is not there: {broken}"


def test_the_site_builds_strictly_with_the_generated_blocks(tmp_path):
    """``mkdocs build --strict`` (what ``make lint`` runs): then the pages hold what the
    owners say: every result-neutral setting, every architecture's design line, every
    layer of pyproject.toml's contract."""
    site = tmp_path / "site"
    proc = _build(REPO, site)
    assert proc.returncode == 0, proc.stderr
    pipeline = (site / "pipeline" / "index.html").read_text()
    assert all(f"<code>{key}</code>" in pipeline for key in RESULT_NEUTRAL)
    from actionrec.config import ARCHITECTURES
    from actionrec.models import get_architecture

    models = (site / "models" / "index.html").read_text()
    for name in ARCHITECTURES:
        design = get_architecture(name).design.replace("->", "-&gt;")
        assert design in models, name
    assert "actionrec.checkpoint" in (site / "reference" / "index.html").read_text()
    assert "generated:" not in pipeline + models  # every marker replaced


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    """``mkdocs build --strict`` of ``root``'s site into ``site`` (not ``--quiet``: it
    silences the warnings that ``--strict`` counts, and the build passes)."""
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--site-dir", str(site)], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_a_broken_link_or_a_page_left_out_of_the_navigation_fails_the_build(tmp_path):
    for name in ("docs", "scripts"):
        shutil.copytree(REPO / name, tmp_path / name)
    for name in ("mkdocs.yml", "params.yaml", "pyproject.toml"):
        shutil.copy(REPO / name, tmp_path / name)
    data = tmp_path / "docs" / "data.md"
    data.write_text(data.read_text() + "\nSee [the frames](models.md#no-such-heading).\n")
    (tmp_path / "docs" / "orphan.md").write_text("# Not in the navigation\n")
    proc = _build(tmp_path, tmp_path / "site")
    assert proc.returncode == 1
    assert "'models.md#no-such-heading'" in proc.stderr and "orphan.md" in proc.stderr


def test_a_marker_without_a_block_fails_the_build(tmp_path):
    """A typo in a marker is an error naming the page, not an empty table."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import docs_hooks
    finally:
        sys.path.remove(str(REPO / "scripts"))

    class Page:
        class file:
            src_path = "models.md"

    with pytest.raises(KeyError, match="models.md: no generated block named 'architecture'"):
        docs_hooks.on_page_markdown("<!-- generated: architecture -->\n", Page, None, None)
