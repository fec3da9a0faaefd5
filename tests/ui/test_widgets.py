"""The knob panel itself (the notebooks' panels are driven in tests/notebooks/test_panels.py)."""

import pytest

from kllab.ui.widgets import KnobPanel, choice, log_slider, options_slider, slider, solution


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


def _shown(panel, i=0) -> dict:
    """The figure the page draws: the plotly MIME bundle in the panel's i-th Output widget."""
    (out,) = panel.outputs[i].outputs
    assert out["output_type"] == "display_data"
    return out["data"]["application/vnd.plotly.v1+json"]


def test_panel_redraws_what_compute_returns_and_reports_value_errors():
    panel = _demo_panel()
    assert _shown(panel)["layout"]["title"]["text"] == "forward 1.0"
    panel.set(t=2.0)
    shown = _shown(panel)
    assert shown["data"][0]["y"] == [2.0, 1.0] and shown["layout"]["title"]["text"] == "forward 2.0"
    assert shown["data"][0]["fill"] == "tozeroy" and list(panel.figures[0].data[0].y) == [2.0, 1.0]
    panel.set(k=2)
    assert len(_shown(panel)["layout"]["shapes"]) == 1
    panel.set(direction="reverse", k=4)
    shown = _shown(panel)
    assert shown["data"][0]["name"] == "reverse" and shown["data"][0]["y"] == [2.0, 4.0]
    assert "fill" not in shown["data"][0] and "shapes" not in shown["layout"]  # nothing stale from earlier views
    panel.set(t=9.5)
    assert panel.message == "t must be <= 9; got 9.5" and panel.errors == 0
    assert _shown(panel)["data"][0]["y"] == [2.0, 4.0]  # the last good view stays
    panel.set(t=3.0)
    assert panel.message == "" and _shown(panel)["data"][0]["y"] == [3.0, 4.0]


def test_the_panel_sends_no_plotly_widget_bundle():
    """Figures travel as plotly's MIME bundle in Output widgets, not as FigureWidgets (5 MB each)."""
    import ipywidgets as W

    panel = _demo_panel()
    assert all(isinstance(o, W.Output) for o in panel.outputs)
    assert all(type(w).__name__ != "FigureWidget" for w in panel.widget.children)


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
    assert list(panel.figures[0].data[0].y) == [1, 1] and _shown(panel)["data"][0]["y"] == [1, 1]
    panel.set(k=3)
    assert panel.message == "" and panel.updates == 2 and panel.errors == 1


def test_panel_bad_input():
    with pytest.raises(ValueError, match="knob must be one of"):
        _demo_panel().set(nope=1)
    with pytest.raises(ValueError, match=r"beta must be in \[0.001, 1.0\]"):
        log_slider(1e-3, 1.0, 5.0, "beta")
    with pytest.raises(ValueError, match="direction must be one of"):
        choice(["forward", "reverse"], "up", "direction")


def test_solution_is_a_closed_details_block():
    from kllab.ui.widgets import _Solution

    page = _Solution("Exercise 2", ["x = 1 < 2"])._repr_html_()
    assert page.startswith("<details") and " open" not in page.split(">")[0]
    assert "x = 1 &lt; 2" in page and "Exercise 2" in page
    with pytest.raises(ValueError, match="title must be a non-empty string"):
        solution("")
