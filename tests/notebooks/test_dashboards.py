"""Every notebook as a Voila dashboard, in a real Voila server and a real headless Chromium.

Each notebook's page is loaded once and everything is checked on it: no error output, no stderr,
no record lines; every plotly figure draws data and has a title; every knob of the panel redraws
a figure (an exception in a knob callback shows as a one-line error in the page, which fails the
test). Two representative notebooks also take every slider to both ends of its range (every notebook's
knobs go to both ends in process, in test_panels.py) and 30 rapid knob changes. Closing a page shuts its kernel down. A screenshot of each page goes to build/screenshots/.

The dashboards are served with ``FAST=True`` injected (papermill's ``prepare_only``: the same
notebook with an injected-parameters cell, as ``kllab run --fast`` runs it), so that their pages
and their training knobs cost seconds; the defaults run under nbval, and
``tests/benchmark_dashboard.py`` times the dashboards at their defaults. The gallery and the
served-files checks use the real ``notebooks/`` folder.
"""

import time
import urllib.error
import urllib.request

import nbformat
import pytest
from browser import (BUILD, browser, check_no_errors, close_page, errors, exercise_dashboard, figures, kernel_id,
                     open_dashboard, screenshot, voila_server)
from helpers import notebook_params
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from kllab.harness import catalog

SHOTS = BUILD / "screenshots"
STRESS = {"P37", "primer"}  # a closed-form panel and a training one


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
    timings = exercise_dashboard(page, len(entry.knobs), stress=entry.id in STRESS, ends=entry.id in STRESS)
    print(f"{entry.id}: first figure {load:.2f} s; redraw {', '.join(f'{k} {v:.2f} s' for k, v in timings.items())}")


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


def _broken_dashboard(folder):
    """A one-knob dashboard whose knob callback raises a KeyError at its second option."""
    params = new_code_cell("INTERACTIVE = True  # build the panel")
    params.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[new_markdown_cell("# A broken knob"), params, new_code_cell(
        "from kllab.ui import plots\nfrom kllab.ui.widgets import KnobPanel, choice\n"
        "def explore(mode):\n    if mode == 'b':\n        return {}['missing']\n"
        "    return [plots.lines([0, 1], {'a': [0, 1]}, title='mode ' + mode)]\n"
        "panel = KnobPanel(explore, {'mode': choice(['a', 'b'], 'a', 'mode')})\ndisplay(panel)"),
        new_code_cell("# NBVAL_CHECK_OUTPUT\nprint('CHECK broken ok')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / "broken.ipynb")


def test_an_exception_in_a_knob_callback_fails_the_dashboard_check(tmp_path, chromium):
    _broken_dashboard(tmp_path)
    with voila_server(root=tmp_path) as (url, _):
        ctx = chromium.new_context(viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        try:
            open_dashboard(page, f"{url}/voila/render/broken.ipynb")
            check_no_errors(page, "after loading")
            with pytest.raises(AssertionError, match="a knob callback raised"):
                exercise_dashboard(page, 1)
            assert errors(page)["panel_errors"] == ["error: KeyError: 'missing'"]  # one line, in the page
        finally:
            ctx.close()


def test_cells_tagged_remove_cell_stay_out_of_the_page(tmp_path, chromium):
    """The record cell (tagged remove-cell) runs but draws nothing; a solution's result stays collapsed."""
    params = new_code_cell("INTERACTIVE = True  # unused")
    params.metadata["tags"] = ["parameters"]
    hidden = new_code_cell("print('MACHINERY-' + 'ONLY')")
    hidden.metadata["tags"] = ["remove-cell"]
    nb = new_notebook(cells=[new_markdown_cell("# Tags"), params, new_code_cell("print('SHOWN-' + 'LINE')"), hidden,
                             new_code_cell("from kllab.ui.widgets import solution\nsolution('Exercise 1', 'x = 2')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "tags.ipynb")
    with voila_server(root=tmp_path) as (url, _):
        ctx = chromium.new_context(viewport={"width": 1280, "height": 800})
        page = ctx.new_page()
        try:
            page.goto(f"{url}/voila/render/tags.ipynb", timeout=120_000)
            page.wait_for_selector("details.kl-solution", state="attached", timeout=120_000)
            text = page.inner_text("body")
            assert "SHOWN-LINE" in text  # the control: an ordinary cell's output is drawn
            assert "MACHINERY-ONLY" not in text
            assert page.locator("details.kl-solution[open]").count() == 0
        finally:
            ctx.close()
