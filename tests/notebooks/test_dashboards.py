"""Every notebook as a Voila dashboard, in a real Voila server and a real headless Chromium.

For the gallery and each notebook: the page loads with no error output; every plotly figure draws
at least one trace with data and has a title; each knob of the panel changes at least one figure;
edge values redraw or show a one-line message; 30 rapid knob changes leave the kernel alive and the
figures matching the last value. A screenshot of each page goes to build/screenshots/.
"""

import time
import urllib.error
import urllib.request

import pytest
from browser import (BUILD, browser, errors, figures, open_dashboard, screenshot, settle, voila_server,
                     wait_for_change)
from helpers import notebook_params

SHOTS = BUILD / "screenshots"


@pytest.fixture(scope="module")
def server():
    with voila_server() as (url, proc):
        yield url


@pytest.fixture(scope="module")
def chromium():
    with browser() as b:
        yield b


@pytest.fixture
def page(chromium):
    ctx = chromium.new_context(viewport={"width": 1280, "height": 800})
    pg = ctx.new_page()
    yield pg
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
    from kllab.harness import catalog

    cards = page.locator(".kl-card")
    assert cards.count() == len(catalog.entries())
    assert page.locator(".kl-card.todo").count() == sum(1 for e in catalog.entries() if not e.notebook)
    assert not errors(page)["error"]
    screenshot(page, SHOTS / "index.png")
    # A card's link opens that paper's dashboard.
    page.locator('.kl-card[data-id="P37"] h4 a').click()
    page.wait_for_url("**/voila/render/p37-rapo.ipynb", timeout=30_000)


def test_missing_notebook_is_a_404(server):
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{server}/voila/render/no-such-notebook.ipynb", timeout=30)
    assert err.value.code == 404


def test_nothing_outside_notebooks_is_served(server):
    for path in ("voila/files/../README.md", "voila/render/../README.md", "voila/files/../kllab/harness/catalog.toml"):
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{server}/{path}", timeout=30)


def _panel_controls(page):
    panel = page.locator(".widget-vbox").filter(has=page.locator(".js-plotly-plot")).last
    toggles = panel.locator(".widget-toggle-buttons")
    sliders = panel.locator(".widget-slider .noUi-handle, .widget-hslider .noUi-handle")
    return panel, toggles, sliders


def _press_slider(handle, key):
    handle.focus()
    handle.press(key)


@notebook_params
def test_dashboard(entry, server, page):
    load = open_dashboard(page, f"{server}/voila/render/{entry.notebook}")
    assert not errors(page)["error"] and errors(page)["stderr"] == 0
    _assert_figures_drawn(page)
    screenshot(page, SHOTS / f"{entry.path.stem}.png")

    panel, toggles, sliders = _panel_controls(page)
    assert toggles.count() + sliders.count() >= len(entry.knobs), "a knob of the catalog has no control"
    baseline = settle(page)
    timings = {}

    # Each toggle group: another option changes a figure; the original option restores it.
    for g in range(toggles.count()):
        group = toggles.nth(g)
        other = group.locator("button:not(.mod-active)").first
        active = group.locator("button.mod-active").first
        active_label = active.inner_text()
        other.click()
        after, seconds = wait_for_change(page, baseline, timeout=60)
        assert after, f"toggle group {g}: choosing {other.inner_text()!r} changed no figure"
        timings[f"toggle {g}"] = seconds
        group.locator("button", has_text=active_label).first.click()
        baseline = settle(page)

    # Each slider: one step changes a figure; edge values redraw or show a one-line message.
    for s in range(sliders.count()):
        handle = sliders.nth(s)
        at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        _press_slider(handle, "ArrowLeft" if at_max else "ArrowRight")
        after, seconds = wait_for_change(page, baseline, timeout=60)
        assert after, f"slider {s} changed no figure"
        timings[f"slider {s}"] = seconds
        for key in ("End", "Home"):
            _press_slider(handle, key)
            settle(page)
            assert not errors(page)["error"], f"slider {s} at its {key} value produced an error in the page"
        baseline = settle(page)
    _assert_figures_drawn(page)

    # 30 rapid changes of the first toggle group, ending on its starting option: the kernel keeps up,
    # the figures end on the starting option's view, and one more change still redraws.
    if toggles.count():
        group = toggles.nth(0)
        start = group.locator("button.mod-active").first.inner_text()
        reference = baseline
        buttons = group.locator("button")
        labels = [buttons.nth(i).inner_text() for i in range(buttons.count())]
        other_label = next(lbl for lbl in labels if lbl != start)
        for i in range(30):
            group.locator("button", has_text=other_label if i % 2 == 0 else start).first.click(no_wait_after=True)
        final = settle(page, quiet=2.0, timeout=240)
        assert final == reference, "after 30 rapid changes the figures do not match the last value"
        group.locator("button", has_text=other_label).first.click()
        after, _ = wait_for_change(page, final, timeout=60)
        assert after, "the kernel stopped answering after 30 rapid changes"
    assert not errors(page)["error"]
    print(f"{entry.id}: first figure {load:.2f} s; redraw {', '.join(f'{k} {v:.2f} s' for k, v in timings.items())}")
