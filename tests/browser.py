"""A real Voila server and a real headless Chromium, shared by the dashboard tests and benchmark.

Chromium is Debian's (``apt-get install chromium``), driven by Python playwright with the flags
this kind of machine needs (no sandbox as root, no background networking).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

from kllab.harness.dashboard import free_port, voila_command, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

# Page-side probes. A figure's fingerprint: its title and the first values of every trace.
JS_FIGURES = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(d => {
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
            stderr: document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]').length};
}"""


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("Debian's chromium is needed for the dashboard tests: apt-get install chromium")
    return path


@contextmanager
def voila_server(notebook: str | None = None, preheat: bool = False):
    """Voila on a free loopback port, with kllab's configuration; yields its base URL and process."""
    BUILD.mkdir(exist_ok=True)
    port = free_port()
    log = open(BUILD / f"voila-{port}.log", "w")
    proc = subprocess.Popen(voila_command(port, notebook, preheat=preheat), stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, timeout=90)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextmanager
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


def fingerprint(page) -> str:
    return json.dumps(page.evaluate(JS_FIGURES), sort_keys=True)


def figures(page) -> list[dict]:
    return page.evaluate(JS_FIGURES)


def errors(page) -> dict:
    return page.evaluate(JS_ERRORS)


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value; return it (or None after ``timeout`` s)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


def open_dashboard(page, url: str, timeout: float = 120) -> float:
    """Load a notebook's dashboard and wait until its check line is on the page (the whole notebook
    ran). Returns the seconds from navigation to the first figure drawn."""
    t0 = time.monotonic()
    page.goto(url, timeout=timeout * 1000)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length > 0",
                           timeout=timeout * 1000, polling=50)
    first = time.monotonic() - t0
    page.wait_for_function("() => document.body.innerText.includes('CHECK ')", timeout=timeout * 1000)
    # Let the knob panel's figures finish drawing.
    page.wait_for_function("() => document.querySelectorAll('.widget-vbox .js-plotly-plot .main-svg').length > 0",
                           timeout=timeout * 1000)
    time.sleep(1.0)
    return first


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
