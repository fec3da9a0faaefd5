"""Every catalog notebook, headless, on the engine's kept kernel, as few times as its checks need.

FAST once (the check line, the records, the HTML page); its defaults run once, under nbval
(``notebooks/`` is in ``testpaths``: nbval compares the committed check line, on the same kept
kernel); a bad value of every knob parameter and a bad type stop in the setup cell, each a
fraction of a second on the kept kernel.
"""

import nbformat
import pytest
from helpers import notebook_params

from kllab.harness import engine
from kllab.harness.nbtools import parameters
from kllab.harness.ranges import knob_ranges
from kllab.harness.run import write_html


def _run(entry, params):
    return engine.run_point(engine.task_for(entry.path, params))


@notebook_params
def test_fast(entry, tmp_path, executed):
    r = _run(entry, {"FAST": True, "INTERACTIVE": False})
    executed.add(entry, r)  # tests/notebooks/test_site.py builds the course site from these runs
    assert r["status"] == "ok", r["error"]
    assert len(r["checks"]) == 1 and r["checks"][0].startswith(f"CHECK {entry.id} ok"), r["checks"]
    assert len(r["records"]) >= 3, f"record the quantities the check asserts; got {sorted(r['records'])}"
    nb = nbformat.reads(r["notebook"], as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    at = next(i for i, tg in enumerate(tags) if "parameters" in tg)
    assert "injected-parameters" in tags[at + 1], "a papermill output, with its injected cell"
    assert nb.metadata.papermill.parameters == {"FAST": True, "INTERACTIVE": False}
    stray = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    assert not stray, f"{entry.id}: stray stderr in the executed notebook: {stray[:3]}"
    page = tmp_path / "page.html"
    write_html(nb, page)
    text = page.read_text(encoding="utf-8")
    assert "Plotly.newPlot" in text, "the HTML page draws the figures"
    assert "recorded " not in text, "the record cell (tagged remove-cell) stays out of the HTML page"
    assert "kl-solution" in text and "solution(" not in text, "solutions show their result, collapsed, not their code"


def _bad_value(name, default, ranges):
    """A value of the right type outside the accepted values: past the range's far end, or no choice."""
    if isinstance(default, str):
        return "sideways"
    r = ranges[name]
    return r.max * 10 if r.integer else float(r.max) * 10 + 1.0


def _setup_index(nb) -> int:
    """The index of the setup cell: the first code cell after the parameters (and injected) cells."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
            and not {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))]
    return code[0]


@notebook_params
def test_bad_values_stop_at_setup(entry):
    """Each knob parameter's value outside its catalog range stops in the setup cell with a ValueError, and
    a string given for a number (or for FAST) with a TypeError, each naming the parameter and the value."""
    defaults = parameters(nbformat.read(entry.path, as_version=4))
    ranges = knob_ranges(entry.id)
    cases = [(name, _bad_value(name, defaults[name], ranges), "ValueError") for name in dict.fromkeys(entry.knobs.values())]
    cases += [(name, "2", "TypeError") for name in dict.fromkeys(entry.knobs.values())
              if not isinstance(defaults[name], str)]
    cases.append(("FAST", "yes", "TypeError"))
    for name, value, error in cases:
        r = _run(entry, {"FAST": True, "INTERACTIVE": False, name: value})
        assert r["status"] == "failed", f"{name}={value!r} was accepted"
        assert f"{error}: {name} must" in r["error"] and repr(value) in r["error"], r["error"]
        nb = nbformat.reads(r["notebook"], as_version=4)
        failed = next(i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
        assert failed == _setup_index(nb), f"{name}={value!r} failed in cell {failed}, not in the setup cell"
        assert r["checks"] == []
