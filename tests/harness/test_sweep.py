"""kllab sweep: real papermill runs of P37 (closed form, FAST) over small grids, locally and on Dask."""

import csv
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook

from kllab.harness import cli
from kllab.harness.record import read
from kllab.harness.sweep import Table, load, parse_grid, sweep

GRID = {"BETA": [0.05, 0.5], "DIRECTION": ["forward", "reverse"]}
GRID_ARGS = ["--grid", "BETA=0.05,0.5", "--grid", "DIRECTION=forward,reverse"]


def kllab(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "kllab", *args], capture_output=True, text=True, timeout=timeout)


def _csv(folder):
    with open(Path(folder) / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def _values(table):
    """Each row without its timing and file name, for comparing two runs of the same grid."""
    return [{k: v for k, v in r.items() if k not in ("seconds", "notebook")} for r in table.rows]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One 2x2 FAST sweep of P37 through the command line, on 2 local workers, with a figure."""
    out = tmp_path_factory.mktemp("sweep") / "p37"
    t0 = time.perf_counter()
    res = kllab("sweep", "P37", *GRID_ARGS, "-p", "FAST=True", "--out", str(out), "--workers", "2",
                "--plot", "pi_correct")
    return out, res, time.perf_counter() - t0


def test_2x2_table_has_4_ok_rows_whose_values_differ(swept):
    out, res, _ = swept
    assert res.returncode == 0, res.stderr
    rows = _csv(out)
    assert [(r["BETA"], r["DIRECTION"]) for r in rows] == [
        ("0.05", "forward"), ("0.05", "reverse"), ("0.5", "forward"), ("0.5", "reverse")]  # grid order
    assert [r["status"] for r in rows] == ["ok"] * 4 and all(r["error"] == "" for r in rows)
    assert list(rows[0])[:5] == ["BETA", "DIRECTION", "status", "error", "seconds"]
    assert all(float(r["seconds"]) > 0 for r in rows)
    pi = [float(r["pi_correct"]) for r in rows]
    assert len(set(pi)) == 4, pi  # every point gives a different value
    # each row is its own point: the forward optimum is 1 - beta, and it is what DIRECTION=forward records
    for r in rows:
        assert float(r["pi_correct_forward"]) == pytest.approx(1 - float(r["BETA"]), abs=1e-5)
        assert r["pi_correct"] == r[f"pi_correct_{r['DIRECTION']}"]
    # progress, one line per point, and the executed notebooks carry the same values
    for line in ("BETA=0.05 DIRECTION='forward' ok", "BETA=0.5 DIRECTION='reverse' ok", "[4/4]"):
        assert line in res.stdout
    for r in rows:
        nb = out / r["notebook"]
        assert read(nb)["pi_correct"] == float(r["pi_correct"])
        params = nbformat.read(nb, as_version=4).metadata.papermill.parameters
        assert params == {"BETA": float(r["BETA"]), "DIRECTION": r["DIRECTION"], "FAST": True, "INTERACTIVE": False}


def test_figure_file_is_written(swept):
    out, res, _ = swept
    page = (out / "pi_correct.html").read_text()
    assert "Plotly.newPlot" in page and 'src="plotly.min.js"' in page and "pi_correct against BETA" in page
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    fig = load(out).figure("pi_correct")
    assert [t.name for t in fig.data] == ["DIRECTION='forward'", "DIRECTION='reverse'"]
    assert list(fig.data[0].x) == [0.05, 0.5] and fig.data[0].y[1] == pytest.approx(0.5, abs=1e-5)


def test_plot_command_and_unknown_metric(swept, tmp_path, capsys):
    out, _, _ = swept
    assert cli.main(["plot", str(out), "theory_forward", "--out", str(tmp_path / "f.html")]) == 0
    assert "Plotly.newPlot" in (tmp_path / "f.html").read_text()
    assert cli.main(["plot", str(out), "nope"]) == 2
    err = capsys.readouterr().err
    assert "metric must be a recorded quantity" in err and "pi_correct" in err and "got 'nope'" in err


def test_resume_skips_done_points_and_force_reruns(swept, tmp_path):
    src, _, _ = swept
    out = tmp_path / "p37"
    shutil.copytree(src, out)
    before = _csv(out)
    res = kllab("sweep", "P37", *GRID_ARGS, "-p", "FAST=True", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "4 already done" in res.stdout and "nothing to run" in res.stdout
    assert _progress(res.stdout) == 0, "a resumed sweep whose points are all ok executes none"
    assert _csv(out) == before
    # a failed row is run again, the ok ones are not
    rows = _csv(out)
    rows[1]["status"], rows[1]["error"] = "failed", "made up"
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    res = kllab("sweep", "P37", *GRID_ARGS, "-p", "FAST=True", "--out", str(out))
    assert res.returncode == 0 and _progress(res.stdout) == 1 and "3 already done" in res.stdout, res.stdout
    assert [r["status"] for r in _csv(out)] == ["ok"] * 4
    # --force runs every point again
    res = kllab("sweep", "P37", *GRID_ARGS, "-p", "FAST=True", "--out", str(out), "--force")
    assert res.returncode == 0 and _progress(res.stdout) == 4 and "already done" not in res.stdout, res.stdout
    assert _values(load(out)) == _values(load(src))
    # another fixed parameter is another sweep: refused, nothing runs
    res = kllab("sweep", "P37", *GRID_ARGS, "-p", "FAST=True", "-p", "EPSILON=0.001", "--out", str(out))
    assert res.returncode == 2 and "holds another sweep" in res.stderr and "--force" in res.stderr
    assert _progress(res.stdout) == 0


def _progress(stdout: str) -> int:
    """How many points a sweep executed: its '[i/n] ...' progress lines."""
    import re

    return len(re.findall(r"^\[\d+/\d+\] ", stdout, flags=re.M))


def test_a_bad_value_fails_its_row_only(tmp_path):
    # SEED has no catalog range, so its bad value passes the sweep's own checks and stops in the setup cell
    res = kllab("sweep", "P37", "--grid", "SEED=-1,0", "-p", "FAST=True", "--out", str(tmp_path / "bad"))
    assert res.returncode == 1, res.stderr  # the exit status is the number of failed points
    rows = {r["SEED"]: r for r in _csv(tmp_path / "bad")}
    assert rows["0"]["status"] == "ok" and rows["0"]["pi_correct"]
    bad = rows["-1"]
    assert bad["status"] == "failed" and bad["pi_correct"] == ""
    assert bad["error"].startswith("cell ") and "ValueError: SEED must be" in bad["error"] and "got -1" in bad["error"]
    assert "SEED=-1 failed" in res.stdout and "1 of 2 point(s) failed" in res.stderr
    assert (tmp_path / "bad" / bad["notebook"]).exists()  # the failed notebook is kept, with its traceback


@pytest.mark.parametrize("args, message", [
    (["--grid", "NOPE=1,2"], "parameter 'NOPE' is not in the parameters cell of p37-rapo.ipynb"),
    (["-p", "FAST=True"], "grid must name at least one parameter"),
    (["--grid", "BETA"], "--grid must be NAME=V1,V2,...; got 'BETA'"),
    (["--grid", "BETA=0.1,,0.2"], "--grid BETA has an empty value"),
    (["--grid", "BETA=0.1", "--grid", "BETA=0.2"], "--grid names BETA twice"),
    (["--grid", "BETA=0.1,0.1"], "grid BETA repeats the value 0.1"),
    (["--grid", "BETA=0.1", "-p", "FAST"], "-p must be NAME=VALUE in one word; got 'FAST'"),
    (["--grid", "BETA=0.1", "-p", "FAST", "True"], "(write -p FAST=True, not -p FAST True)"),
    (["--grid", "BETA=0.1", "-p", "BETA=0.2"], "BETA is both in the grid and fixed"),
    (["--grid", "BETA=0.1", "-p", "INTERACTIVE=True"], "INTERACTIVE is always False in a sweep"),
    (["--grid", "BETA=0.1", "--workers", "0"], "--workers must be an integer >= 1; got '0'"),
    (["--grid", "BETA=0.1,30.0", "--grid", "DIRECTION=forward"],
     "P37 grid point BETA=30.0, DIRECTION='forward': BETA must be in [0.001, 3]; got 30.0"),
    (["--grid", "DIRECTION=forward,sideways"],
     "P37 grid point DIRECTION='sideways': DIRECTION must be one of 'reverse', 'forward'; got 'sideways'"),
    (["--grid", "BETA=0.1", "-p", "EPSILON=hot"], "-p for P37: EPSILON must be a number in [1e-12, 0.1]; got 'hot' (str)"),
])
def test_bad_input_is_one_line_before_anything_runs(args, message, tmp_path, capsys):
    out = tmp_path / "never"
    assert cli.main(["sweep", "P37", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kllab sweep: ") and message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_unknown_paper_is_refused(tmp_path, capsys, paper_without_notebook):
    assert cli.main(["sweep", paper_without_notebook, "--grid", "X=1", "--out", str(tmp_path / "x")]) == 2
    assert "has no notebook yet" in capsys.readouterr().err


def test_same_sweep_on_a_dask_cluster_gives_the_same_table(swept, tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        table = sweep("P37", GRID, {"FAST": True}, out=tmp_path / "dask", dask=cluster.scheduler_address,
                      echo=lambda line: None)
    assert len(table) == 4
    assert _values(table) == _values(load(swept[0]))


def test_kept_kernel_is_reset_between_points(tmp_path):
    """A point that changes process-wide state leaves nothing behind for the next one (one worker, one kernel)."""
    params = new_code_cell("FLAG = False  # change global state after recording")
    params.metadata["tags"] = ["parameters"]
    cell = new_code_cell(
        "import os, torch\nfrom kllab.harness.record import record\n"
        "record('leaked', 'LEAK' in globals())\nrecord('dtype', str(torch.get_default_dtype()))\n"
        "record('rand', torch.rand(1).item())\nrecord('cwd', os.getcwd())\n"
        "record('env', 'KLLAB_TEST_LEAK' in os.environ)\nrecord('count', get_ipython().execution_count)\n"
        "LEAK = 1\n"
        "if FLAG:\n    torch.set_default_dtype(torch.float64); os.environ['KLLAB_TEST_LEAK'] = '1'; os.chdir('/')\n"
        "    torch.manual_seed(0)")
    nb = new_notebook(cells=[params, cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "leaky.ipynb"
    nbformat.write(nb, path)
    kept = sweep(path, {"FLAG": [True, False]}, out=tmp_path / "kept", workers=1, echo=lambda line: None)
    fresh = sweep(path, {"FLAG": [True, False]}, out=tmp_path / "fresh", workers=1, fresh_kernels=True,
                  echo=lambda line: None)
    unseeded = [{k: v for k, v in r.items() if k != "rand"} for r in _values(kept) + _values(fresh)]
    assert unseeded[:2] == unseeded[2:]
    second = kept.rows[1]
    assert second["status"] == "ok" and second["leaked"] is False and second["env"] is False
    assert second["dtype"] == "torch.float32" and second["cwd"] == str(tmp_path)
    assert second["count"] == fresh.rows[1]["count"]  # the execution counter restarts
    torch.manual_seed(0)
    assert second["rand"] != torch.rand(1).item()  # torch's generator does not go on from the last point's seed


def test_interrupt_keeps_finished_rows(tmp_path):
    out = tmp_path / "int"
    # 64 points: far more than one worker finishes in the moment between the first row and the interrupt
    p = subprocess.Popen([sys.executable, "-m", "kllab", "sweep", "P37", "--grid",
                          "BETA=0.05,0.1,0.2,0.5,1.0,1.5,2.0,3.0", "--grid", "SEED=0,1,2,3,4,5,6,7", "-p", "FAST=True",
                          "--out", str(out), "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         # as from a terminal: a test run started in the background (nohup, a CI runner) ignores
                         # SIGINT, and a child inherits that, so Ctrl-C would never reach the sweep
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any(r["status"] == "ok" for r in _rows_if_any(out)):
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        stdout, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:  # it did not stop: do not leave it running
            p.kill()
            p.communicate()
    assert p.returncode == 130
    assert "interrupted" in stdout and "run the same sweep again to resume" in stdout
    rows = _csv(out)
    assert 1 <= len(rows) < 64 and all(r["status"] == "ok" for r in rows)  # the point cut short is not a failure


def _rows_if_any(out):
    try:
        return _csv(out)
    except (FileNotFoundError, KeyError):
        return []


def test_sweep_from_a_notebook_returns_the_table(tmp_path):
    """The Python API inside a Jupyter kernel, as a notebook cell next to its knob panel would call it."""
    cell = new_code_cell(
        "from kllab.harness.sweep import sweep\nfrom kllab.harness.record import record\n"
        f"table = sweep('P37', {{'BETA': [0.1, 0.5]}}, {{'FAST': True}}, out={str(tmp_path / 'nb')!r})\n"
        "record('rows', len(table))\nrecord('ok', sum(r['status'] == 'ok' for r in table))\n"
        "record('pi', table.column('pi_correct')[1])\ntable")
    nb = new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    import papermill

    src, done = tmp_path / "caller.ipynb", tmp_path / "caller-out.ipynb"
    nbformat.write(nb, src)
    papermill.execute_notebook(str(src), str(done), kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    got = read(done)
    assert got["rows"] == 2 and got["ok"] == 2 and got["pi"] == pytest.approx(0.5, abs=1e-5)
    html = [o for o in nbformat.read(done, as_version=4).cells[0].outputs if o.output_type == "execute_result"]
    assert "<table>" in html[0].data["text/html"]


def test_parse_grid_keeps_brackets_and_quotes_together():
    assert parse_grid(["S=[1,2],[3,4]", "N='a,b',c"]) == {"S": [[1, 2], [3, 4]], "N": ["a,b", "c"]}


def test_csv_round_trips_values_that_look_like_other_types(tmp_path):
    from kllab.harness.sweep.table import write_csv as _write_csv

    rows = [{"X": "1", "status": "ok", "error": "", "seconds": 1.0, "m": "nan", "f": float("inf"), "notebook": ""},
            {"X": 1, "status": "failed", "error": "boom, with a comma", "seconds": 2.0, "notebook": ""}]
    table = Table(rows, ["X"], "T", tmp_path / "results.csv")
    _write_csv(tmp_path / "results.csv", table)
    (tmp_path / "sweep.json").write_text('{"notebook": "T", "grid": {"X": []}, "parameters": {}}')
    back = load(tmp_path)
    assert back.rows[0]["X"] == "1" and back.rows[1]["X"] == 1
    assert back.rows[0]["m"] == "nan" and back.rows[0]["f"] == float("inf") and back.rows[1]["m"] is None
    assert back.rows[1]["error"] == "boom, with a comma"
