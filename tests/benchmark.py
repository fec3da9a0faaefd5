"""Benchmarks that print figures (not a test: timings on a shared machine are for reading, not asserting).

Run: ``.venv/bin/python tests/benchmark.py [--quick] [--only P13 P37]``. It prints

1. ``kllab run --fast`` over every catalog notebook on the kept-kernel pool (one worker per core):
   the wall time, and per notebook its seconds, the seconds of its own cells, and the pool's
   overhead per notebook (kernel reset and papermill's bookkeeping: the rest), measured on a kernel
   that already ran a notebook; and the projection of the wall time to 45 notebooks;
2. each notebook's time with ``FAST=True`` and with its defaults (``INTERACTIVE=False``) in a fresh
   kernel, as stock papermill runs it (kernel start and imports included), and the peak resident
   memory of that kernel;
3. ``kl_from_logits`` against ``F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True)`` at
   64×32000 float32, interleaved in one run, and both results where torch gives NaN;
4. the size of every committed notebook.

Targets: ``kllab run --fast`` ≤ 30 s for today's notebooks and ≤ 3 min projected to 45; pool overhead
≤ 0.5 s per notebook; FAST ≤ 10 s and defaults ≤ 60 s per notebook on 2 cores; kernel peak ≤ 700 MB;
kllab no slower than torch; committed notebooks ≤ 100 KB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WRAPPER = """
import json, resource, sys, time, papermill
src, out, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
t0 = time.perf_counter()
papermill.execute_notebook(src, out, parameters=params, kernel_name="python3", progress_bar=False, cwd=sys.argv[4])
seconds = time.perf_counter() - t0
# ru_maxrss of reaped children (here: the kernel), in KiB on Linux
print(json.dumps({"seconds": seconds, "kernel_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def bench_pool(only) -> None:
    from kllab.harness import engine, run

    entries = _entries(only)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        results = run.run([e.id for e in entries], fast=True, out_dir=tmp, echo=lambda line: None)
        wall = time.perf_counter() - t0
    workers = min(engine.local_workers(), len(entries))
    print(f"1. kllab run --fast over {len(entries)} notebooks on {workers} kept-kernel workers: {wall:.1f} s wall "
          f"(target <= 30 s for the 5 of the first round)")
    # The overhead on a warm kernel: run each notebook once more in this thread's kept kernel.
    print(f"   {'notebook':<10}{'run s':>8}{'cells s':>9}{'overhead s (warm kernel)':>26}")
    overheads = []
    for e, r in zip(entries, results):
        warm = engine.run_point(engine.task_for(e.path, {"FAST": True, "INTERACTIVE": False}))
        overheads.append(warm["seconds"] - warm["cell_seconds"])
        print(f"   {e.id:<10}{r.seconds:>8.1f}{r.cell_seconds:>9.1f}{overheads[-1]:>26.2f}")
    per = sum(r.seconds for r in results) / len(results)
    print(f"   median overhead {statistics.median(overheads):.2f} s per notebook (target <= 0.5 s); "
          f"projection to 45 notebooks: {45 * per / workers:.0f} s + one kernel start per worker "
          f"(target <= 180 s)")


def _entries(only):
    from kllab.harness import catalog

    return [e for e in catalog.entries() if e.notebook and (not only or e.id in only)]


def bench_notebooks(only) -> None:
    print("\n2. Notebooks under stock papermill (INTERACTIVE=False), a fresh kernel each: wall time including "
          "kernel start and imports")
    print(f"   {'notebook':<10}{'FAST s':>8}{'defaults s':>12}{'kernel peak MB':>16}")
    with tempfile.TemporaryDirectory() as tmp:
        for e in _entries(only):
            row = []
            peak = 0.0
            for params in ({"FAST": True, "INTERACTIVE": False}, {"INTERACTIVE": False}):
                out = Path(tmp) / e.notebook
                res = subprocess.run([sys.executable, "-c", _WRAPPER, str(e.path), str(out), json.dumps(params),
                                      str(e.path.parent)], capture_output=True, text=True)
                if res.returncode != 0:
                    row.append(float("nan"))
                    print(f"   {e.id}: failed: {res.stderr.strip().splitlines()[-1:]}")
                    continue
                figures = json.loads(res.stdout.strip().splitlines()[-1])
                row.append(figures["seconds"])
                peak = max(peak, figures["kernel_peak_mb"])
            print(f"   {e.id:<10}{row[0]:>8.1f}{row[1]:>12.1f}{peak:>16.0f}")


def bench_kl(repeats: int) -> None:
    import torch
    import torch.nn.functional as F

    from kllab.maths.divergences import kl_from_logits

    torch.manual_seed(0)
    s, t, T = torch.randn(64, 32000), torch.randn(64, 32000), 2.0

    def ours():
        return kl_from_logits(t, s, T)

    def theirs():
        return F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="none").sum(-1)

    times = {"kllab kl_from_logits": [], "torch F.kl_div": []}
    for _ in range(3):
        ours(), theirs()  # warm-up
    pair = [("kllab kl_from_logits", ours), ("torch F.kl_div", theirs)]
    for i in range(repeats):  # interleaved, in alternating order, so both see the same machine load
        for name, fn in (pair if i % 2 else pair[::-1]):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    print(f"\n3. KL from logits at T={T}, 64x32000 float32, {repeats} interleaved repeats, torch threads "
          f"{torch.get_num_threads()}")
    for name, ts in times.items():
        p10 = statistics.quantiles(ts, n=10)[0]
        print(f"   {name:<22} median {statistics.median(ts) * 1e3:7.2f} ms   10th percentile {p10 * 1e3:7.2f} ms")
    ratio = statistics.median(times["kllab kl_from_logits"]) / statistics.median(times["torch F.kl_div"])
    print(f"   ratio kllab/torch (medians): {ratio:.2f}")
    torch.testing.assert_close(ours(), theirs())
    s2, t2 = s.clone(), t.clone()
    s2[:, :100] = -float("inf")
    t2[:, :100] = -float("inf")
    a = kl_from_logits(t2, s2, T)
    b = F.kl_div(F.log_softmax(s2 / T, -1), F.log_softmax(t2 / T, -1), log_target=True, reduction="none").sum(-1)
    print(f"   with 100 logits -inf in both: kllab NaN rows {int(torch.isnan(a).sum())}/64, "
          f"torch NaN rows {int(torch.isnan(b).sum())}/64")


def bench_sizes() -> None:
    print("\n4. Committed notebooks")
    for p in sorted((ROOT / "notebooks").glob("*.ipynb")):
        print(f"   {p.name:<32}{p.stat().st_size / 1024:7.1f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the notebook runs")
    parser.add_argument("--only", nargs="*", help="catalog ids (default: every notebook)")
    args = parser.parse_args()
    if not args.quick:
        bench_pool(args.only)
        bench_notebooks(args.only)
    bench_kl(repeats=200)
    bench_sizes()


if __name__ == "__main__":
    main()
