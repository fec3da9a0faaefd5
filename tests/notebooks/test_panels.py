"""The knob panels, driven in-process: each notebook's code runs in a real IPython shell (FAST), then
every knob is moved as a reader would move it: to another value (a figure must change, and moving
back must restore the view) and to both ends of its range (redraw, or a one-line notice for a
ValueError; any other exception fails). The panel's knobs are the catalog's."""

import json
import math

import ipywidgets as W
import nbformat
from helpers import notebook_params
from IPython.core.interactiveshell import InteractiveShell

from kllab.harness.nbtools import is_check_cell, parameters_cell
from kllab.harness.ranges import knob_ranges
from kllab.ui.widgets import KnobPanel


def run_until_check(path, overrides):
    """Run the notebook's code cells up to its check cell; return the namespace."""
    shell = InteractiveShell.instance()
    shell.reset(new_session=True)
    nb = nbformat.read(path, as_version=4)
    params = parameters_cell(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if is_check_cell(cell):
            break
        shell.run_cell(cell.source).raise_error()
        if cell is params:
            shell.run_cell("\n".join(f"{k} = {v!r}" for k, v in overrides.items())).raise_error()
    return shell.user_ns


def _options(w):
    return [o[1] if isinstance(o, tuple) else o for o in w.options]


def other_value(w):
    """A different value a reader could pick: another option, or halfway to the far end of a slider."""
    if isinstance(w, (W.ToggleButtons, W.Dropdown, W.SelectionSlider, W.RadioButtons)):
        opts = _options(w)
        return opts[-1] if w.value == opts[0] else opts[0]
    if isinstance(w, W.FloatLogSlider):
        hi, lo = w.base ** w.max, w.base ** w.min
        far = lo if math.isclose(w.value, hi) else hi
        return math.sqrt(w.value * far)
    if isinstance(w, (W.FloatSlider, W.IntSlider)):
        far = w.min if w.value == w.max else w.max
        mid = (w.value + far) / 2
        return round(mid) if isinstance(w, W.IntSlider) else mid
    raise AssertionError(f"unknown knob widget {type(w).__name__}")


def edges(w):
    if isinstance(w, (W.ToggleButtons, W.Dropdown, W.SelectionSlider, W.RadioButtons)):
        opts = _options(w)
        return [opts[0], opts[-1]]
    if isinstance(w, W.FloatLogSlider):
        return [w.base ** w.min, w.base ** w.max]
    return [w.min, w.max]


def snapshot(panel):
    """What the page draws: the traces in each of the panel's FigureViews (which say the knobs they show)."""
    assert all(v.knobs == panel.shown for v in panel.views)
    return [json.dumps(v.figure["data"], sort_keys=True, default=str) for v in panel.views]


@notebook_params
def test_panel(entry):
    ns = run_until_check(entry.path, {"FAST": True, "INTERACTIVE": True})
    panel = ns.get("panel")
    assert isinstance(panel, KnobPanel), "the Explore cell must build `panel = KnobPanel(...)`"
    for fig in panel.figures:
        assert len(fig.data) >= 1 and fig.layout.title.text, "every figure has data and a title"
    # The catalog's knobs are the panel's, named after their parameters; DIRECTION offers the catalog's values.
    for knob, name in entry.knobs.items():
        assert name.lower() in panel.knobs, f"{entry.id}: the {knob} knob {name} has no control in the panel"
    if "direction" in entry.knobs:
        assert _options(panel.knobs[entry.knobs["direction"].lower()]) == entry.directions, \
            f"{entry.id}: the direction toggle offers other values than the catalog's directions"
    # Each control of a parameter with a catalog range offers that range, from end to end, and nothing outside it.
    for r in knob_ranges(entry.id):
        w = panel.knobs.get(r.name.lower())
        if w is None:
            continue
        ends = edges(w)
        if r.categorical:
            assert _options(w) == list(r.choices), f"{entry.id}: {r.name} offers {_options(w)}, the catalog {r.choices}"
        else:
            assert math.isclose(ends[0], r.min, rel_tol=1e-9, abs_tol=1e-12) and \
                math.isclose(ends[1], r.max, rel_tol=1e-9, abs_tol=1e-12), \
                f"{entry.id}: the {r.name} control spans {ends}, its catalog range [{r.min}, {r.max}]"
            if isinstance(w, W.SelectionSlider):
                assert all(r.min <= v <= r.max for v in _options(w)), f"{entry.id}: {r.name} offers {_options(w)}"
    for name, w in panel.knobs.items():
        before, start = snapshot(panel), w.value
        panel.set(**{name: other_value(w)})
        assert panel.message == "" and panel.errors == 0, f"{entry.id}: {name}: {panel.message}"
        assert snapshot(panel) != before, f"{entry.id}: moving {name} changed no figure"
        panel.set(**{name: start})
        assert snapshot(panel) == before, f"{entry.id}: moving {name} back did not restore the view"
        for v in edges(w):
            panel.set(**{name: v})
            assert panel.errors == 0, f"{entry.id}: {name}={v!r} raised in the knob callback: {panel.message}"
        panel.set(**{name: start})
        assert snapshot(panel) == before
