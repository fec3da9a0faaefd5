"""The course site (`kllab site`), built from the notebooks this test session already executed, read in Chromium.

Runs after test_fast in the same process (the "executed" group of kllab_groups, pyproject.toml): the site is built from those runs and
nothing executes again. Every page loads and draws every figure with data; the solution toggles open;
no internal link is broken; search finds a paper by a word of its title. Prints the build time,
the page sizes and the time to the first figure.
"""

import functools
import http.server
import statistics
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import nbformat
import pytest
from browser import browser
from helpers import NOTEBOOK_ENTRIES

from kllab.harness import catalog, site
from kllab.harness.run import PLOTLY_JSON

PAGE_LIMIT = 3_000_000  # bytes: a paper's page with its figures (plotly.js is one shared file)

JS_PAGE = """() => {
    const figs = Array.from(document.querySelectorAll('.js-plotly-plot'));
    return {figures: figs.length,
            // _fullData holds the decoded arrays (a figure's JSON may carry them base64-encoded)
            drawn: figs.filter(d => d.querySelector('.main-svg') && (d._fullData || []).some(
                t => ['x', 'y', 'z', 'values', 'r'].some(k => t[k] != null && t[k].length > 0))).length,
            links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
            plotly: typeof window.Plotly !== 'undefined'};
}"""


def _figures_in(nb) -> int:
    return sum(PLOTLY_JSON in o.get("data", {}) for c in nb.cells
               if "remove-cell" not in c.get("metadata", {}).get("tags", []) for o in c.get("outputs", []))


@pytest.fixture(scope="module")
def built(executed, request, tmp_path_factory):
    selected = [i for i in request.session.items if getattr(i, "originalname", "") == "test_fast"]
    if not selected:
        pytest.skip("the site is built from test_fast's runs (tests/notebooks/test_headless.py); none was selected")
    ran = {i.callspec.params["entry"].id for i in selected}
    assert set(executed.results) == ran, "test_fast ran in another process: see kllab_groups in pyproject.toml"
    executed.write_results()
    out = tmp_path_factory.mktemp("site") / "site"
    start = time.perf_counter()
    site.build(executed.folder, out, echo=print)
    print(f"site build: {time.perf_counter() - start:.1f} s for {len(ran)} executed notebooks")
    return out, ran


@pytest.fixture(scope="module")
def server(built):
    out, _ = built
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_pages_are_small_and_share_one_plotly(built):
    out, ran = built
    plotly_js = out / "_static" / "plotly.min.js"
    assert plotly_js.stat().st_size > 1_000_000
    sizes = {}
    for e in NOTEBOOK_ENTRIES:
        page = out / site.page_name(e)
        text = page.read_text(encoding="utf-8")
        assert "_static/plotly.min.js" in text
        assert "plotly.js v" not in text, f"{page.name} inlines plotly.js"
        sizes[e.id] = page.stat().st_size
    biggest = max(sizes, key=sizes.get)
    print(f"page sizes: median {statistics.median(sizes.values()) / 1e6:.2f} MB, largest {biggest} "
          f"{sizes[biggest] / 1e6:.2f} MB, plotly.min.js {plotly_js.stat().st_size / 1e6:.2f} MB once")
    assert sizes[biggest] <= PAGE_LIMIT, f"{biggest}'s page is {sizes[biggest] / 1e6:.1f} MB"


def test_every_page_draws_its_figures_opens_its_solutions_and_links_to_pages_that_exist(built, server, executed):
    out, ran = built
    firsts, checked_links = [], set()
    with browser() as b:
        page = b.new_page(viewport={"width": 1200, "height": 900})
        for name in ["index.html", "conventions.html"] + [site.page_name(e) for e in NOTEBOOK_ENTRIES]:
            start = time.perf_counter()
            page.goto(f"{server}/{name}")
            entry = next((e for e in NOTEBOOK_ENTRIES if site.page_name(e) == name), None)
            expected = 0
            if entry is not None and entry.id in ran:
                expected = _figures_in(nbformat.read(executed.folder / entry.notebook, as_version=4))
            if expected:
                page.wait_for_function(f"() => ({JS_PAGE})().drawn >= {expected}", timeout=30_000)
                firsts.append(time.perf_counter() - start)
            state = page.evaluate(JS_PAGE)
            assert state["drawn"] == state["figures"] == expected, (name, state["drawn"], state["figures"], expected)
            if entry is not None and entry.id in ran:
                assert page.locator(".kl-badge.ok").count() == 1, f"{name}: no green check badge"
                assert page.locator(f'.kl-launch a[href*="voila/render/notebooks/{entry.notebook}"]').count() == 1
                # a worked solution's code is behind a toggle that opens
                toggles = page.locator("details.hide.above-input")
                if toggles.count():
                    assert toggles.first.get_attribute("open") is None
                    toggles.first.locator("summary").click()
                    assert toggles.first.get_attribute("open") is not None, f"{name}: the solution toggle did not open"
                assert "recorded " not in page.locator("article").inner_text(), f"{name}: the record cell is on the page"
            for href in state["links"]:
                url = urlparse(href)
                if url.netloc != urlparse(server).netloc or url.path in checked_links:
                    continue
                checked_links.add(url.path)
                target = out / unquote(url.path).lstrip("/")
                if target.is_dir():
                    target = target / "index.html"
                assert target.exists(), f"{name} links to {url.path}, which the site does not have"
        print(f"first figure after navigation: median {statistics.median(firsts):.2f} s, max {max(firsts):.2f} s "
              f"over {len(firsts)} pages; {len(checked_links)} internal links checked")


def test_search_finds_a_paper_by_a_word_of_its_title(built, server):
    entry = catalog.find("P35") if catalog.find("P35").notebook else NOTEBOOK_ENTRIES[-1]
    word = max(entry.title.replace(":", " ").split(), key=len)
    with browser() as b:
        page = b.new_page()
        page.goto(f"{server}/search.html?q={word}")
        link = page.locator(f'#search-results a[href*="{Path(entry.notebook).stem}"]')
        link.first.wait_for(timeout=30_000)
        assert link.count() >= 1, f"searching {word!r} did not find {entry.id}"
