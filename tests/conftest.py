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


class Executed:
    """The notebooks this test session executed headless (test_fast), kept as ``kllab run`` keeps them:
    one executed ``.ipynb`` per notebook and a ``results.json``, so the course site builds from them."""

    def __init__(self, folder):
        self.folder, self.results = folder, {}

    def add(self, entry, result: dict) -> None:
        import time

        if result.get("notebook") is not None:
            (self.folder / entry.notebook).write_text(result["notebook"], encoding="utf-8")
        checks = result.get("checks") or []
        self.results[entry.id] = {
            "ok": result["status"] == "ok" and any(c.startswith("CHECK") and " ok" in c for c in checks),
            "check": checks[0] if checks else "", "error": result.get("error", ""),
            "seconds": round(result.get("seconds", 0.0), 1), "file": entry.notebook,
            "finished": time.strftime("%Y-%m-%d %H:%M"), "parameters": {"FAST": "True", "INTERACTIVE": "False"}}

    def write_results(self):
        import json

        path = self.folder / "results.json"
        path.write_text(json.dumps({"notebooks": self.results}, indent=1), encoding="utf-8")
        return path


@pytest.fixture(scope="session")
def executed(tmp_path_factory):
    """This session's headless runs (one process: the tests that use it share a group of kllab_groups, pyproject.toml)."""
    return Executed(tmp_path_factory.mktemp("executed"))


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
