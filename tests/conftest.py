"""Shared fixtures: the catalog's notebooks, and a headless plotly renderer for in-process runs."""

import os

import pytest
import torch

from kllab import catalog

os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype")

NOTEBOOK_ENTRIES = [e for e in catalog.entries() if e.notebook]


def notebook_params(fn):
    return pytest.mark.parametrize("entry", NOTEBOOK_ENTRIES, ids=[e.id for e in NOTEBOOK_ENTRIES])(fn)


@pytest.fixture
def float64():
    """Run a test with float64 as torch's default dtype, restoring the previous default after it."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
