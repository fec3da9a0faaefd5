"""One range per knob: every value the setup accepts runs the notebook to its end.

Each catalog notebook runs with FAST at both ends of every range in its catalog entry (and at every
choice: each direction), one knob at a time, the others at their defaults, through its check line and
its worked solutions, on the engine's kept kernels. The default value of each knob is already run by
``test_headless.test_fast``, so it is skipped here.
"""

import nbformat
import pytest

from kllab.harness import catalog, engine
from kllab.harness.nbtools import parameters
from kllab.harness.ranges import knob_ranges

ENTRIES = [e for e in catalog.entries() if e.notebook]


def _cases():
    out = []
    for e in ENTRIES:
        defaults = parameters(nbformat.read(e.path, as_version=4))
        for r in knob_ranges(e.id):
            for value in r.ends:
                if value != defaults.get(r.name):
                    out.append(pytest.param(e, r.name, value, id=f"{e.id}-{r.name}={value!r}"))
    return out


CASES = _cases()


@pytest.mark.parametrize("entry,name,value", CASES)
def test_runs_to_its_check_at_the_end_of_the_range(entry, name, value):
    r = engine.run_point(engine.task_for(entry.path, {"FAST": True, "INTERACTIVE": False, name: value}))
    assert r["status"] == "ok", f"{entry.id} with {name}={value!r}: {r['error']}"
    assert len(r["checks"]) == 1 and r["checks"][0].startswith(f"CHECK {entry.id} ok"), r["checks"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_every_knob_parameter_has_one_range_that_holds_its_default(entry):
    defaults = parameters(nbformat.read(entry.path, as_version=4))
    ranges = knob_ranges(entry.id)
    for knob, name in entry.knobs.items():
        assert name in ranges, f"{entry.id}: the {knob} knob {name} has no range in the catalog"
    for r in ranges:
        assert r.name in defaults, f"{entry.id}: the catalog ranges {r.name}, which is not a parameter"
        assert r.check(defaults[r.name]) == defaults[r.name], f"{entry.id}: {r.name}'s default is outside its range"


def test_ranges_cover_enough_runs():
    """A guard against a parametrisation that silently collects nothing."""
    assert len(CASES) >= 2 * len(ENTRIES)
