"""The knob panels, driven in-process: each notebook's code runs in a real IPython shell, then
every knob is moved as a reader would move it and the figures must change."""

import json
import math

import ipywidgets as W
import nbformat
import pytest
from helpers import notebook_params
from IPython.core.interactiveshell import InteractiveShell

from kllab.harness.nbtools import is_check_cell, parameters_cell
from kllab.ui.widgets import KnobPanel, choice, log_slider, options_slider, slider


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


def other_value(w):
    """A different value a reader could pick: another option, or halfway to the far end of a slider."""
    if isinstance(w, (W.ToggleButtons, W.Dropdown, W.SelectionSlider, W.RadioButtons)):
        opts = [o[1] if isinstance(o, tuple) else o for o in w.options]
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
        opts = [o[1] if isinstance(o, tuple) else o for o in w.options]
        return [opts[0], opts[-1]]
    if isinstance(w, W.FloatLogSlider):
        return [w.base ** w.min, w.base ** w.max]
    return [w.min, w.max]


def snapshot(panel):
    """The figures' data, without the per-trace uids that plotly regenerates when traces are replaced."""
    out = []
    for f in panel.figures:
        data = [{k: v for k, v in t.items() if k != "uid"} for t in f.to_plotly_json()["data"]]
        out.append(json.dumps(data, sort_keys=True, default=str))
    return out


@notebook_params
def test_every_knob_changes_a_figure(entry):
    ns = run_until_check(entry.path, {"FAST": True, "INTERACTIVE": True})
    panel = ns.get("panel")
    assert isinstance(panel, KnobPanel), "the Explore cell must build `panel = KnobPanel(...)`"
    for fig in panel.figures:
        assert len(fig.data) >= 1 and fig.layout.title.text, "every figure has data and a title"
    for name, w in panel.knobs.items():
        before = snapshot(panel)
        start = w.value
        panel.set(**{name: other_value(w)})
        assert panel.message == "", panel.message
        after = snapshot(panel)
        assert before != after, f"{entry.id}: moving {name} changed no figure"
        panel.set(**{name: start})
        assert snapshot(panel) == before, f"{entry.id}: moving {name} back did not restore the view"


@notebook_params
def test_edge_values_redraw_or_say_why(entry):
    ns = run_until_check(entry.path, {"FAST": True, "INTERACTIVE": True})
    panel = ns["panel"]
    for name, w in panel.knobs.items():
        start = w.value
        for v in edges(w):
            panel.set(**{name: v})
            assert panel.errors == 0, f"{entry.id}: {name}={v!r} raised in the knob callback: {panel.message}"
        panel.set(**{name: start})


def _demo_panel():
    import plotly.graph_objects as go

    def compute(direction, t, width, k):
        if t > 9:
            raise ValueError(f"t must be <= 9; got {t}")
        fig = go.Figure(go.Scatter(x=[0, 1], y=[t, width * k], name=direction,
                                   fill="tozeroy" if direction == "forward" else None))
        fig.update_layout(title=f"{direction} {t}")
        if k == 2:
            fig.add_hline(y=1.0)
        return fig

    return KnobPanel(compute, {"direction": choice(["forward", "reverse"], "forward", "direction"),
                               "t": slider(0.0, 10.0, 1.0, description="t"),
                               "width": log_slider(0.1, 10.0, 1.0, "width"),
                               "k": options_slider([1, 2, 4], 1, "k")}, title="demo")


def test_panel_updates_in_place_and_reports_value_errors():
    panel = _demo_panel()
    fw = panel.figures[0]
    panel.set(t=2.0)
    assert panel.figures[0] is fw and list(fw.data[0].y) == [2.0, 1.0]
    assert fw.layout.title.text == "forward 2.0"
    assert fw.data[0].fill == "tozeroy"
    panel.set(k=2)
    assert len(fw.layout.shapes) == 1
    panel.set(direction="reverse", k=4)
    assert fw.data[0].name == "reverse" and list(fw.data[0].y) == [2.0, 4.0]
    assert fw.data[0].fill is None and len(fw.layout.shapes) == 0  # nothing stale from earlier views
    panel.set(t=9.5)
    assert panel.message == "t must be <= 9; got 9.5" and panel.errors == 0
    assert list(fw.data[0].y) == [2.0, 4.0]  # the last good view stays
    panel.set(t=3.0)
    assert panel.message == ""


def test_a_bug_in_compute_is_a_one_line_error_and_counted(capsys):
    import plotly.graph_objects as go

    def compute(k):
        if k == 2:
            return {}["missing"]
        return go.Figure(go.Scatter(x=[0, 1], y=[k, k]), layout={"title": "k"})

    panel = KnobPanel(compute, {"k": options_slider([1, 2, 3], 1, "k")})
    panel.set(k=2)
    assert panel.errors == 1 and panel.message == "error: KeyError: 'missing'"
    assert "Traceback" in capsys.readouterr().err  # the traceback goes to stderr, not the page
    assert list(panel.figures[0].data[0].y) == [1, 1]
    panel.set(k=3)
    assert panel.message == "" and panel.updates == 2 and panel.errors == 1


def test_panel_bad_input():
    with pytest.raises(ValueError, match="knob must be one of"):
        _demo_panel().set(nope=1)
    with pytest.raises(ValueError, match=r"beta must be in \[0.001, 1.0\]"):
        log_slider(1e-3, 1.0, 5.0, "beta")
    with pytest.raises(ValueError, match="direction must be one of"):
        choice(["forward", "reverse"], "up", "direction")
