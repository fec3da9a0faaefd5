"""No catalog notebook is left out of any group of notebook tests.

The groups are parametrised from the catalog, so a notebook could only drop out by a filter or a
typo; this test reads what pytest collected (before ``-k`` deselects anything; see
``tests/conftest.py``) and fails if a group that was collected misses a catalog notebook.
"""

import re

import pytest
from helpers import NOTEBOOK_ENTRIES

GROUPS = [
    "tests/notebooks/test_headless.py::test_fast",
    "tests/notebooks/test_headless.py::test_bad_values_stop_at_setup",
    "tests/notebooks/test_panels.py::test_panel",
    "tests/notebooks/test_dashboards.py::test_dashboard",
    "tests/notebooks/test_committed_form.py::test_contract_shape",
    "tests/notebooks/test_committed_form.py::test_no_scaffold_left",
    "tests/harness/test_catalog.py::test_catalog_knobs_match_the_notebook",
]


def _collected(request) -> list[str]:
    return getattr(request.config, "kllab_collected", [])


@pytest.mark.parametrize("group", GROUPS, ids=[g.split("::")[1] for g in GROUPS])
def test_every_notebook_is_in_the_group(group, request):
    ids = {m.group(1) for n in _collected(request) if (m := re.fullmatch(re.escape(group) + r"\[(.+)\]", n))}
    if not ids:
        pytest.skip(f"{group} was not collected in this run")
    assert ids == {e.id for e in NOTEBOOK_ENTRIES}, f"left out of {group}: {sorted({e.id for e in NOTEBOOK_ENTRIES} - ids)}"


def test_every_notebook_runs_under_nbval(request):
    files = {n.split("::")[0].rsplit("/", 1)[-1] for n in _collected(request) if ".ipynb::" in n}
    if not files:
        pytest.skip("nbval collected no notebook in this run")
    missing = sorted(e.notebook for e in NOTEBOOK_ENTRIES if e.notebook not in files)
    assert not missing, f"nbval does not run: {missing}"
