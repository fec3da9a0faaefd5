"""Shared fixtures: a headless plotly renderer for in-process runs, and float64 on demand."""

import os

import pytest
import torch

os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype")


@pytest.fixture
def float64():
    """Run a test with float64 as torch's default dtype, restoring the previous default after it."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def paper_without_notebook(tmp_path, monkeypatch):
    """The id of a paper with no notebook, in a copy of the catalog that this test (and the processes it
    starts) reads instead of the real one; see ``helpers.catalog_without_a_notebook``."""
    from helpers import catalog_without_a_notebook
    from kllab.harness import catalog

    yield catalog_without_a_notebook(tmp_path, monkeypatch)
    monkeypatch.undo()
    catalog.reload()


@pytest.fixture
def one_thread():
    """Tiny tensors in tight loops: one intra-op thread avoids OpenMP hand-off costs (much slower on a
    shared CPU); the previous thread count is restored after the test."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# --------------------------------------------------------------------------------------------
# Collection: remember every item before -k/-m deselect some, for tests/notebooks/test_coverage.py


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    config.kllab_collected = [item.nodeid for item in items]
