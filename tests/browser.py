"""A real Voila server and a real headless Chromium, shared by the dashboard tests and benchmark.

Chromium is Debian's (``apt-get install chromium``), driven by Python playwright with the flags
this kind of machine needs (no sandbox as root, no background networking).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from kllab.harness.dashboard import start_voila

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

# Page-side probes. A figure's fingerprint: its title and the first values of every trace.
JS_FIGURES = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
        .filter(d => !(d.layout && d.layout.meta === 'kllab-plotly-loader')).map(d => {
    // _fullData holds the decoded arrays (a figure's JSON may carry them base64-encoded).
    const arr = v => (v != null && (Array.isArray(v) || ArrayBuffer.isView(v)) ? Array.from(v) : []);
    return {
        title: (d.layout && d.layout.title && (d.layout.title.text || d.layout.title)) || '',
        traces: (d._fullData || d.data || []).map(t => ({
            n: Math.max(arr(t.x).length, arr(t.y).length, arr(t.z).length),
            head: JSON.stringify([t.name, arr(t.x).slice(0, 8), arr(t.y).slice(0, 8),
                                  JSON.stringify(arr(t.z).map(r => arr(r).slice(0, 6))).slice(0, 300), t.fill])}))};
})"""
JS_ERRORS = """() => {
    const text = document.body.innerText;
    return {error: text.includes('There was an error when executing cell') || text.includes('Traceback'),
            stderr: document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]').length,
            panel_errors: Array.from(document.querySelectorAll('.kl-error')).map(e => e.innerText),
            figure_errors: Array.from(document.querySelectorAll('.kl-figure-error')).map(e => e.innerText),
            records: text.includes('recorded ')};
}"""
# The knob panel's status line (kllab.ui.widgets.KnobPanel): finished updates, failed ones, busy.
JS_PANEL = """() => {
    const s = document.querySelector('.kl-status');
    return s ? {updates: +s.dataset.updates, errors: +s.dataset.errors, busy: s.dataset.busy === '1',
                text: s.innerText} : null;
}"""


def warm_pool(proc) -> list[str]:
    """The ids of the warm kernels waiting for a page (``kllab.harness.warm``), from the Voila server's log."""
    import re

    text = proc.log_path.read_text(errors="replace")
    ready = re.findall(r"Warm kernel (\S+) ready", text)
    taken = set(re.findall(r"Handing out warm kernel (\S+)", text))
    return [k for k in ready if k not in taken]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Debian's chromium is needed for the dashboard tests: apt-get install chromium")
    return path


@contextmanager
def voila_server(notebook: str | None = None, preheat: bool = False, root: Path | None = None, extra=()):
    """Voila on a free loopback port, with kllab's configuration; yields its base URL and process."""
    BUILD.mkdir(exist_ok=True)
    log = tempfile.NamedTemporaryFile("w", prefix="voila-", suffix=".log", dir=BUILD, delete=False)
    proc, port = start_voila(None, notebook, preheat=preheat, root=root, stdout=log, extra=extra, timeout=90)
    proc.log_path = Path(log.name)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


_RUNNING = []  # the sync playwright of the outermost open browser() in this process


@contextmanager
def browser():
    """A headless Chromium. Inside another open ``browser()`` (the dashboard tests keep one for the whole
    session) it is launched from that one's playwright: a second sync playwright cannot start in a
    process whose first one still runs its event loop."""
    from playwright.sync_api import sync_playwright

    if _RUNNING:
        b = _RUNNING[-1].chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()
        return
    with sync_playwright() as p:
        _RUNNING.append(p)
        try:
            b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
            try:
                yield b
            finally:
                b.close()
        finally:
            _RUNNING.pop()


def close_page(page) -> None:
    """Close a page as a reader closing its tab does: its ``beforeunload`` and ``unload`` handlers run,
    and Voila's sends the request that shuts the page's kernel down.

    Playwright's ``page.close(run_before_unload=True)`` does not get that request out of headless
    Chromium (the kernel lives on); the DevTools protocol's ``Page.close``, a tab's close, does.
    """
    cdp = page.context.new_cdp_session(page)
    with page.expect_event("close", timeout=30_000):
        cdp.send("Page.close")


def kernel_id(page) -> str:
    """The id of the kernel behind a Voila page (from the page's Jupyter config)."""
    return page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")


def fingerprint(page) -> str:
    return json.dumps(page.evaluate(JS_FIGURES), sort_keys=True)


def figures(page) -> list[dict]:
    return page.evaluate(JS_FIGURES)


def errors(page) -> dict:
    return page.evaluate(JS_ERRORS)


def panel(page) -> dict | None:
    return page.evaluate(JS_PANEL)


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value; return it (or None after ``timeout`` s)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


JS_DRAWN = "d => d.querySelector('.main-svg') && !(d.layout && d.layout.meta === 'kllab-plotly-loader')"
"""A drawn plotly figure of the page, not the hidden empty one that makes the page load plotly.js."""


# Installed in a page before it loads: the time (ms from the navigation's start, the page's own clock) at
# which plotly added the first figure's SVG, not the hidden loader's. Watching added nodes keeps it cheap.
JS_FIRST_FIGURE = """(() => {
    if (window.__klFirstFigureObserver) return;
    const obs = new MutationObserver(records => {
        for (const r of records) for (const n of r.addedNodes) {
            const gd = n.classList && n.classList.contains('main-svg') && n.closest('.js-plotly-plot');
            if (gd && !(gd.layout && gd.layout.meta === 'kllab-plotly-loader')) {
                window.__klFirstFigure = performance.now();
                obs.disconnect();
                return;
            }
        }
    });
    window.__klFirstFigureObserver = obs;
    obs.observe(document, {childList: true, subtree: true});
})()"""


def open_dashboard(page, url: str, timeout: float = 120) -> float:
    """Load a notebook's dashboard and wait until the whole notebook ran (its check line is on the page)
    and the knob panel drew. Returns the seconds from navigation to the first figure drawn, by the page's
    clock (the harness's own round trips, up to half a second here, are not the reader's wait)."""
    page.add_init_script(JS_FIRST_FIGURE)
    t0 = time.monotonic()
    page.goto(url, timeout=timeout * 1000)
    page.wait_for_function(f"() => Array.from(document.querySelectorAll('.js-plotly-plot')).some({JS_DRAWN})",
                           timeout=timeout * 1000, polling=50)
    outside = time.monotonic() - t0
    inside = page.evaluate("() => window.__klFirstFigure")
    page.wait_for_function("() => document.body.innerText.includes('CHECK ')", timeout=timeout * 1000)
    page.wait_for_function(f"() => Array.from(document.querySelectorAll('.widget-vbox .js-plotly-plot')).some({JS_DRAWN})"
                           " && document.querySelector('.kl-status') !== null", timeout=timeout * 1000)
    settle(page, quiet=0.5, timeout=30)
    return inside / 1000 if inside is not None else outside


def wait_for_change(page, before: str, timeout: float) -> tuple[str | None, float]:
    """Wait until the figures' fingerprint differs from ``before``; return it and the seconds taken."""
    t0 = time.monotonic()
    after = wait_until(lambda: (fp := fingerprint(page)) != before and fp, timeout)
    return after, time.monotonic() - t0


def settle(page, quiet: float = 1.5, timeout: float = 180) -> str:
    """Wait until the figures stop changing for ``quiet`` seconds; return the fingerprint."""
    t0 = time.monotonic()
    last, since = fingerprint(page), time.monotonic()
    while time.monotonic() - t0 < timeout:
        time.sleep(0.2)
        now = fingerprint(page)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    return last


def screenshot(page, path: Path, max_height: int = 12000) -> None:
    """The whole page as one image: Voila scrolls an inner panel, so grow the viewport to its height."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("() => Math.max(...Array.from(document.querySelectorAll('body, body *'))"
                           ".filter(e => e.scrollHeight > e.clientHeight + 10).map(e => e.scrollHeight), "
                           "document.body.scrollHeight)")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, max_height)})
    time.sleep(1.0)
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(size)
    time.sleep(0.5)


def wait_for_update(page, before: int, timeout: float = 60) -> dict:
    """Wait until the knob panel finished an update after ``before`` (its count) and is not busy."""
    state = wait_until(lambda: (s := panel(page)) and s["updates"] > before and not s["busy"] and s, timeout)
    if not state:
        raise AssertionError(f"the knob panel did not finish an update within {timeout:.0f} s: {panel(page)}")
    return state


def check_no_errors(page, where: str) -> None:
    e = errors(page)
    assert not e["error"], f"{where}: an error or traceback shows in the page"
    assert e["stderr"] == 0, f"{where}: {e['stderr']} stderr output(s) show in the page"
    assert not e["panel_errors"], f"{where}: a knob callback raised: {e['panel_errors']}"
    assert not e["figure_errors"], f"{where}: a figure could not be drawn: {e['figure_errors']}"
    assert not e["records"], f"{where}: record lines ('recorded ...') show in the page"


def panel_controls(page):
    """The knob panel's toggle groups and slider handles."""
    box = page.locator(".widget-vbox").filter(has=page.locator(".kl-status")).last
    toggles = box.locator(".widget-toggle-buttons")
    sliders = box.locator(".noUi-handle")
    return toggles, sliders


def exercise_dashboard(page, n_knobs: int, ends: bool = True) -> dict:
    """Every knob of an open dashboard, as a reader moves it; raises AssertionError on the first problem.

    Each toggle group: another option redraws a figure (timed), the first option restores the view.
    Each slider, the others at their defaults: one step redraws a figure (timed); then, with ``ends``, every
    slider's End and Home values finish without an error (``tests/notebooks/test_panels.py`` moves every knob of
    every notebook to both ends in process; the browser repeats it where ``ends`` asks).
    Returns the redraw seconds by knob (a restless student's many moves are the soak test's).
    """
    toggles, sliders = panel_controls(page)
    assert toggles.count() + sliders.count() >= n_knobs, "a knob of the catalog has no control in the panel"
    timings = {}
    baseline = fingerprint(page)

    def act(label, action, expect_change=True):
        nonlocal baseline
        before = panel(page)["updates"]
        t0 = time.monotonic()
        action()
        wait_for_update(page, before)
        check_no_errors(page, label)
        if expect_change:
            after = wait_until(lambda: (fp := fingerprint(page)) != baseline and fp, 30)
            assert after, f"{label} changed no figure"
            timings[label] = time.monotonic() - t0
        baseline = settle(page, quiet=0.3, timeout=30)

    for g in range(toggles.count()):
        group = toggles.nth(g)
        first = group.locator("button").first.inner_text()
        start = group.locator("button.mod-active").first.inner_text()
        other = group.locator("button:not(.mod-active)").first
        act(f"toggle {g} -> {other.inner_text()!r}", other.click)
        act(f"toggle {g} -> {start!r}", lambda: group.locator("button", has_text=start).first.click())
        assert first  # (labels are read from the page: the options the reader sees)
    def press(handle, key):
        handle.focus()
        handle.press(key)

    # Every slider steps once while the others sit at their defaults (one knob can silence another: a
    # kernel's mode does nothing at concentration 0), then every slider visits both ends.
    for s in range(sliders.count()):
        handle = sliders.nth(s)
        at_max = handle.get_attribute("aria-valuenow") == handle.get_attribute("aria-valuemax")
        act(f"slider {s} step", lambda: press(handle, "ArrowLeft" if at_max else "ArrowRight"))
    for s in range(sliders.count() if ends else 0):
        handle = sliders.nth(s)
        for key in ("End", "Home"):
            value = handle.get_attribute("aria-valuenow")
            edge = handle.get_attribute("aria-valuemax" if key == "End" else "aria-valuemin")
            if value == edge:
                continue
            act(f"slider {s} {key}", lambda: press(handle, key), expect_change=False)
    figs = figures(page)
    for i, f in enumerate(figs):
        assert f["title"] and any(t["n"] > 0 for t in f["traces"]), f"figure {i} lost its data or title"

    return timings


JS_MARK = """() => {
    // the reader's input after this mark, by the event's own time (the harness's delivery of it is not the
    // reader's wait)
    window.__klInput = undefined;
    if (!window.__klInputHook) {
        window.__klInputHook = true;
        const note = e => { if (window.__klInput === undefined) window.__klInput = e.timeStamp; };
        for (const type of ['keydown', 'click']) document.addEventListener(type, note, true);
    }
    window.__klT0 = performance.now();
    return window.__klT0;
}"""
JS_LOCAL_DRAWS = "() => Array.from(document.querySelectorAll('.kl-figure')).map(d => +(d.dataset.localDraws || 0))"
"""Per figure of the panel, the moves the page drew from the figures it kept, before the kernel answered."""
# The knob panel's figures (kllab.ui.figure_view.FigureView): what each shows, and when it was last drawn.
JS_VIEWS = """() => Array.from(document.querySelectorAll('.kl-figure')).map(d => ({
    knobs: d.dataset.knobs ? JSON.parse(d.dataset.knobs) : null, serial: +(d.dataset.serial || 0),
    drawnAt: +(d.dataset.drawnAt || 0), drawMs: +(d.dataset.drawMs || 0), receivedAt: +(d.dataset.receivedAt || 0),
    drawnLog: (d.dataset.drawnLog || "").split(" ").filter(t => t).map(Number)}))"""


def views(page) -> list[dict]:
    return page.evaluate(JS_VIEWS)


def timed_move(page, action, timeout: float = 60) -> dict:
    """Do ``action`` (a knob move) and time it in the page: from the key press or click (the event's time) to
    the end of the last ``Plotly.react`` it caused, once the panel is idle. Returns milliseconds: ``total``,
    ``first`` (the first figure redrawn: sooner than ``total`` where the panel draws training as it goes), the
    kernel's ``compute`` of the values now shown (for a prefetched value, what it took when prefetched), the
    browser's ``draw`` (the longest react of the move), and ``changed`` (figures redrawn)."""
    before = panel(page)["updates"]
    page.evaluate(JS_MARK)
    action()
    wait_for_update(page, before, timeout)
    t0 = page.evaluate("() => window.__klInput === undefined ? window.__klT0 : window.__klInput")
    time.sleep(0.05)  # a react still in flight ends within a frame or two
    vs = wait_until(lambda: (v := views(page)) and all(not x["drawnAt"] or x["drawnAt"] < t0 or x["knobs"] for x in v)
                    and v, 5)
    drawn = [v for v in vs if v["drawnAt"] > t0]
    state = panel(page)
    compute = float(page.evaluate("() => +document.querySelector('.kl-status').dataset.computeMs"))
    first = min((t for v in drawn for t in v["drawnLog"] if t > t0), default=float("nan")) - t0
    return {"total": (max(v["drawnAt"] for v in drawn) - t0) if drawn else float("nan"), "first": first,
            "compute": compute,
            "received": (min(v["receivedAt"] for v in drawn) - t0) if drawn else float("nan"),
            "draw": max((v["drawMs"] for v in drawn), default=float("nan")), "changed": len(drawn),
            "error": state["text"] if state["errors"] else ""}


# The knob panel's controls in their order, each as the value the reader sees: a toggle group's active
# button, a slider's readout.
JS_CONTROLS = """() => {
    const s = document.querySelector('.kl-status');
    const box = s && s.closest('.widget-vbox');
    if (!box) return null;
    return Array.from(box.querySelectorAll('.widget-toggle-buttons, .widget-slider, .widget-dropdown')).map(c => {
        if (c.classList.contains('widget-toggle-buttons')) {
            const a = c.querySelector('button.mod-active');
            return {kind: 'toggle', value: a ? a.innerText.trim() : null};
        }
        if (c.classList.contains('widget-dropdown')) return {kind: 'dropdown', value: c.querySelector('select').value};
        const r = c.querySelector('.widget-readout');
        return {kind: 'slider', value: r ? (r.innerText || r.value || r.textContent).trim() : null};
    });
}"""


def controls(page) -> list[dict]:
    return page.evaluate(JS_CONTROLS)


def widgets_agree_with_figures(page) -> str:
    """"" if every figure of the panel shows the knob values its controls show, else what differs.

    Each figure's ``data-knobs`` (the values it was computed at) against each control's text in the page,
    in the panel's order: options exactly, numbers to the readout's three significant digits."""
    vs, cs = views(page), controls(page)
    if not vs or any(v["knobs"] is None for v in vs):
        return f"a figure of the panel is not drawn: {vs}"
    knobs = vs[0]["knobs"]
    if any(v["knobs"] != knobs for v in vs):
        return f"the panel's figures show different knob values: {[v['knobs'] for v in vs]}"
    if len(cs) != len(knobs):
        return f"{len(cs)} controls for {len(knobs)} knobs"
    for (name, value), c in zip(knobs.items(), cs):
        shown = c["value"]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                ok = math.isclose(float(shown.replace("\u2212", "-")), value, rel_tol=6e-3, abs_tol=1e-12)
            except (TypeError, ValueError):
                ok = False
        else:
            ok = str(value) == shown
        if not ok:
            return f"{name}: the control shows {shown!r}, the figures were computed at {value!r}"
    return ""


def random_moves(page, n: int, rng, pace=(0.1, 0.4)) -> list[str]:
    """``n`` knob moves at a student's pace (``pace`` seconds apart): a random toggle option, or a random key
    on a random slider (arrows, page up/down, home, end). Returns what was done."""
    toggles, sliders = panel_controls(page)
    done = []
    for _ in range(n):
        pick = rng.randrange(toggles.count() + sliders.count())
        if pick < toggles.count():
            buttons = toggles.nth(pick).locator("button")
            i = rng.randrange(buttons.count())
            buttons.nth(i).click(no_wait_after=True)
            done.append(f"toggle {pick} option {i}")
        else:
            key = rng.choice(["ArrowRight", "ArrowLeft", "ArrowRight", "ArrowLeft", "PageUp", "PageDown", "Home", "End"])
            handle = sliders.nth(pick - toggles.count())
            handle.focus()
            handle.press(key)
            done.append(f"slider {pick - toggles.count()} {key}")
        time.sleep(rng.uniform(*pace))
    return done


def settle_after(page, t0: float, timeout: float = 60) -> float:
    """Wait until the panel is done (not busy, every figure drawn at the controls' values); return the
    milliseconds from the page time ``t0`` to the last figure's draw (or, if the figures already showed the
    final values, to when the panel was seen done)."""
    ok = wait_until(lambda: (s := panel(page)) and not s["busy"] and not widgets_agree_with_figures(page), timeout)
    seen = page.evaluate("() => performance.now()")
    if not ok:
        raise AssertionError(f"the panel did not settle within {timeout:.0f} s: {panel(page)}; "
                             f"{widgets_agree_with_figures(page)}")
    last = max(v["drawnAt"] for v in views(page))
    return (last if last > t0 else seen) - t0


def kernel_files(kernel: str) -> list[str]:
    """The connection files named on the command lines of running processes for the kernel ``kernel`` (its
    id): one while the kernel runs, none once it has exited."""
    import psutil

    name = f"kernel-{kernel}.json"
    return [a for p in psutil.process_iter(["cmdline"]) for a in (p.info["cmdline"] or []) if a.endswith(name)]


def kernel_connection(page):
    """A client on the kernel behind a Voila page (the connection file its command line names)."""
    from jupyter_client import BlockingKernelClient

    name = f"kernel-{kernel_id(page)}.json"
    files = kernel_files(kernel_id(page))
    if not files:
        raise AssertionError(f"no kernel process with the connection file {name}")
    client = BlockingKernelClient(connection_file=files[0])
    client.load_connection_file()
    client.start_channels()
    client.wait_for_ready(timeout=30)
    return client


def kernel_eval(client, code: str, timeout: float = 60):
    """Run ``code`` in the kernel; its last line must print one JSON value, which is returned."""
    out = []

    def hook(msg):
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("ERROR " + "\n".join(msg["content"]["traceback"]))

    reply = client.execute_interactive(code, timeout=timeout, output_hook=hook, store_history=False)
    text = "".join(out)
    if reply["content"]["status"] != "ok" or text.startswith("ERROR"):
        raise AssertionError(f"kernel code failed: {text[-2000:]}")
    return json.loads(text.strip().splitlines()[-1])


# In the kernel: the panel's figures against the notebook's pure function at the widgets' final values,
# and what the kernel holds (threads, memory).
KERNEL_PANEL_CHECK = """
import json as _json, threading as _threading, resource as _resource
from kllab.ui.widgets import _figure_json as _fj
panel.wait(60)
_v = panel.values()
print(_json.dumps({"values": _v, "shown": panel.shown, "views": [v.knobs for v in panel.views],
                   "match": [v.figure == _fj(f) for v, f in zip(panel.views, panel._call(_v))],
                   "threads": _threading.active_count(), "errors": panel.errors, "cancelled": panel.cancelled,
                   "computed": panel.computed, "hits": panel.hits}, default=str))
"""
