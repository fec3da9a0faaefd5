"""Shared fixtures: the catalog's notebooks, and a headless plotly renderer for in-process runs."""

import os

import pytest

from kllab import catalog

os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype")

NOTEBOOK_ENTRIES = [e for e in catalog.entries() if e.notebook]


def notebook_params(fn):
    return pytest.mark.parametrize("entry", NOTEBOOK_ENTRIES, ids=[e.id for e in NOTEBOOK_ENTRIES])(fn)
