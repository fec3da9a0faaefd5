"""Dashboard benchmark (prints figures; run by hand: ``.venv/bin/python tests/benchmark_dashboard.py``).

1. Time from opening a dashboard URL to its first figure drawn, in headless Chromium, for every
   notebook: with a cold kernel (progressive rendering) and with a preheated kernel (``--preheat``).
2. Knob change to redrawn figure, measured in the browser (toggle buttons, median of 6 changes).
3. Memory (resident, MB) of the Voila server and its kernels with the gallery and three dashboards open.

Targets: first figure <= 5 s; redraw <= 300 ms for closed-form notebooks; a Binder session has 2 GB.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import browser, fingerprint, open_dashboard, settle, voila_server, wait_for_change  # noqa: E402

from kllab import catalog  # noqa: E402


def tree_rss_mb(proc) -> float:
    p = psutil.Process(proc.pid)
    return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)]) / 2 ** 20


def main() -> None:
    entries = [e for e in catalog.entries() if e.notebook]
    print("1-2. Dashboards in headless Chromium (1280x800)")
    print(f"   {'notebook':<10}{'first figure, cold s':>22}{'first figure, preheated s':>27}{'redraw median s':>17}")
    with browser() as b:
        for e in entries:
            with voila_server() as (url, _):
                page = b.new_page(viewport={"width": 1280, "height": 800})
                cold = open_dashboard(page, f"{url}/voila/render/{e.notebook}")
                group = page.locator(".widget-vbox .widget-toggle-buttons").first
                redraws = []
                if group.count():
                    for _ in range(6):
                        before = settle(page, quiet=1.0)
                        group.locator("button:not(.mod-active)").first.click()
                        _, seconds = wait_for_change(page, before, timeout=60)
                        redraws.append(seconds)
                page.close()
            with voila_server(e.notebook, preheat=True) as (url, _):
                time.sleep(25)  # let the pool's kernel run the notebook
                page = b.new_page(viewport={"width": 1280, "height": 800})
                warm = open_dashboard(page, f"{url}/")  # a single notebook is served at the root
                page.close()
            med = statistics.median(redraws) if redraws else float("nan")
            print(f"   {e.id:<10}{cold:>22.2f}{warm:>27.2f}{med:>17.2f}")

        print("\n3. Memory with the gallery and three dashboards open")
        with voila_server() as (url, proc):
            idle = tree_rss_mb(proc)
            pages = []
            for name in ["index.ipynb"] + [e.notebook for e in entries[:3]]:
                page = b.new_page(viewport={"width": 1280, "height": 800})
                if name == "index.ipynb":
                    page.goto(f"{url}/voila/render/{name}")
                    page.wait_for_selector(".kl-card", timeout=120_000)
                else:
                    open_dashboard(page, f"{url}/voila/render/{name}")
                pages.append(page)
            time.sleep(2)
            print(f"   Voila server alone: {idle:.0f} MB; with the gallery and {len(pages) - 1} dashboards open "
                  f"(server + {len(psutil.Process(proc.pid).children(recursive=True))} kernels): "
                  f"{tree_rss_mb(proc):.0f} MB")
            print(f"   (fingerprint check: {len(fingerprint(pages[-1]))} characters of figure data on the last page)")


if __name__ == "__main__":
    main()
