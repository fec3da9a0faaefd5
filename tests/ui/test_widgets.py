"""The knob panel itself (the notebooks' panels are driven in tests/notebooks/test_panels.py, and in the
browser by tests/notebooks/test_dashboards.py)."""

import threading
import time

import pytest

from kllab.ui.widgets import KnobPanel, choice, log_slider, options_slider, slider, solution


def _demo_panel(background=False):
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
                               "k": options_slider([1, 2, 4], 1, "k")}, title="demo",
                     background=background)


def _shown(panel, i=0) -> dict:
    """The figure the page draws: the JSON in the panel's i-th FigureView, which must say the knobs it shows."""
    view = panel.views[i]
    assert view.knobs == panel.shown
    assert panel.message or panel.shown == panel.values()  # after a notice, the last good view stays
    return view.figure


@pytest.mark.parametrize("background", [False, True], ids=["in-thread", "worker"])
def test_panel_redraws_what_compute_returns_and_reports_value_errors(background):
    panel = _demo_panel(background)
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
    """Figures travel as their JSON in small FigureViews (plotly.js comes from the page's extension),
    not as FigureWidgets (5 MB each)."""
    from kllab.ui.figure_view import FigureView

    panel = _demo_panel()
    assert all(isinstance(v, FigureView) for v in panel.views)
    assert all(type(w).__name__ != "FigureWidget" for w in panel.widget.children)
    assert len(FigureView._esm) < 10_000 and "Plotly.react" in FigureView._esm


def test_a_figure_view_sends_plotly_js_only_when_the_page_asks():
    from kllab.ui.figure_view import FigureView

    view, sent = FigureView({"data": [], "layout": {}}), []
    view.send = lambda content, buffers=None: sent.append(content)
    view._on_custom(view, {"type": "something else"}, [])
    assert sent == []
    view._on_custom(view, {"type": "need-plotly.js"}, [])
    assert sent[0]["type"] == "plotly.js" and "Plotly" in sent[0]["source"] and len(sent[0]["source"]) > 1e6


def test_the_page_gets_the_figures_computed_ahead_once_it_has_drawn():
    import plotly.graph_objects as go

    def compute(mode, w):
        return [go.Figure(go.Scatter(y=[w]), layout={"title": "w"}),
                go.Figure(go.Scatter(y=[1 if mode == "a" else 2]), layout={"title": "mode"})]

    panel = KnobPanel(compute, {"mode": choice(["a", "b"], "b", "mode"),
                                "w": slider(0.0, 1.0, 0.3, step=0.1, description="w")}, background=True)
    sent = [[], []]
    for view, box in zip(panel.views, sent):
        view.send = lambda content, buffers=None, box=box: box.append(content)
    assert panel.views[0].controls == [w.model_id for w in panel.knobs.values()]
    assert panel.views[0].state == [1, 0.3]  # a selection by its index (as the page syncs it), a number as read
    panel.wait(10, prefetched=True)
    assert sent == [[], []]  # nothing before the page has drawn
    panel.views[0]._on_custom(panel.views[0], {"type": "ready"}, [])  # the page drew the first view
    ahead = {tuple(m["state"]): m for m in sent[0]}
    assert set(ahead) == {(0, 0.3), (1, 0.4), (1, 0.2)} and sent[1] == []
    assert ahead[(1, 0.4)]["figure"]["data"][0]["y"] == [0.4] and ahead[(1, 0.4)]["knobs"] == {"mode": "b", "w": 0.4}
    assert ahead[(0, 0.3)]["figure"] is None and ahead[(0, 0.3)]["same_as"] == [1, 0.3]  # w's figure: unchanged
    panel.views[1]._on_custom(panel.views[1], {"type": "ready"}, [])
    ahead = {tuple(m["state"]): m for m in sent[1]}
    assert ahead[(0, 0.3)]["figure"]["data"][0]["y"] == [1] and ahead[(1, 0.4)]["figure"] is None
    sent[0].clear()
    panel.set(w=0.4)  # drawn from the cache; the values around 0.4 are computed ahead and sent as they come
    panel.wait(10, prefetched=True)
    assert panel.views[0].state == [1, 0.4]
    assert {tuple(m["state"]) for m in sent[0]} == {(1, 0.5), (0, 0.4)}  # (1, 0.3) was computed before


@pytest.mark.parametrize("background", [False, True], ids=["in-thread", "worker"])
def test_a_bug_in_compute_is_a_one_line_error_and_counted(capsys, background):
    import plotly.graph_objects as go

    def compute(k):
        if k == 2:
            return {}["missing"]
        return go.Figure(go.Scatter(x=[0, 1], y=[k, k]), layout={"title": "k"})

    panel = KnobPanel(compute, {"k": options_slider([1, 2, 3], 1, "k")}, background=background)
    panel.set(k=2)
    assert panel.errors == 1 and panel.message == "error: KeyError: 'missing'"
    assert "Traceback" in capsys.readouterr().err  # the traceback goes to stderr, not the page
    assert list(panel.figures[0].data[0].y) == [1, 1] and panel.views[0].figure["data"][0]["y"] == [1, 1]
    panel.set(k=3)
    assert panel.message == "" and panel.updates == 2 and panel.errors == 1


def _slow_panel(log, steps=40, step_s=0.005, prefetch=False, stale_steps=None):
    """A panel whose compute is a 'training loop' of ``steps`` Python-level steps; ``log`` records
    (value, steps done, thread) for every computation, finished or not; ``stale_steps`` (a list) records, for
    each computation, how many steps it did after the knob had left its value."""
    import plotly.graph_objects as go

    knob = slider(0, 100, 0, integer=True, description="w")

    def compute(w):
        done = stale = 0
        try:
            for _ in range(steps):
                time.sleep(step_s)
                done += 1
                stale += knob.value != w
            return go.Figure(go.Scatter(x=[0, 1], y=[w, w * w]), layout={"title": f"w={w}"})
        finally:
            log.append((w, done, threading.current_thread().name))
            if stale_steps is not None:
                stale_steps.append(stale)

    return KnobPanel(compute, {"w": knob}, background=True, prefetch=prefetch)


def test_latest_value_wins_and_stale_work_is_cancelled():
    log, stale_steps = [], []
    panel = _slow_panel(log, stale_steps=stale_steps)
    log.clear()
    stale_steps.clear()
    knob = panel.knobs["w"]
    for v in range(1, 31):  # 30 moves, 20 ms apart: faster than one computation (40 steps, about 0.2 s)
        knob.value = v
        time.sleep(0.02)
    t0 = time.monotonic()
    panel.wait(30)
    settle = time.monotonic() - t0
    assert panel.values() == panel.shown == {"w": 30}
    assert panel.views[0].figure["data"][0]["y"] == [30, 900] and panel.views[0].knobs == {"w": 30}
    finished = [w for w, done, _ in log if done == 40]
    assert finished == [30], f"only the last value is computed to the end; finished: {finished}"
    # every computation but the last was cancelled; a job can also be cancelled before it reaches compute (a
    # newer move arrived while its thread started), so it is counted without a log entry
    assert len(log) - 1 <= panel.cancelled <= 29
    # no backlog: no stale computation ran to its end (above), and each stopped at most one step after the move
    # that made it stale (the cancel lands when the step's sleep returns; a second step can start while the move
    # is being handled); the settle time is printed, not asserted (a loaded machine varies)
    assert max(stale_steps) <= 2, f"a stale computation stops between steps: steps done while stale {stale_steps}"
    print(f"settled {settle:.2f} s after the last move")
    assert panel.updates == 1 and panel.message == "" and "data-busy='0'" in panel.status.value
    assert threading.main_thread().name not in {name for *_, name in log}, "the kernel's thread stays free"


def test_a_stale_result_is_never_drawn():
    log = []
    panel = _slow_panel(log, steps=10, step_s=0.02)
    serials = []
    panel.views[0].observe(lambda ch: serials.append(panel.views[0].figure["layout"]["title"]["text"]),
                           names="serial")
    for v in (5, 6, 7):
        panel.knobs["w"].value = v
        time.sleep(0.03)
    panel.wait(30)
    assert serials == ["w=7"], f"drawn: {serials}"


def test_the_values_one_key_press_away_are_ready_before_the_press():
    import plotly.graph_objects as go

    calls = []

    def compute(mode, w, beta):
        calls.append((mode, w, beta))
        return go.Figure(go.Scatter(x=[0, 1], y=[w, beta]), layout={"title": mode})

    panel = KnobPanel(compute, {"mode": choice(["a", "b", "c"], "a", "mode"),
                                "w": slider(0, 10, 10, step=1, integer=True, description="w"),
                                "beta": log_slider(0.01, 1.0, 0.1, "beta", ratio=10)}, background=True)
    panel.wait(10, prefetched=True)
    # the other two modes, w one step down (10 is the top), beta a factor 10 either way
    assert sorted((m, w, round(b, 12)) for m, w, b in calls[1:]) == [("a", 9, 0.1), ("a", 10, 0.01), ("a", 10, 1.0),
                                 ("b", 10, 0.1), ("c", 10, 0.1)]
    panel.knobs["w"].value = 9  # a neighbour: drawn from the cache, no computation
    panel.wait(10)
    assert panel.hits == 1 and panel.views[0].figure["data"][0]["y"] == [9, 0.1]
    assert panel.views[0].knobs == {"mode": "a", "w": 9, "beta": 0.1}
    panel.wait(10, prefetched=True)
    assert ("a", 8, 0.1) in calls and calls.count(("a", 9, 0.1)) == 1
    panel.set(w=3)  # a jump: computed
    assert panel.hits == 1 and calls.count(("a", 3, 0.1)) == 1 and panel.shown["w"] == 3


def test_compute_s_is_what_the_figures_on_show_took_even_from_the_cache():
    import plotly.graph_objects as go

    def compute(w):
        time.sleep(0.3 if w == 3 else 0.0)
        return go.Figure(go.Scatter(y=[w]))

    panel = KnobPanel(compute, {"w": slider(0, 4, 2, integer=True)}, background=True)
    panel.wait(10, prefetched=True)  # w = 3, then w = 1 (the last computation, a quick one)
    panel.set(w=3)
    assert panel.hits == 1 and panel.compute_s >= 0.3
    assert f"data-compute-ms='{1000 * panel.compute_s:.1f}'" in panel.status.value  # the page reads the same
    panel.set(w=2)
    assert panel.hits == 2 and panel.compute_s < 0.3


def test_the_cache_keeps_cache_size_entries():
    import plotly.graph_objects as go

    panel = KnobPanel(lambda w: go.Figure(go.Scatter(y=[w])), {"w": slider(0, 100, 0, integer=True)},
                      background=True, prefetch=False, cache_size=3)
    for v in range(1, 10):
        panel.set(w=v)
    assert len(panel._cache) == 3 and panel.computed == 9


def test_stale_passes_through_a_notebooks_except_exception():
    from kllab.ui.widgets import Stale

    assert not issubclass(Stale, Exception) and issubclass(Stale, BaseException)


def test_wait_names_the_values_when_it_times_out():
    panel = _slow_panel([], steps=50, step_s=0.02)
    panel.knobs["w"].value = 3
    with pytest.raises(TimeoutError, match=r"values \{'w': 3\}"):
        panel.wait(0.05)
    panel.wait(30)


def test_panel_bad_input():
    with pytest.raises(ValueError, match="cache_size must be an integer >= 1; got 0"):
        KnobPanel(lambda k: None, {"k": options_slider([1, 2], 1, "k")}, cache_size=0)
    with pytest.raises(TypeError, match="prefetch must be True or False; got 'no'"):
        KnobPanel(lambda k: None, {"k": options_slider([1, 2], 1, "k")}, prefetch="no")
    with pytest.raises(TypeError, match="background must be True, False or None"):
        KnobPanel(lambda k: None, {"k": options_slider([1, 2], 1, "k")}, background="yes")
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


def test_a_slider_position_in_other_last_bits_is_read_as_the_position_and_drawn_from_the_cache():
    import plotly.graph_objects as go

    calls = []

    def compute(x):
        calls.append(x)
        return go.Figure(go.Scatter(y=[x]))

    panel = KnobPanel(compute, {"x": slider(0.0, 1.0, 0.3, step=0.1)}, background=True)
    panel.wait(10, prefetched=True)
    assert 0.4 in calls and 0.2 in calls
    n = len(calls)
    panel.knobs["x"].value = 0.4000000000000001  # the page's arithmetic for the position 0.4
    panel.wait(10)
    assert panel.hits == 1 and panel.message == ""
    assert panel.shown == panel.values() == {"x": 0.4} and panel.views[0].knobs == panel.shown
    panel.knobs["x"].value = 0.30000000000000004  # and back: the first position, in other last bits
    panel.wait(10, prefetched=True)
    assert panel.hits == 2 and panel.shown == {"x": 0.3} and 0.30000000000000004 not in calls
    assert all(c in (0.5, 0.2, 0.4, 0.3) for c in calls[n:]), calls[n:]  # only prefetches, at grid positions


def test_the_prefetch_starts_one_more_step_the_way_the_last_knob_went():
    import plotly.graph_objects as go

    panel = KnobPanel(lambda a, b: go.Figure(go.Scatter(y=[a, b])),
                      {"a": slider(0, 10, 5, integer=True, description="a"),
                       "b": slider(0, 10, 5, integer=True, description="b")}, background=True, prefetch=False)
    panel.set(b=4)
    assert panel._around(panel.values())[:2] == [{"a": 5, "b": 3}, {"a": 5, "b": 5}]
    panel.set(a=6)
    assert panel._around(panel.values())[:2] == [{"a": 7, "b": 4}, {"a": 5, "b": 4}]


def _training_panel(log, chunks=4, chunk_s=0.1, gate=None):
    """A compute that trains: yields its closed-form figure at once, then the trained one after each chunk
    (the training starts once ``gate`` is set, if one is given)."""
    import plotly.graph_objects as go

    def compute(w):
        closed = go.Figure(go.Scatter(x=[0, 1], y=[w, -w]), layout={"title": f"closed w={w}"})
        yield [closed, None]
        if gate is not None:
            gate.wait(10)
        for k in range(1, chunks + 1):
            time.sleep(chunk_s)
            log.append((w, k))
            yield [closed, go.Figure(go.Bar(y=[w * k]), layout={"title": f"trained w={w} after {k}/{chunks}"})]

    return KnobPanel(compute, {"w": slider(0, 100, 1, integer=True, description="w")}, background=True,
                     prefetch=False)


def test_a_training_compute_draws_as_it_goes_and_its_last_yield_is_the_result():
    log, gate = [], threading.Event()
    panel = _training_panel(log, gate=gate)
    gate.set()
    assert [f.layout.title.text for f in panel.figures] == ["closed w=1", "trained w=1 after 4/4"]  # headless: the last
    gate.clear()
    log.clear()
    drawn = []
    panel.views[1].observe(lambda ch: drawn.append(panel.views[1].figure["layout"]["title"]["text"]), names="serial")
    panel.knobs["w"].value = 2
    t0 = time.monotonic()
    while panel.views[0].knobs != {"w": 2} and time.monotonic() - t0 < 10:
        time.sleep(0.005)
    # the closed-form figure is drawn before the training starts; the trained one still shows w=1, and busy
    assert panel.views[0].figure["layout"]["title"]["text"] == "closed w=2" and not log
    assert panel.views[1].knobs == {"w": 1} and "data-busy='1'" in panel.status.value
    gate.set()
    panel.wait(10)
    assert drawn == [f"trained w=2 after {k}/4" for k in range(1, 5)]
    assert panel.shown == {"w": 2} and panel.views[1].knobs == {"w": 2} and panel.partials == 5
    assert [f.layout.title.text for f in panel.figures] == ["closed w=2", "trained w=2 after 4/4"]
    assert panel.updates == 1 and "data-busy='0'" in panel.status.value


def test_a_training_compute_stops_at_its_next_yield_when_a_newer_move_comes():
    log = []
    panel = _training_panel(log, chunks=10, chunk_s=0.05)
    log.clear()
    panel.knobs["w"].value = 2
    time.sleep(0.12)
    panel.knobs["w"].value = 3
    panel.wait(10)
    assert max(k for w, k in log if w == 2) <= 4, log    # w=2 stopped, not trained to the end
    assert [k for w, k in log if w == 3] == list(range(1, 11))
    assert panel.views[1].figure["layout"]["title"]["text"] == "trained w=3 after 10/10"
    assert panel.cancelled == 1


def test_a_generator_compute_must_end_with_every_figure():
    import plotly.graph_objects as go

    def compute(w):
        yield [go.Figure(), None]

    with pytest.raises(RuntimeError, match=r"last yield must hold every figure; got \[1\] missing"):
        KnobPanel(compute, {"w": slider(0, 10, 1, integer=True)})


def test_the_dashboard_page_loads_plotly_with_the_panels_own_loader_figure():
    """The Voila page template renders the same hidden empty figure as ``plotly_loader`` at page start (so that
    plotly.js loads while the first cells run), and the browser tests recognise it by the same meta."""
    import json
    import re
    from pathlib import Path

    import kllab.harness
    from kllab.ui.figure_view import LOADER_META, plotly_loader

    page = (Path(kllab.harness.__file__).parent / "jupyter/voila/templates/kllab/index.html.j2").read_text()
    found = re.search(r'class="kl-plotly-loader".*?<script type="application/vnd.voila.cell-output\+json">(.*?)</script>',
                      page, re.S)
    assert found, "the page template has no plotly loader"
    assert json.loads(found.group(1)) == plotly_loader().outputs[0]
    assert LOADER_META in (Path(__file__).parents[1] / "browser.py").read_text()
