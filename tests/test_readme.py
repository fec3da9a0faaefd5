"""The README's notebook table is the catalog's, and its commands are the ones that work."""

import re
from pathlib import Path

from kllab.harness import catalog

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_notebook_table_matches_catalog():
    block = README.split("<!-- notebooks:")[1].split("<!-- end notebooks -->")[0]
    rows = [ln for ln in block.splitlines() if ln.startswith("| ") and not ln.startswith("| id")]
    listed = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        listed[cells[0]] = cells
    expected = {e.id: e for e in catalog.entries() if e.notebook}
    assert set(listed) == set(expected)
    for key, e in expected.items():
        ident, link, title, knobs = listed[key]
        assert f"(notebooks/{e.notebook})" in link
        assert title.startswith(e.title)
        assert knobs == ", ".join(f"{k}={v}" for k, v in e.knobs.items())


def test_every_cli_subcommand_in_readme_exists():
    from kllab.harness.cli import main

    for sub in set(re.findall(r"kllab (list|new|run|strip|dashboard|sweep|plot)\b", README)):
        try:
            main([sub, "--help"])
        except SystemExit as e:
            assert e.code == 0, sub


def test_every_picture_in_the_readme_is_in_the_repository():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README)
    assert pictures, "the README shows the course site"
    root = Path(__file__).resolve().parents[1]
    assert [p for p in pictures if not (root / p).is_file()] == []
