"""Shared by the tests: the catalog's notebooks as a pytest parametrisation."""

import pytest

from kllab.harness import catalog

NOTEBOOK_ENTRIES = [e for e in catalog.entries() if e.notebook]


def notebook_params(fn):
    """Parametrise a test over every catalog notebook, with the catalog id as the test id."""
    return pytest.mark.parametrize("entry", NOTEBOOK_ENTRIES, ids=[e.id for e in NOTEBOOK_ENTRIES])(fn)
