"""The command line, as a user runs it: real subprocesses, real papermill."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook


def kllab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kllab", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_list_shows_every_paper_and_status():
    out = kllab("list")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    for i in range(1, 45):
        assert any(ln.startswith(f"P{i:02d} ") for ln in lines)
    assert any(ln.startswith("P37 ") and "notebook" in ln for ln in lines)
    assert "not yet" in out.stdout
    assert "papers have a notebook" in out.stdout


def test_run_one_fast_writes_pages_and_table(tmp_path):
    out = kllab("run", "P37", "--fast", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "[1/1] P37" in out.stdout
    assert "CHECK P37 ok" in out.stdout
    assert (tmp_path / "index.html").exists()
    page = (tmp_path / "p37-rapo.html").read_text()
    assert 'src="plotly.min.js"' in page and "Plotly.newPlot" in page  # figures interactive without a kernel
    assert (tmp_path / "plotly.min.js").stat().st_size > 1_000_000


def test_run_with_parameter(tmp_path):
    out = kllab("run", "P37", "--fast", "-p", "BETA", "0.5", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "beta=0.5" in out.stdout


def test_failure_names_notebook_and_cell_and_others_still_run(tmp_path):
    bad = tmp_path / "broken.ipynb"
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = new_code_cell("FAST = False\nINTERACTIVE = True")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, new_code_cell("x = 1\nraise RuntimeError('boom')")]
    nbformat.write(nb, bad)
    out = kllab("run", str(bad), "P37", "--fast", "--out", str(tmp_path / "out"))
    assert out.returncode == 1
    assert "broken" in out.stderr and "RuntimeError: boom" in out.stderr and 'cell ' in out.stderr
    assert "CHECK P37 ok" in out.stdout  # the other notebook still ran


def test_unknown_parameter_refused_before_running(tmp_path):
    out = kllab("run", "P37", "-p", "NOPE", "1", "--out", str(tmp_path))
    assert out.returncode == 2
    assert "parameter 'NOPE' is not in the parameters cell of p37-rapo.ipynb" in out.stderr
    assert not (tmp_path / "p37-rapo.ipynb").exists()


def test_paper_without_notebook(tmp_path):
    out = kllab("run", "P01", "--out", str(tmp_path))
    assert out.returncode == 2 and "P01" in out.stderr and "has no notebook yet" in out.stderr


def test_strip_keeps_only_check_output(tmp_path):
    src = Path(__file__).resolve().parents[2] / "notebooks" / "p37-rapo.ipynb"
    nb = nbformat.read(src, as_version=4)
    for c in nb.cells:
        if c.cell_type == "code" and not c.source.startswith("# NBVAL"):
            c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="noise\n")]
    nb.metadata["widgets"] = {"state": {}}
    path = tmp_path / "p37-rapo.ipynb"
    nbformat.write(nb, path)
    assert kllab("strip", str(path)).returncode == 0
    again = nbformat.read(path, as_version=4)
    assert "widgets" not in again.metadata
    assert [c for c in again.cells if c.cell_type == "code" and c.outputs and not c.source.startswith("# NBVAL")] == []


def test_run_png_and_results_feed_the_gallery(tmp_path):
    import json

    from kllab.ui.gallery import cards_html, last_run

    out = kllab("run", "P37", "--fast", "--png", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    pngs = sorted((tmp_path / "p37-rapo").glob("figure-*.png"))
    assert len(pngs) >= 3 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["notebooks"]["P37"]["ok"] and results["notebooks"]["P37"]["check"].startswith("CHECK P37 ok")
    page = cards_html(run=last_run(tmp_path / "results.json"))
    assert "check ok" in page and "check failed" not in page


def test_dashboard_serves_and_prints_url():
    import socket
    import urllib.request

    from kllab.harness.dashboard import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "kllab", "dashboard", "P37", "--no-browser", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "kllab dashboard: serving p37-rapo.ipynb at" in lines[0]
        url = lines[1].strip()
        assert url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url, timeout=120) as resp:
            assert resp.status == 200 and "P37" in resp.read().decode()
    finally:
        proc.terminate()
        proc.wait(20)
    # Voila went with it: nothing listens on the port any more.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_dashboard_refuses_paper_without_notebook():
    out = kllab("dashboard", "P01", "--no-browser")
    assert out.returncode == 2 and "P01" in out.stderr and "has no notebook yet" in out.stderr
