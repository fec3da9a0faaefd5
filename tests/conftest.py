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


# --------------------------------------------------------------------------------------------
# Collection: remember every item before -k/-m deselect some, for tests/notebooks/test_coverage.py


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    config.kllab_collected = [item.nodeid for item in items]


# --------------------------------------------------------------------------------------------
# pytest-xdist: nbval's cells of one notebook stay together (they share a kernel, in order); each
# parametrised test (one notebook's run, panel or dashboard) is its own unit, so the notebooks
# spread over the workers; other tests stay with their module (module-scoped fixtures).


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if ".ipynb::" in nodeid:
                return nodeid.split("::", 1)[0]
            if nodeid.endswith("]"):
                return nodeid
            return nodeid.rsplit("::", 1)[0]

    return NotebookScheduling(config, log)
