"""Shared by the tests: the catalog's notebooks as a pytest parametrisation, and a catalog with a gap."""

import pytest

from kllab.harness import catalog

NOTEBOOK_ENTRIES = [e for e in catalog.entries() if e.notebook]


def notebook_params(fn):
    """Parametrise a test over every catalog notebook, with the catalog id as the test id."""
    return pytest.mark.parametrize("entry", NOTEBOOK_ENTRIES, ids=[e.id for e in NOTEBOOK_ENTRIES])(fn)


def catalog_without_a_notebook(tmp_path, monkeypatch) -> str:
    """Point the catalog (in this process and in the processes it starts) at a copy of ``catalog.toml``
    in which the last paper with a notebook has none, no ranges and no directions yet; return its id.

    Tests of what happens to a paper without a notebook use it (through the ``paper_without_notebook``
    fixture, which restores the real catalog after the test), so they keep testing once every paper
    of the real catalog has its notebook.
    """
    import re

    entry = [e for e in catalog.papers() if e.notebook][-1]
    text = catalog.CATALOG_PATH.read_text(encoding="utf-8")
    start = text.index(f'id = "{entry.id}"')
    end = text.index(f'notebook = "{entry.notebook}"', start)
    block = re.sub(r"^(ranges|directions) = .*\n", "", text[start:end], flags=re.M)
    copy = tmp_path / "catalog.toml"
    copy.write_text(text[:start] + block + 'notebook = ""' + text[end + len(f'notebook = "{entry.notebook}"'):],
                    encoding="utf-8")
    monkeypatch.setattr(catalog, "CATALOG_PATH", copy)
    monkeypatch.setenv("KLLAB_CATALOG", str(copy))
    catalog.reload()
    assert not catalog.find(entry.id).notebook and not catalog.find(entry.id).ranges
    return entry.id
