"""Shared by the tests: the catalog's notebooks as a pytest parametrisation."""

import pytest

from kllab.harness import catalog

NOTEBOOK_ENTRIES = [e for e in catalog.entries() if e.notebook]


def notebook_params(fn):
    """Parametrise a test over every catalog notebook, with the catalog id as the test id."""
    return pytest.mark.parametrize("entry", NOTEBOOK_ENTRIES, ids=[e.id for e in NOTEBOOK_ENTRIES])(fn)


def paper_without_notebook() -> str:
    """The id of a catalog paper with no notebook yet; skips the calling test once every paper has one."""
    missing = [e.id for e in catalog.entries() if not e.notebook]
    if not missing:
        pytest.skip("every paper of the catalog has its notebook")
    return missing[-1]
