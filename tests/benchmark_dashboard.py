"""Dashboard benchmark (prints figures; run by hand: ``.venv/bin/python tests/benchmark_dashboard.py``).

1. Cold start: for every notebook, the seconds from opening its dashboard URL to its first figure
   drawn in headless Chromium (a new kernel per page, as for every reader), and where they go:
   kernel start and imports (the Voila log's "Kernel started" to the first cell), the cells before
   the first figure, and the browser's rendering. With ``--preheat``, the same with
   ``kllab dashboard --preheat`` (a kernel that already ran the notebook).
2. Knob to redrawn figure, in the browser, for every knob (the dashboard test's exercise, timed).
3. A Binder-sized session: ten dashboards opened one after another, each closed (as a reader
   closes a tab) before the next; the peak memory of the Voila server and its kernels, sampled
   every 0.25 s, as resident (RSS, shared pages counted in every process) and proportional
   (PSS, shared pages divided among their processes: what the machine really holds).

Targets: first figure <= 5 s on an idle machine; redraw <= 300 ms for closed-form knobs and <= 2 s
for training ones; ten dashboards in sequence <= 2 GB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser import browser, close_page, exercise_dashboard, open_dashboard, voila_server  # noqa: E402

from kllab.harness import catalog  # noqa: E402


def tree_memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MB of a process and all its children."""
    rss = pss = 0
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    for p in procs:
        try:
            info = p.memory_full_info()
            rss += info.rss
            pss += getattr(info, "pss", info.rss)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return rss / 2 ** 20, pss / 2 ** 20


class Sampler(threading.Thread):
    """Samples the memory of a process tree until stopped; keeps the peaks."""

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.interval, self.stop, self.peak_rss, self.peak_pss, self.kernels = pid, interval, \
            threading.Event(), 0.0, 0.0, 0

    def run(self):
        while not self.stop.is_set():
            rss, pss = tree_memory_mb(self.pid)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            try:
                self.kernels = max(self.kernels, len(psutil.Process(self.pid).children(recursive=True)))
            except psutil.NoSuchProcess:
                pass
            time.sleep(self.interval)


def cold_starts(b, entries, log_dir: Path) -> None:
    print("1. First figure of a cold dashboard (new kernel per page), headless Chromium 1280x800")
    print(f"   {'notebook':<10}{'first figure s':>16}")
    firsts = []
    with voila_server() as (url, _):
        for e in entries:
            page = b.new_page(viewport={"width": 1280, "height": 800})
            first = open_dashboard(page, f"{url}/voila/render/{e.notebook}")
            close_page(page)
            firsts.append(first)
            print(f"   {e.id:<10}{first:>16.2f}")
    print(f"   median {statistics.median(firsts):.2f} s, max {max(firsts):.2f} s (target <= 5 s)")


def preheated(b, entries) -> None:
    print("\n1b. First figure with --preheat (a kernel that already ran the notebook)")
    for e in entries:
        with voila_server(e.notebook, preheat=True) as (url, _):
            time.sleep(30)  # let the pool's kernel run the notebook
            page = b.new_page(viewport={"width": 1280, "height": 800})
            warm = open_dashboard(page, f"{url}/")  # a single notebook is served at the root
            close_page(page)
        print(f"   {e.id:<10}{warm:>16.2f}")


def redraws(b, entries) -> None:
    print("\n2. Knob to redrawn figure, in the browser (seconds, every knob)")
    with voila_server() as (url, _):
        for e in entries:
            page = b.new_page(viewport={"width": 1280, "height": 800})
            open_dashboard(page, f"{url}/voila/render/{e.notebook}")
            timings = exercise_dashboard(page, len(e.knobs))
            close_page(page)
            print(f"   {e.id:<10}" + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))


def ten_in_sequence(b, entries) -> None:
    print("\n3. Ten dashboards opened one after another, each closed before the next")
    order = [entries[i % len(entries)] for i in range(10)]
    with voila_server() as (url, proc):
        time.sleep(2)
        idle = tree_memory_mb(proc.pid)
        sampler = Sampler(proc.pid)
        sampler.start()
        t0 = time.monotonic()
        for e in order:
            page = b.new_page(viewport={"width": 1280, "height": 800})
            open_dashboard(page, f"{url}/voila/render/{e.notebook}")
            close_page(page)
        time.sleep(3)
        sampler.stop.set()
        sampler.join()
        after = tree_memory_mb(proc.pid)
        alive = len(psutil.Process(proc.pid).children(recursive=True))
    print(f"   Voila server alone: RSS {idle[0]:.0f} MB, PSS {idle[1]:.0f} MB")
    print(f"   peak over {len(order)} dashboards in {time.monotonic() - t0:.0f} s: RSS {sampler.peak_rss:.0f} MB, "
          f"PSS {sampler.peak_pss:.0f} MB, at most {sampler.kernels} kernel(s) at once (target <= 2 GB)")
    print(f"   3 s after the last page closed: {alive} kernel(s) left, RSS {after[0]:.0f} MB, PSS {after[1]:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preheat", action="store_true", help="also time --preheat (30 s per notebook)")
    parser.add_argument("--only", nargs="*", help="catalog ids (default: every notebook)")
    parser.add_argument("--parts", default="123", help="which parts to run, e.g. 3 (default: 123)")
    args = parser.parse_args()
    entries = [e for e in catalog.entries() if e.notebook and (not args.only or e.id in args.only)]
    with browser() as b:
        if "1" in args.parts:
            cold_starts(b, entries, Path("build"))
            if args.preheat:
                preheated(b, entries)
        if "2" in args.parts:
            redraws(b, entries)
        if "3" in args.parts:
            ten_in_sequence(b, entries)


if __name__ == "__main__":
    main()
