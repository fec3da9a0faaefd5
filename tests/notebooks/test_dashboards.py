"""Every notebook as a Voila dashboard, in a real Voila server and a real headless Chromium.

Each notebook's page is loaded once and everything is checked on it: no error output, no stderr,
no record lines; every plotly figure draws data and has a title; every knob of the panel redraws
a figure (an exception in a knob callback shows as a one-line error in the page, which fails the
test). Two representative notebooks also take every slider to both ends of its range (every notebook's
knobs go to both ends in process, in test_panels.py). Three take a restless student's 50 random moves
(the soak test). Closing a page shuts its kernel down, also while it computes. A screenshot of each
page goes to build/screenshots/.

The dashboards are served with ``FAST=True`` injected (papermill's ``prepare_only``: the same
notebook with an injected-parameters cell, as ``kllab run --fast`` runs it), so that their pages
and their training knobs cost seconds; the defaults run under nbval, and
``tests/benchmark_dashboard.py`` times the dashboards at their defaults. The gallery and the
served-files checks use the real ``notebooks/`` folder.
"""

import json
import os
import time
import urllib.error
import urllib.request
from contextlib import contextmanager

import nbformat
import pytest
from browser import (BUILD, JS_LOCAL_DRAWS, JS_MARK, KERNEL_PANEL_CHECK, browser, check_no_errors, close_page, errors,
                     exercise_dashboard, figures, kernel_connection, kernel_eval, kernel_id, open_dashboard, panel,
                     panel_controls, random_moves, screenshot, settle_after, voila_server, wait_for_update, wait_until,
                     warm_pool, widgets_agree_with_figures)
from helpers import notebook_params
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from kllab.harness import catalog
from kllab.harness.dashboard import plotly_bundle_version
from kllab.harness.warm import THREAD_VARIABLES

SHOTS = BUILD / "screenshots"
STRESS = {"P37", "primer"}  # a closed-form panel and a training one: their sliders visit both ends in the browser
SOAK = ["P37", "primer", "P14"]  # closed forms, a training panel, Sinkhorn
NO_POOL = ["--WarmKernelManager.warm_pool_size=0"]  # for a one-page server: a warm kernel would only cost CPU


@pytest.fixture(scope="session")
def server():
    """Voila on the repository's notebooks/ folder."""
    with voila_server() as (url, proc):
        yield url


@pytest.fixture(scope="session")
def fast_server(tmp_path_factory):
    """Voila on a copy of the catalog notebooks with FAST=True injected."""
    import papermill

    root = tmp_path_factory.mktemp("fast-notebooks")
    for e in catalog.entries():
        if e.notebook:
            papermill.execute_notebook(str(e.path), str(root / e.notebook), parameters={"FAST": True},
                                       prepare_only=True, kernel_name="python3", progress_bar=False)
    with voila_server(root=root) as (url, proc):
        yield url


@pytest.fixture(scope="session")
def chromium():
    with browser() as b:
        yield b


@pytest.fixture
def page(chromium):
    ctx = chromium.new_context(viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    yield pg
    if not pg.is_closed():
        close_page(pg)  # as a reader closing the tab: Voila shuts the page's kernel down
    ctx.close()


def _assert_figures_drawn(page):
    figs = figures(page)
    assert figs, "no plotly figure on the page"
    for i, f in enumerate(figs):
        assert f["title"], f"figure {i} has no title"
        assert f["traces"] and any(t["n"] > 0 for t in f["traces"]), f"figure {i} ({f['title']!r}) draws no data"


def test_gallery(server, page):
    page.goto(f"{server}/voila/render/index.ipynb", timeout=120_000)
    page.wait_for_selector(".kl-card", timeout=120_000)
    cards = page.locator(".kl-card")
    assert cards.count() == len(catalog.entries())
    assert page.locator(".kl-card.todo").count() == sum(1 for e in catalog.entries() if not e.notebook)
    assert not errors(page)["error"]
    screenshot(page, SHOTS / "index.png")
    # A card's link opens that paper's dashboard.
    page.locator('.kl-card[data-id="P37"] h4 a').click()
    page.wait_for_url("**/voila/render/p37-rapo.ipynb", timeout=30_000)


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def test_missing_notebook_is_a_404(server):
    assert _status(f"{server}/voila/render/no-such-notebook.ipynb") == 404


def test_nothing_outside_notebooks_is_served(server):
    """Voila's root is notebooks/: the repository's other folders and files cannot be reached."""
    assert _status(f"{server}/voila/render/p37-rapo.ipynb") == 200  # the control: notebooks are served
    # These exist under the repository's root, so any root above notebooks/ would serve them.
    for path in ("voila/render/notebooks/p37-rapo.ipynb", "voila/tree/kllab", "voila/tree/notebooks",
                 "voila/files/README.md", "voila/files/../README.md", "voila/files/%2E%2E/pyproject.toml"):
        assert _status(f"{server}/{path}") in (403, 404), path


@notebook_params
def test_dashboard(entry, fast_server, page):
    load = open_dashboard(page, f"{fast_server}/voila/render/{entry.notebook}")
    check_no_errors(page, "after loading")
    _assert_figures_drawn(page)
    screenshot(page, SHOTS / f"{entry.path.stem}.png")
    timings = exercise_dashboard(page, len(entry.knobs), ends=entry.id in STRESS)
    print(f"{entry.id}: first figure {load:.2f} s; redraw {', '.join(f'{k} {v:.2f} s' for k, v in timings.items())}")


KERNEL_MEMORY = "import json, psutil; print(json.dumps(psutil.Process().memory_info().rss / 2 ** 20))"


@pytest.mark.parametrize("key", SOAK)
def test_a_restless_student(key, fast_server, page):
    """50 random knob moves at a student's pace, then one last move: the panel settles on the last values
    (no backlog of the moves before it), every figure shows the values its controls show and equals what the
    notebook's function gives at them, no error shows, and the kernel is alive and did not grow."""
    import random

    entry = catalog.find(key)
    open_dashboard(page, f"{fast_server}/voila/render/{entry.notebook}")
    client = kernel_connection(page)
    try:
        kernel_eval(client, "panel.wait(60, prefetched=True); print(1)")
        # once the values one key press away are computed, a move there (to a value the page never showed) is drawn
        # by the page at once, from the figures the kernel sent ahead, and the page then shows the controls' values
        time.sleep(0.5)
        local = sum(page.evaluate(JS_LOCAL_DRAWS))
        before_updates = panel(page)["updates"]
        toggles, sliders = panel_controls(page)
        (toggles.nth(0).locator("button:not(.mod-active)").first.click() if toggles.count()
         else (sliders.nth(0).focus(), sliders.nth(0).press("ArrowRight")))
        wait_for_update(page, before_updates, 60)
        assert sum(page.evaluate(JS_LOCAL_DRAWS)) > local, "a move to a value computed ahead waited for the kernel"
        assert wait_until(lambda: not widgets_agree_with_figures(page), 5), widgets_agree_with_figures(page)
        before = kernel_eval(client, KERNEL_MEMORY)
        moves = random_moves(page, 50, random.Random(f"soak-{key}"))
        toggles, sliders = panel_controls(page)
        t0 = page.evaluate(JS_MARK)
        if sliders.count():  # the last move: one step of the first slider
            handle = sliders.nth(0)
            last = "ArrowLeft" if handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax") \
                else "ArrowRight"
            handle.focus()
            handle.press(last)
        else:
            toggles.nth(0).locator("button:not(.mod-active)").first.click()
        settle_ms = settle_after(page, t0, timeout=60)
        check_no_errors(page, f"after 50 moves ({', '.join(moves[-5:])}, ...)")
        state = kernel_eval(client, KERNEL_PANEL_CHECK)
        assert state["shown"] == state["values"] and all(v == state["values"] for v in state["views"]), state
        assert all(state["match"]), f"a figure differs from the notebook's function at the final values: {state}"
        assert state["errors"] == 0, state
        kernel_eval(client, "panel.wait(60, prefetched=True); print(1)")
        after = kernel_eval(client, KERNEL_MEMORY)
        # the kernel answers the next move
        before_updates = panel(page)["updates"]
        toggles, sliders = panel_controls(page)
        (toggles.nth(0).locator("button:not(.mod-active)").first.click() if toggles.count()
         else sliders.nth(0).press("Home"))
        wait_for_update(page, before_updates, 60)
        check_no_errors(page, "the move after the burst")
        print(f"{key}: settled {settle_ms:.0f} ms after the last of 51 moves; {state['cancelled']} stale computations "
              f"cancelled, {state['computed']} computed, {state['hits']} drawn from the cache; kernel "
              f"{before:.0f} -> {after:.0f} MB, {state['threads']} threads")
        assert after - before < 50, f"the kernel grew by {after - before:.0f} MB over the burst"
        assert settle_ms < 20_000, f"the last move took {settle_ms / 1000:.1f} s to draw: a backlog"
    finally:
        client.stop_channels()


def test_a_page_closed_while_a_computation_runs_leaves_no_kernel(fast_server, page):
    # a move to P11's widest ensemble trains long enough to be caught busy (the primer's closed forms finish first)
    open_dashboard(page, f"{fast_server}/voila/render/p11-legogcd.ipynb")
    kid = kernel_id(page)
    toggles, sliders = panel_controls(page)
    sliders.nth(0).focus()
    sliders.nth(0).press("End")
    assert wait_until(lambda: panel(page)["busy"], 5), "the move started no computation"
    close_page(page)
    deadline = time.monotonic() + 20
    while _status(f"{fast_server}/api/kernels/{kid}") != 404 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _status(f"{fast_server}/api/kernels/{kid}") == 404, "the closed page's kernel is still running"


def test_closing_a_page_shuts_its_kernel_down(fast_server, page):
    """A closed tab frees its kernel at once (on Binder's 2 GB a few forgotten kernels end the session)."""
    open_dashboard(page, f"{fast_server}/voila/render/p16-log-barrier-ftrl.ipynb")
    kid = kernel_id(page)
    assert _status(f"{fast_server}/api/kernels/{kid}") == 200  # the control: the page's kernel is alive
    close_page(page)
    deadline = time.monotonic() + 20
    while _status(f"{fast_server}/api/kernels/{kid}") != 404 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _status(f"{fast_server}/api/kernels/{kid}") == 404, "the closed page's kernel is still running"


def _write_notebook(path, cells) -> None:
    """A notebook of ``cells`` for a Python 3 kernel, written to ``path``."""
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@contextmanager
def _page_on(chromium, root, extra=NO_POOL):
    """A Voila server on the folder ``root`` and a fresh browser page; yields the server's URL, the page and the
    server's process."""
    with voila_server(root=root, extra=extra) as (url, proc):
        ctx = chromium.new_context(viewport={"width": 1280, "height": 800})
        try:
            yield url, ctx.new_page(), proc
        finally:
            ctx.close()


def _broken_dashboard(folder):
    """A one-knob dashboard whose knob callback raises a KeyError at its second option."""
    params = new_code_cell("INTERACTIVE = True  # build the panel")
    params.metadata["tags"] = ["parameters"]
    _write_notebook(folder / "broken.ipynb", [new_markdown_cell("# A broken knob"), params, new_code_cell(
        "from kllab.ui import plots\nfrom kllab.ui.widgets import KnobPanel, choice\n"
        "def explore(mode):\n    if mode == 'b':\n        return {}['missing']\n"
        "    return [plots.lines([0, 1], {'a': [0, 1]}, title='mode ' + mode)]\n"
        "panel = KnobPanel(explore, {'mode': choice(['a', 'b'], 'a', 'mode')})\ndisplay(panel)"),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nprint('CHECK broken ok')")])


def test_an_exception_in_a_knob_callback_fails_the_dashboard_check(tmp_path, chromium):
    _broken_dashboard(tmp_path)
    with _page_on(chromium, tmp_path) as (url, page, _):
        open_dashboard(page, f"{url}/voila/render/broken.ipynb")
        check_no_errors(page, "after loading")
        with pytest.raises(AssertionError, match="a knob callback raised"):
            exercise_dashboard(page, 1)
        assert errors(page)["panel_errors"] == ["error: KeyError: 'missing'"]  # one line, in the page
        # the panel lives on: the next move redraws and clears the error
        before = panel(page)["updates"]
        page.locator(".widget-toggle-buttons button", has_text="a").first.click()
        wait_for_update(page, before)
        assert not errors(page)["panel_errors"] and figures(page)[0]["title"] == "mode a"


def test_cells_tagged_remove_cell_stay_out_of_the_page(tmp_path, chromium):
    """The record cell (tagged remove-cell) runs but draws nothing; a solution's result stays collapsed."""
    params = new_code_cell("INTERACTIVE = True  # unused")
    params.metadata["tags"] = ["parameters"]
    hidden = new_code_cell("print('MACHINERY-' + 'ONLY')")
    hidden.metadata["tags"] = ["remove-cell"]
    _write_notebook(tmp_path / "tags.ipynb", [
        new_markdown_cell("# Tags"), params, new_code_cell("print('SHOWN-' + 'LINE')"), hidden,
        new_code_cell("from kllab.ui.widgets import solution\nsolution('Exercise 1', 'x = 2')")])
    with _page_on(chromium, tmp_path) as (url, page, _):
        page.goto(f"{url}/voila/render/tags.ipynb", timeout=120_000)
        page.wait_for_selector("details.kl-solution", state="attached", timeout=120_000)
        text = page.inner_text("body")
        assert "SHOWN-LINE" in text  # the control: an ordinary cell's output is drawn
        assert "MACHINERY-ONLY" not in text
        assert page.locator("details.kl-solution[open]").count() == 0


def test_a_page_gets_a_warm_kernel_with_an_empty_namespace(tmp_path, chromium):
    """The page's kernel comes from the warm pool: torch is imported already, a figure's first ``.show()``
    imports nothing more, and the user namespace holds nothing the notebook did not define (a missing import
    fails here as everywhere). The pool refills."""
    cell = ("import sys, json\n"
            "before = set(sys.modules)\n"
            "import plotly.graph_objects\n"
            "plotly.graph_objects.Figure().show()\n"
            "print('WARM ' + json.dumps({'torch': 'torch' in sys.modules,\n"
            "                            'show imports': sorted(set(sys.modules) - before),\n"
            "                            'names': sorted(n for n in globals() if not n.startswith('_') and n not in\n"
            "                                            ('In', 'Out', 'get_ipython', 'exit', 'quit'))}))")
    _write_notebook(tmp_path / "warm.ipynb", [new_markdown_cell("# Warm"), new_code_cell(cell)])
    with _page_on(chromium, tmp_path, ["--WarmKernelManager.warm_refill_delay=0.5"]) as (url, page, proc):
        pool = wait_until(lambda: warm_pool(proc), 90, interval=0.5)
        assert pool, "no warm kernel within 90 s"
        page.goto(f"{url}/voila/render/warm.ipynb", timeout=120_000)
        page.wait_for_function("() => document.body.innerText.includes('WARM ')", timeout=120_000)
        assert kernel_id(page) == pool[0], "the page did not get the pool's kernel"
        line = next(t for t in page.inner_text("body").splitlines() if t.startswith("WARM "))
        # before, json, plotly and sys are the cell's; open is IPython's and os Voila's (it sets VOILA_KERNEL_ID)
        assert line == ('WARM {"torch": true, "show imports": [], '
                        '"names": ["before", "json", "open", "os", "plotly", "sys"]}'), line
        refilled = wait_until(lambda: (ks := warm_pool(proc)) and ks[0] != pool[0], 90, interval=0.5)
        assert refilled, "the pool did not refill"


THREADS_CELL = ("import json, scipy.linalg, torch\nfrom threadpoolctl import threadpool_info\n"
                "print('THREADS ' + json.dumps({'libraries': sorted({i['num_threads'] for i in threadpool_info()}),\n"
                "                               'torch': torch.get_num_threads()}))")


@pytest.mark.parametrize("kernel", ["pooled", "started for the page", "control: kernel_threads=0"])
def test_dashboard_kernels_run_their_math_libraries_on_one_thread(kernel, tmp_path, chromium, monkeypatch):
    """A dashboard's kernel, from the pool or started for its page, has one thread in each BLAS and OpenMP pool
    (it shares the cores with the browser that draws its figures). The control, ``kernel_threads=0``, leaves
    the libraries' default: one thread a core."""
    # the kernels keep a thread count their server's environment sets, and Dask's Nanny (the sweep tests) writes
    # them into this process's environment: the server here gets none
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if kernel.startswith("control") and (os.cpu_count() or 1) < 2:
        pytest.skip("one core: the libraries' default is one thread too")
    _write_notebook(tmp_path / "threads.ipynb", [new_markdown_cell("# Threads"), new_code_cell(THREADS_CELL)])
    extra = {"pooled": ["--WarmKernelManager.warm_refill_delay=60"], "started for the page": NO_POOL,
             "control: kernel_threads=0": [*NO_POOL, "--WarmKernelManager.kernel_threads=0"]}[kernel]
    with _page_on(chromium, tmp_path, extra) as (url, page, proc):
        pool = wait_until(lambda: warm_pool(proc), 90, interval=0.5) if kernel == "pooled" else []
        page.goto(f"{url}/voila/render/threads.ipynb", timeout=120_000)
        page.wait_for_function("() => document.body.innerText.includes('THREADS ')", timeout=120_000)
        assert (kernel_id(page) in pool) == (kernel == "pooled"), (kernel, pool)
        line = next(t for t in page.inner_text("body").splitlines() if t.startswith("THREADS "))
    threads = json.loads(line.removeprefix("THREADS "))
    one = {"libraries": [1], "torch": 1}
    assert (threads != one) if kernel.startswith("control") else (threads == one), threads


def test_figures_are_drawn_with_plotly_cartesian_bundle_and_other_traces_say_so(tmp_path, chromium):
    """The page draws plotly outputs with kllab's renderer and plotly.js's cartesian bundle; plotly's own
    extension (all of plotly.js) is not loaded. A figure and a panel view with a trace type the bundle lacks
    (which plotly.js would draw as a scatter) each show a one-line error instead."""
    cells = ["import plotly.graph_objects as go\n"
             "go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]), layout_title_text='heat').show()",
             "go.Figure(go.Scatter3d(x=[1, 2], y=[1, 2], z=[1, 2]), layout_title_text='3d').show()",
             "from kllab.ui.figure_view import FigureView\n"
             "FigureView(go.Figure(go.Scatterpolar(r=[1, 2], theta=[0, 90])).to_plotly_json())"]
    _write_notebook(tmp_path / "traces.ipynb", [new_markdown_cell("# Traces"), *map(new_code_cell, cells)])
    with _page_on(chromium, tmp_path) as (url, page, _):
        page.goto(f"{url}/voila/render/traces.ipynb", timeout=120_000)
        page.wait_for_function("() => document.querySelectorAll('.kl-figure-error').length === 2", timeout=120_000)
        assert [f["title"] for f in figures(page)] == ["heat"]  # the control: a cartesian trace is drawn
        lines = errors(page)["figure_errors"]
        assert any("scatter3d" in t for t in lines) and any("scatterpolar" in t for t in lines), lines
        loaded = page.evaluate("() => performance.getEntriesByType('resource').map(r => r.name)")
        assert any("/kllab-plotly/static/plotly-cartesian.min.js" in u for u in loaded), loaded
        assert not any("/jupyterlab-plotly/" in u for u in loaded), "plotly's own extension was loaded"
        assert page.evaluate("() => window.Plotly.version") == plotly_bundle_version()

