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
from kllab.harness.run import write_html


def _run(entry, params):
    return engine.run_point(engine.task_for(entry.path, params))


@notebook_params
def test_fast(entry, tmp_path):
    r = _run(entry, {"FAST": True, "INTERACTIVE": False})
    assert r["status"] == "ok", r["error"]
    assert len(r["checks"]) == 1 and r["checks"][0].startswith(f"CHECK {entry.id} ok"), r["checks"]
    assert len(r["records"]) >= 3, f"record the quantities the check asserts; got {sorted(r['records'])}"
    nb = nbformat.reads(r["notebook"], as_version=4)
    tags = [c.metadata.get("tags", []) for c in nb.cells]
    at = next(i for i, tg in enumerate(tags) if "parameters" in tg)
    assert "injected-parameters" in tags[at + 1], "a papermill output, with its injected cell"
    assert nb.metadata.papermill.parameters == {"FAST": True, "INTERACTIVE": False}
    page = tmp_path / "page.html"
    write_html(nb, page)
    assert "Plotly.newPlot" in page.read_text(encoding="utf-8"), "the HTML page draws the figures"


def _bad_value(default):
    if isinstance(default, bool):
        return "yes"
    if isinstance(default, str):
        return "sideways"
    if isinstance(default, (int, float)):
        return -1 if isinstance(default, int) else -1.0
    raise AssertionError(f"no bad value known for {default!r}")


def _setup_index(nb) -> int:
    """The index of the setup cell: the first code cell after the parameters (and injected) cells."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
            and not {"parameters", "injected-parameters"} & set(c.metadata.get("tags", []))]
    return code[0]


@notebook_params
def test_bad_values_stop_at_setup(entry):
    """Each knob parameter's bad value, and a bad type of FAST, stop in the setup cell with the named error."""
    defaults = parameters(nbformat.read(entry.path, as_version=4))
    cases = [(name, _bad_value(defaults[name])) for name in dict.fromkeys(entry.knobs.values())]
    cases.append(("FAST", "yes"))
    for name, value in cases:
        r = _run(entry, {"FAST": True, "INTERACTIVE": False, name: value})
        assert r["status"] == "failed", f"{name}={value!r} was accepted"
        assert f"ValueError: {name} must" in r["error"] and repr(value) in r["error"], r["error"]
        nb = nbformat.reads(r["notebook"], as_version=4)
        failed = next(i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
        assert failed == _setup_index(nb), f"{name}={value!r} failed in cell {failed}, not in the setup cell"
        assert r["checks"] == []
