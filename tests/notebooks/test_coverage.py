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
    "tests/notebooks/test_committed_form.py::test_no_scaffold_left_and_every_exercise_has_a_worked_solution",
    "tests/harness/test_catalog.py::test_catalog_knobs_match_the_notebook",
    "tests/notebooks/test_range_ends.py::test_every_knob_parameter_has_one_range_that_holds_its_default",
    "tests/notebooks/test_range_ends.py::test_runs_to_its_check_at_the_end_of_the_range",
]


def _collected(request) -> list[str]:
    return getattr(request.config, "kllab_collected", [])


def _whole(request, path: str) -> bool:
    """Whether this run collected all of ``path`` (it, or a folder above it, was given, or nothing was)."""
    config = request.config
    args = [a for a in config.args if a]
    target = (config.rootpath / path).resolve()
    for arg in args or config.getini("testpaths"):
        if "::" in arg:
            continue
        given = (config.invocation_params.dir / arg).resolve()
        if given == target or given in target.parents:
            return True
    return False


@pytest.mark.parametrize("group", GROUPS, ids=[g.split("::")[1] for g in GROUPS])
def test_every_notebook_is_in_the_group(group, request):
    if not _whole(request, group.split("::")[0]):
        pytest.skip(f"{group.split('::')[0]} was not collected whole in this run")
    # one id per notebook ("P08"), or one per range end ("P08-WIDTH=64"): the notebook is the part before "-"
    ids = {m.group(1).split("-")[0] for n in _collected(request)
           if (m := re.fullmatch(re.escape(group) + r"\[(.+)\]", n))}
    assert ids == {e.id for e in NOTEBOOK_ENTRIES}, f"left out of {group}: {sorted({e.id for e in NOTEBOOK_ENTRIES} - ids)}"


def test_every_notebook_runs_under_nbval(request):
    if not _whole(request, "notebooks"):
        pytest.skip("notebooks/ was not collected whole in this run")
    files = {n.split("::")[0].rsplit("/", 1)[-1] for n in _collected(request) if ".ipynb::" in n}
    missing = sorted(e.notebook for e in NOTEBOOK_ENTRIES if e.notebook not in files)
    assert not missing, f"nbval does not run: {missing}"
