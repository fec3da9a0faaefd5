"""The CI budget, read off a real run of the test suite (prints figures; run by hand, not by pytest).

``.venv/bin/python tests/benchmark_suite.py [--install] [-- PYTEST ARGS]`` runs the README's test
command's ``pytest`` (all tests, with the project's pytest options: both cores) and records every
test's setup + call + teardown seconds. It attributes each test to the notebook it exercises (its
catalog id in brackets, or nbval's notebook file) and to headless (runs, bad parameters, panels,
nbval, committed form, catalog) or dashboard (Voila + Chromium), and prints

1. per notebook: its marginal cost in test-seconds, headless and dashboard apart, and the total;
2. the fixed cost (every test of no particular notebook), the suite's wall time, and the
   parallel efficiency (test-seconds per wall second, at most the number of workers);
3. the projection to 45 notebooks: fixed + 45 x (the mean marginal cost), divided by the same
   efficiency, plus the install time (``--install`` measures it in a new virtual environment with
   the README's commands; otherwise the figure given by ``--install-seconds``).

Targets (issue "The gallery at full size"): marginal cost <= 25 s per notebook (headless + dashboard),
the suite projected to 45 notebooks <= 30 min on 2 cores, install included.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

PLUGIN = '''
import json, os
_DURATIONS = {}

def pytest_runtest_logreport(report):
    _DURATIONS[report.nodeid] = _DURATIONS.get(report.nodeid, 0.0) + report.duration

def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller gets the reports
        return
    with open(os.environ["KLLAB_DURATIONS"], "w") as f:
        json.dump({"durations": _DURATIONS, "exitstatus": int(exitstatus)}, f)
'''


def attribute(nodeid: str, catalog_ids: set[str], files: dict[str, str]) -> tuple[str | None, str]:
    """(notebook id or None, "headless" / "dashboard" / "other") for one test."""
    m = re.search(r"\[([^\]]+)\]$", nodeid)
    kind = "dashboard" if "test_dashboards.py" in nodeid else "headless"
    if ".ipynb::" in nodeid:
        name = nodeid.split("::", 1)[0].rsplit("/", 1)[-1]
        return files.get(name), "headless"
    if m and m.group(1).split("-")[0] in catalog_ids and ("tests/notebooks/" in nodeid or "test_catalog.py" in nodeid):
        return m.group(1).split("-")[0], kind
    return None, "dashboard" if kind == "dashboard" else "other"


def measure_install() -> float:
    """Seconds for the README's set-up commands (new venv, pip, torch, kllab[test]) in a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        venv = Path(tmp) / "venv"
        t0 = time.perf_counter()
        for cmd in ([sys.executable, "-m", "venv", str(venv)],
                    [str(venv / "bin/pip"), "install", "-q", "--upgrade", "pip"],
                    [str(venv / "bin/pip"), "install", "-q", "torch==2.13.0"],
                    [str(venv / "bin/pip"), "install", "-q", "-e", f"{ROOT}[test]"]):
            subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="measure the install in a new virtual environment")
    parser.add_argument("--install-seconds", type=float, default=None, help="the install time, if not measured")
    parser.add_argument("--from-json", default=None, help="read the durations of an earlier run instead of running")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()

    from kllab.harness import catalog

    entries = [e for e in catalog.entries() if e.notebook]
    ids = {e.id for e in entries}
    files = {e.notebook: e.id for e in entries}

    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        wall = data["wall"]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            plugin = Path(tmp) / "kllab_durations.py"
            plugin.write_text(PLUGIN)
            out = Path(tmp) / "durations.json"
            env = {**os.environ, "KLLAB_DURATIONS": str(out), "PYTHONPATH": f"{tmp}:{os.environ.get('PYTHONPATH', '')}"}
            t0 = time.perf_counter()
            res = subprocess.run([str(ROOT / ".venv/bin/pytest"), "-p", "kllab_durations", "-q", *args.pytest_args],
                                 cwd=ROOT, env=env)
            wall = time.perf_counter() - t0
            data = json.loads(out.read_text())
            data["wall"] = wall
            keep = ROOT / "build" / "suite-durations.json"
            keep.parent.mkdir(exist_ok=True)
            keep.write_text(json.dumps(data, indent=1))
            print(f"\n(durations kept in {keep}; pytest exit status {res.returncode})")

    per = defaultdict(lambda: {"headless": 0.0, "dashboard": 0.0})
    fixed = {"other": 0.0, "dashboard": 0.0}
    for nodeid, seconds in data["durations"].items():
        nb, kind = attribute(nodeid, ids, files)
        if nb is None:
            fixed[kind if kind in fixed else "other"] += seconds
        else:
            per[nb][kind] += seconds
    total_tests = sum(data["durations"].values())
    efficiency = total_tests / wall if wall else 1.0

    print("\n1. Marginal cost per notebook in the test suite (test-seconds: setup + call + teardown)")
    print(f"   {'notebook':<10}{'headless s':>12}{'dashboard s':>13}{'total s':>10}")
    for e in entries:
        c = per[e.id]
        print(f"   {e.id:<10}{c['headless']:>12.1f}{c['dashboard']:>13.1f}{c['headless'] + c['dashboard']:>10.1f}")
    marginal = [per[e.id]["headless"] + per[e.id]["dashboard"] for e in entries]
    mean = sum(marginal) / len(marginal)
    print(f"   {'mean':<10}{sum(per[e.id]['headless'] for e in entries) / len(entries):>12.1f}"
          f"{sum(per[e.id]['dashboard'] for e in entries) / len(entries):>13.1f}{mean:>10.1f}   (target <= 25 s)")

    fixed_total = fixed["other"] + fixed["dashboard"]
    print(f"\n2. Fixed cost (tests of no particular notebook): {fixed_total:.0f} test-s "
          f"({fixed['dashboard']:.0f} of them dashboard); all tests {total_tests:.0f} test-s in {wall:.0f} s wall: "
          f"parallel efficiency {efficiency:.2f}")

    install = measure_install() if args.install else args.install_seconds
    projected = (fixed_total + 45 * mean) / efficiency
    print(f"\n3. Projection to 45 notebooks: ({fixed_total:.0f} + 45 x {mean:.1f}) / {efficiency:.2f} = {projected / 60:.1f} min"
          + (f" + install {install / 60:.1f} min = {(projected + install) / 60:.1f} min" if install is not None else
             " (+ install: pass --install or --install-seconds)") + "   (target <= 30 min)")


if __name__ == "__main__":
    main()
