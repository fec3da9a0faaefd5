"""Benchmark of ``kllab sweep`` (prints figures; timings on a shared machine are for reading, not asserting).

Run: ``.venv/bin/python tests/benchmark_sweep.py [--points 16] [--repeats 2] [--skip-fresh]``. It prints

1. a 16-point FAST sweep of P37 (BETA x DIRECTION) on 1 worker (serial) and on 2 workers, with kept kernels
   (the default) and with a fresh kernel per point, interleaved in one run; the target is 2 workers <= 0.65 x
   serial;
2. where a point's time goes: wall time per point against the notebook's own cells (papermill's cell
   durations), for a fresh kernel per point and for a kept kernel, so the per-point overhead (kernel start,
   imports, papermill, reset) can be read against the notebook's compute.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from kllab.harness.sweep import sweep

BETAS = [0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 10.0, 20.0, 30.0, 50.0, 80.0, 100.0]


def run(out: Path, points: int, workers: int, fresh: bool) -> tuple[float, list[dict]]:
    n_beta = max(1, points // 2)
    grid = {"BETA": BETAS[:n_beta], "DIRECTION": ["forward", "reverse"]}
    t0 = time.perf_counter()
    table = sweep("P37", grid, {"FAST": True}, out=out, workers=workers, fresh_kernels=fresh, force=True,
                  echo=lambda line: None)
    wall = time.perf_counter() - t0
    failed = [r for r in table.rows if r["status"] != "ok"]
    if failed:
        raise SystemExit(f"benchmark sweep failed: {failed[0]['error']}")
    for row in table.rows:  # the notebook's own time: the sum of papermill's cell durations
        nb = json.loads((out / row["notebook"]).read_text())
        row["cells"] = sum(c["metadata"]["papermill"]["duration"] or 0 for c in nb["cells"] if c["cell_type"] == "code")
    return wall, table.rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats of the kept-kernel pair")
    parser.add_argument("--skip-fresh", action="store_true", help="skip the (slow) fresh-kernel pair")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        walls: dict[tuple[str, int], list[float]] = {}
        rows: dict[tuple[str, int], list[dict]] = {}
        plan = [("kept", w) for _ in range(args.repeats) for w in (1, 2)]
        if not args.skip_fresh:
            plan += [("fresh", 1), ("fresh", 2)]
        for mode, workers in plan:
            wall, got = run(tmp / f"{mode}-{workers}", args.points, workers, mode == "fresh")
            walls.setdefault((mode, workers), []).append(wall)
            rows[(mode, workers)] = got
            print(f"   ran {args.points} points, {mode} kernels, {workers} worker(s): {wall:.1f} s", flush=True)

        print(f"\n1. {args.points}-point FAST sweep of P37, wall time (best of the repeats)")
        print(f"   {'kernels':<8}{'1 worker s':>12}{'2 workers s':>13}{'ratio':>8}   target ratio <= 0.65")
        serial_fresh = min(walls.get(("fresh", 1), [float("nan")]))
        for mode in ("kept", "fresh"):
            if (mode, 1) not in walls:
                continue
            one, two = min(walls[(mode, 1)]), min(walls[(mode, 2)])
            print(f"   {mode:<8}{one:>12.1f}{two:>13.1f}{two / one:>8.2f}")
        if not args.skip_fresh:
            best = min(walls[("kept", 2)])
            print(f"   kept kernels on 2 workers against fresh kernels one after another: "
                  f"{best:.1f} / {serial_fresh:.1f} s = {best / serial_fresh:.2f}")

        print("\n2. Per point (median over the points; seconds)")
        print(f"   {'':<34}{'wall':>7}{'cells':>7}{'overhead':>10}")
        kept = rows[("kept", 1)]
        compute = statistics.median(r["cells"] for r in kept[1:])
        lines = [("kept kernel, first point (start)", kept[:1]), ("kept kernel, later points", kept[1:])]
        if ("fresh", 1) in rows:
            lines.insert(0, ("fresh kernel per point", rows[("fresh", 1)]))
        for label, rs in lines:
            wall = statistics.median(r["seconds"] for r in rs)
            cells = statistics.median(r["cells"] for r in rs)
            print(f"   {label:<34}{wall:>7.2f}{cells:>7.2f}{wall - compute:>10.2f}")
        print(f"   overhead = wall - {compute:.2f} s, the cells' time in a kept kernel (the notebook's own compute;\n"
              f"   a fresh kernel's cells also import torch, kllab and plotly)")


if __name__ == "__main__":
    main()
